import fs from 'node:fs';
import path from 'node:path';
import { createSimContext, type TraceEvent } from '@virq/core';
import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';
import { X86Machine } from '../src/x86/x86-machine.js';

// The x86 serial console against a recording of the real thing: Linux 6.1's 8250 driver and
// QEMU 7.2's 16550 on this machine (tools/serial-golden/record.sh; QEMU's own serial_read,
// serial_write and ioapic_set_irq trace points). Each access is a token — R<offset>=<value>,
// W<offset>=<value> (data bytes as *) — and each qemu_irq_raise/lower of IRQ 4 an IRQ<level>,
// in QEMU's trace order (a read is traced after its effect, a write before).

const GOLDEN = path.join(__dirname, 'golden', 'serial-8250-linux6.1-qemu7.2.log');
const hex = (n: number): string => n.toString(16).padStart(2, '0');

function goldenTokens(): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync(GOLDEN, 'utf8').split('\n')) {
    let m = /^serial_(read|write) (?:read|write) addr 0x([0-9a-f]+) val 0x([0-9a-f]+)/.exec(line);
    if (m) {
      const off = parseInt(m[2]!, 16);
      out.push(`${m[1] === 'read' ? 'R' : 'W'}${off}=${off === 0 ? '*' : m[3]!.padStart(2, '0')}`);
      continue;
    }
    m = /^ioapic_set_irq vector: 4 level: (\d)/.exec(line);
    if (m) out.push(`IRQ${m[1]}`);
  }
  return out;
}

/** The x86 machine with only its serial port, single characters far apart (as recorded: 300 ms). */
function modelTokens(workload: Record<string, number>): string[] {
  const d = presetDocument('x86-q35');
  d.durationUs = 1_000_000;
  d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'serial');
  d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, ipisPerSec: 0, ...workload };
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const out: string[] = [];
  ctx.trace.events$.subscribe((e: TraceEvent) => {
    if (e.time === 0) return; // the boot's register setup
    if (e.fn === 'serial_ioport_write' || e.fn === 'serial_ioport_read') {
      const off = e.args['addr'] as number;
      out.push(`${e.fn === 'serial_ioport_read' ? 'R' : 'W'}${off}=${off === 0 ? '*' : hex(e.args['val'] as number)}`);
    } else if (e.fn === 'kvm_pc_gsi_handler' && e.args['n'] === 4) out.push(`IRQ${e.args['level'] ? 1 : 0}`);
  });
  const m = new X86Machine(ctx, t);
  m.start();
  m.startWorkload(t.durationUs * 1000);
  ctx.scheduler.runUntil(t.durationUs * 1000 + 5_000_000);
  return out;
}

/** The token runs that start with `first` and end just before the next `first` (or the end). */
function cycles(tokens: readonly string[], first: string): string[] {
  const out: string[] = [];
  let cur: string[] | undefined;
  for (const tok of tokens) {
    if (tok === first) {
      if (cur) out.push(cur.join(' '));
      cur = [];
    }
    cur?.push(tok);
  }
  if (cur) out.push(cur.join(' '));
  return out;
}

// One character of tty output: serial8250_start_tx's IER write (THRI on → raise); the interrupt
// (IIR read lowers it; LSR, MSR; the THR write lowers and serial_xmit raises again; __stop_tx's
// IER write lowers); serial8250_interrupt's second pass (IIR: nothing), then the interrupt the
// THR write's edge brought (IIR: nothing).
const TX_CHAR = 'W1=07 IRQ1 IRQ0 R2=c2 R5=60 R6=b0 W0=* IRQ0 IRQ1 W1=05 IRQ0 R2=c1 R2=c1';
// One character of console input: serial_receive1 (below the trigger level: the line stays
// low), the character timeout raises it (CTI); IIR, LSR (DR), RBR (lowers), LSR, MSR, the second pass's IIR.
const RX_CHAR = 'IRQ0 IRQ1 R2=cc R5=61 IRQ0 R0=* R5=60 R6=b0 R2=c1';

describe('x86 serial console against a recording of Linux 6.1 + QEMU 7.2 (test/golden)', () => {
  const golden = goldenTokens();

  it('the recording holds the per-character sequences this test checks (six of each)', () => {
    const g = golden.join(' ');
    expect(g.split(TX_CHAR).length - 1).toBeGreaterThanOrEqual(6);
    expect(g.split(RX_CHAR).length - 1).toBe(6);
  });

  it('tty output: the model makes the same register accesses, values and line changes per character', () => {
    const tx = cycles(modelTokens({ serialPerSec: 20, serialRxPerSec: 0 }), 'W1=07');
    expect(tx.length).toBeGreaterThanOrEqual(10);
    for (const c of tx) expect(c).toBe(TX_CHAR);
  });

  it('console input: the model makes the same register accesses, values and line changes per character', () => {
    // The whole run is nothing but the recorded character, repeated.
    const joined = modelTokens({ serialPerSec: 0, serialRxPerSec: 20 }).join(' ');
    expect(joined.split(RX_CHAR).length - 1).toBeGreaterThanOrEqual(10);
    expect(joined.replaceAll(RX_CHAR, '').trim()).toBe('');
  });
});
