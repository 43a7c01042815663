import fs from 'node:fs';
import path from 'node:path';
import { createSimContext, type TraceEvent } from '@virq/core';
import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';
import { X86Machine } from '../src/x86/x86-machine.js';
import { CONSOLE_SCRIPT, CONSOLE_SCRIPT_END } from './golden/console-script.js';

// The x86 serial console against a recording of the real thing: Linux 6.1's 8250 driver and
// QEMU 7.2's 16550 on this machine (tools/serial-golden/record.sh x86; QEMU's own serial_read,
// serial_write and ioapic_set_irq trace points). Each access is a token — R<offset>=<value>,
// W<offset>=<value>, a transmitted byte as W0=* (THR with DLAB clear; the divisor latch and
// received bytes keep their values) — and each qemu_irq_raise/lower of IRQ 4 that QEMU's
// IOAPIC saw an IRQ<level>, in QEMU's trace order (a read is traced after its effect, a write
// before). Under TCG the IRQ tokens are the UART's line calls, not interrupt deliveries.

const GOLDEN = path.join(__dirname, 'golden', 'serial-8250-linux6.1-qemu7.2.log');
const hex = (n: number): string => n.toString(16).padStart(2, '0');

/** Tokenizes accesses in order, tracking LCR.DLAB to tell THR data from the divisor latch. */
function tokenizer(): (rw: 'R' | 'W', off: number, v: number) => string {
  let dlab = false;
  return (rw, off, v) => {
    if (rw === 'W' && off === 3) dlab = (v & 0x80) !== 0;
    return `${rw}${off}=${rw === 'W' && off === 0 && !dlab ? '*' : hex(v)}`;
  };
}

function goldenTokens(): string[] {
  const tok = tokenizer();
  const out: string[] = [];
  for (const line of fs.readFileSync(GOLDEN, 'utf8').split('\n')) {
    let m = /^serial_(read|write) (?:read|write) addr 0x([0-9a-f]+) val 0x([0-9a-f]+)/.exec(line);
    if (m) {
      out.push(tok(m[1] === 'read' ? 'R' : 'W', parseInt(m[2]!, 16), parseInt(m[3]!, 16)));
      continue;
    }
    m = /^ioapic_set_irq vector: 4 level: (\d)/.exec(line);
    if (m) out.push(`IRQ${m[1]}`);
  }
  return out;
}

function machine(): { m: X86Machine; ctx: ReturnType<typeof createSimContext>; boot: string[]; run: string[] } {
  const d = presetDocument('x86-q35');
  d.durationUs = CONSOLE_SCRIPT_END / 1000;
  d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'serial');
  d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, ipisPerSec: 0, serialPerSec: 0, serialRxPerSec: 0 };
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const boot: string[] = [];
  const run: string[] = [];
  const tok = tokenizer();
  ctx.trace.events$.subscribe((e: TraceEvent) => {
    const into = e.time === 0 ? boot : run;
    if (e.fn === 'serial_ioport_write' || e.fn === 'serial_ioport_read') into.push(tok(e.fn === 'serial_ioport_read' ? 'R' : 'W', e.args['addr'] as number, e.args['val'] as number));
    else if (e.fn === 'kvm_pc_gsi_handler' && e.args['n'] === 4) into.push(`IRQ${e.args['level'] ? 1 : 0}`);
  });
  const m = new X86Machine(ctx, t);
  return { m, ctx, boot, run };
}

/** The model driven by the recording's own script: the same writes and the same input. */
function modelRun(): { boot: string[]; run: string[]; m: X86Machine } {
  const { m, ctx, boot, run } = machine();
  m.start();
  m.startWorkload(CONSOLE_SCRIPT_END);
  const driver = m.serialDrivers[0]!;
  const uart = m.serials[0]!;
  for (const step of CONSOLE_SCRIPT) {
    if (step.write !== undefined) m.cpus[0]!.at(step.at, () => driver.write(step.write!));
    else ctx.scheduler.at(step.at, m.mainLoop, () => uart.receive([step.receive!]));
  }
  ctx.scheduler.runUntil(CONSOLE_SCRIPT_END);
  return { boot, run, m };
}

// One character of tty output: serial8250_start_tx's IER write (THRI on → raise); the interrupt
// (IIR read lowers it; LSR, MSR; the THR write lowers and serial_xmit raises again; __stop_tx's
// IER write lowers); serial8250_interrupt's second pass (IIR: nothing), then the interrupt the
// THR write's edge brought (IIR: nothing).
const TX_CHAR = 'W1=07 IRQ1 IRQ0 R2=c2 R5=60 R6=b0 W0=* IRQ0 IRQ1 W1=05 IRQ0 R2=c1 R2=c1';
// One character of console input: serial_receive1 (below the trigger level: the line stays
// low), the character timeout raises it (CTI); IIR, LSR (DR), RBR (lowers), LSR, MSR, the second pass's IIR.
const RX_CHAR = 'IRQ0 IRQ1 R2=cc R5=61 IRQ0 R0=61 R5=60 R6=b0 R2=c1';

describe('x86 serial console against a recording of Linux 6.1 + QEMU 7.2 (test/golden)', () => {
  const golden = goldenTokens();
  // From the first transmit on (before it: firmware, probe, the tty's open and stty).
  const goldenRun = golden.slice(golden.indexOf('W1=07'));
  const model = modelRun();

  it('the recording, from the first tty write on: 3 marker lines, 6 characters out, 6 in', () => {
    const g = goldenRun.join(' ');
    expect(g.split(TX_CHAR).length - 1).toBe(6);
    expect(g.split(RX_CHAR).length - 1).toBe(6);
    expect(goldenRun.filter((t) => t === 'W0=*').length).toBe(14 + 6 + 14 + 10);
  });

  it('the model makes the recording\'s register accesses, values and IRQ 4 line changes, token for token (bursts of 14 and 10 characters, single characters both ways)', () => {
    expect(model.run).toEqual(goldenRun);
    expect(model.m.serialDrivers[0]!.received).toEqual([0x61, 0x61, 0x61, 0x61, 0x61, 0x61]);
  });

  it('the bring-up leaves the UART as the recorded bring-up does: the same tail of writes (IER, divisor at 115200, LCR, FCR, MCR)', () => {
    const writes = model.boot.filter((t) => t.startsWith('W'));
    const g = golden.join(' ');
    expect(writes.length).toBe(9);
    expect(g).toContain(model.boot.join(' '));
  });
});
