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

const tmpDirs: string[] = [];
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'virq-cli-'));
  tmpDirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('virq run', () => {
  it('runs the default x86 machine: first delivery in ftrace style, metrics, exits per vCPU, a Perfetto file', async () => {
    const dir = tmp();
    const perfetto = path.join(dir, 't.json');
    const r = await cli(['run', '--duration-us', '300', '--perfetto', perfetto]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^virq run: x86-q35 — 2 vCPUs, irqchip kvm-x86, net0 \(virtio-net\/vhost-user\), nic1 \(vfio\), ttyS0 \(serial\)/);
    // The first delivery goes back end → call eventfd → irqfd → MSI → LAPIC, in that order.
    const fns = [...r.out.matchAll(/\]\s+\d+\.\d{9}: (\S+)/g)].map((m) => m[1]!);
    const order = ['eventfd_write', 'irqfd_wakeup', 'kvm_set_msi_irq', 'kvm_irq_delivery_to_apic_fast', '__apic_accept_irq', 'hw:guest_interrupt'];
    expect(order.map((f) => fns.indexOf(f)).every((i, k, a) => i >= 0 && (k === 0 || i > a[k - 1]!))).toBe(true);
    expect(r.out).toMatch(/^exits\s+exits\/ms\s.*\bkicks\s+kicks suppr/m);
    expect(r.out).toMatch(/vCPU 0: .*EPT_MISCONFIG \d+/);
    const json = JSON.parse(fs.readFileSync(perfetto, 'utf8'));
    expect(json.traceEvents.some((e: { name: string }) => e.name === 'irqfd_wakeup')).toBe(true);
    expect(r.out).toContain(`Perfetto trace: ${perfetto}`);
  });

  it('same machine on ARM by preset; a topology file works; --mermaid and --report write their files', async () => {
    const dir = tmp();
    const topo = path.join(dir, 'topo.yaml');
    fs.writeFileSync(topo, 'name: tiny\nirqchip: { kind: gicv4 }\ndurationUs: 200\nvcpus: [{ id: 0, hostCpu: 1 }]\ndevices:\n  - { kind: vfio, vectors: 1 }\n');
    const r = await cli(['run', topo, '--mermaid', path.join(dir, 'd.mmd'), '--report', path.join(dir, 'r.html'), '--quiet', '--perfetto', path.join(dir, 'p.json')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^virq run: tiny — 1 vCPUs, irqchip gicv4/);
    expect(fs.readFileSync(path.join(dir, 'd.mmd'), 'utf8')).toMatch(/^sequenceDiagram/);
    expect(fs.readFileSync(path.join(dir, 'r.html'), 'utf8')).toContain('<svg');
    const arm = await cli(['run', '--preset', 'arm-virt-gicv3', '--duration-us', '200', '--quiet', '--perfetto', path.join(dir, 'a.json')]);
    expect(arm.code).toBe(0);
    expect(arm.out).toMatch(/irqchip gicv3/);
  });

  it('bad input is explained with its path, never thrown', async () => {
    const dir = tmp();
    const topo = path.join(dir, 'bad.yaml');
    fs.writeFileSync(topo, 'devices:\n  - { kind: virtio-net, backend: dpdk }\n');
    const r = await cli(['run', topo]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('topology.devices[0].backend: expected one of in-vmm, vhost, vhost-user, got "dpdk"');
    expect((await cli(['run', '--preset', 'nope'])).err).toMatch(/unknown preset "nope"; presets: x86-q35/);
    expect((await cli(['run', '--seed', 'x'])).code).toBe(1);
    expect((await cli(['run', '--bogus'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['--help'])).out).toContain('virq compare');
    for (const c of ['run', 'compare', 'flow', 'golden', 'vhost-user-net']) {
      const h = await cli([c, '--help']);
      expect(h.code).toBe(0);
      expect(h.out).toContain('Usage:');
      expect(h.err).toBe('');
    }
  });
});

describe('virq compare', () => {
  it('prints one table of the matrix; csv and json formats', async () => {
    const r = await cli(['compare', '--preset', 'x86-q35', '--vary', 'posted=on,off', '--vary', 'event_idx=on,off', '--workers', '0', '--format', 'csv']);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/^posted,event_idx,exits,/);
    expect(lines.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['on,on', 'on,off', 'off,on', 'off,off']);
    const bad = await cli(['compare', '--vary', 'irqfd=maybe']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/"maybe" is not one of on, off/);
    expect((await cli(['compare'])).code).toBe(2);
  }, 60_000);
});

describe('virq flows / flow / golden / presets', () => {
  it('lists the 19 flows and runs one with its order check', async () => {
    const l = await cli(['flows']);
    expect(l.out.split('\n').filter((x) => /^\s+F\d+/.test(x))).toHaveLength(19);
    const f = await cli(['flow', 'F9', '--variant', 'deferred']);
    expect(f.code).toBe(0);
    expect(f.out).toMatch(/irqfd_inject/);
    expect(f.out).toMatch(/order check: all \d+ steps of FLOWS\.md appear in order/);
    const bad = await cli(['flow', 'F42']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/F42/);
  });

  it('golden replays the recorded KVM scenarios and ends with "N passed, M failed"', async () => {
    const file = path.resolve(__dirname, '../../../../shared/golden/kvm-irqchip.json');
    if (!fs.existsSync(file)) {
      console.log(`skipped: ${file} is not present`);
      return;
    }
    const r = await cli(['golden', file]);
    expect(r.out.trim().split('\n').at(-1)).toMatch(/^\d+ passed, 0 failed$/);
    expect(r.code).toBe(0);
    const bad = await cli(['golden', path.join(tmp(), 'missing.json')]);
    expect(bad.code).toBe(1);
  });

  it('presets lists the built-in machines', async () => {
    expect((await cli(['presets'])).out.split('\n')).toEqual(expect.arrayContaining(['x86-q35', 'arm-virt-gicv4', 'arm-virt-gicv4.1']));
  });
});

describe('bad input to virq: a message and a status, never a stack trace', () => {
  it('--duration-us and --seed have the topology file\'s ranges (an override cannot start a run that never ends)', async () => {
    const long = await cli(['run', '--duration-us', '99999999999']);
    expect(long.code).toBe(1);
    expect(long.err).toMatch(/--duration-us takes an integer in \[1, 60000000\], got "99999999999" \[cli\.bad-option\]/);
    const seed = await cli(['run', '--seed', '4294967296']);
    expect(seed.code).toBe(1);
    expect((await cli(['run', '--seed', ''])).err).toMatch(/--seed takes an integer/);
  });

  it('a file that cannot be written is reported by its system error', async () => {
    const r = await cli(['run', '--duration-us', '50', '--quiet', '--perfetto', path.join(tmp(), 'no', 'such', 'dir', 't.json')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^virq run: ENOENT/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('a hostile topology file (alias bomb) and a hostile matrix are typed errors', async () => {
    const dir = tmp();
    const bomb = path.join(dir, 'bomb.yaml');
    fs.writeFileSync(bomb, ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]'].join('\n'));
    const r = await cli(['run', bomb]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/\[machine\.topology-syntax\]/);
    const many = Array.from({ length: 100 }, (_, i) => String(i)).join(',');
    const m = await cli(['compare', '--vary', `seed=${many}`, '--vary', `workload.rxPacketsPerSec=${many}`]);
    expect(m.code).toBe(1);
    expect(m.err).toMatch(/at most 4096 \[machine\.vary-invalid\]/);
  });
});

describe('ambiguous arguments are refused, not silently resolved', () => {
  it('a topology file and --preset together, or two files to compare, are usage errors', async () => {
    const dir = tmp();
    const topo = path.join(dir, 't.yaml');
    fs.writeFileSync(topo, 'name: t\n');
    const both = await cli(['run', topo, '--preset', 'arm-virt-gicv4']);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/not both/);
    expect((await cli(['compare', topo, topo, '--vary', 'seed=1,2'])).code).toBe(2);
  });
});
