import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../src/index.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

describe('virq command', () => {
  it('run prints the first delivery in ftrace style, in the order of F1 then F9, and a summary', async () => {
    const r = await cli(['run', '--rounds', '20']);
    expect(r.code).toBe(0);
    const fns = [...r.out.matchAll(/\]\s+\d+\.\d{9}: (\S+) <-/g)].map((m) => m[1]);
    expect(fns).toEqual(['vp_notify', 'vmx_handle_exit', 'kvm_io_bus_write', 'eventfd_signal', 'vhost_poll_wakeup', 'vhost_signal', 'irqfd_wakeup', 'vmx_inject_irq', 'vring_interrupt']);
    expect(r.out).toMatch(/rounds: 20 {2}kicks: 20 {2}calls: 20/);
    expect(r.out).toMatch(/round trip: p50 \d+ ns {2}p99 \d+ ns/);
  });

  it('same seed → same output; another seed → another timeline', async () => {
    const a = await cli(['run', '--seed', '7', '--rounds', '30']);
    const b = await cli(['run', '--seed', '7', '--rounds', '30']);
    const c = await cli(['run', '--seed', '8', '--rounds', '30']);
    expect(a.out).toBe(b.out);
    expect(a.out).not.toBe(c.out);
  });

  it('--perfetto writes Chrome trace JSON with every event', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virq-')), 'trace.json');
    const r = await cli(['run', '--rounds', '5', '--perfetto', file, '--quiet']);
    expect(r.code).toBe(0);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const steps = json.traceEvents.filter((e: { ph: string }) => e.ph !== 'M');
    expect(steps).toHaveLength(5 * 9);
    expect(steps[0].name).toBe('vp_notify');
  });

  it('bad options are explained, not thrown', async () => {
    const r = await cli(['run', '--rounds', 'many']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('--rounds takes an integer');
    const u = await cli(['frobnicate']);
    expect(u.code).toBe(2);
    expect(u.err).toContain('unknown command');
    const x = await cli(['run', '--bogus']);
    expect(x.code).toBe(2);
    expect((await cli(['--help'])).out).toContain('Usage:');
  });
});
