import fs from 'node:fs';
import path from 'node:path';
import { createSimContext, type TraceEvent } from '@virq/core';
import { ArmMachine } from '../src/arm/arm-machine.js';
import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';
import { CONSOLE_SCRIPT, CONSOLE_SCRIPT_END } from './golden/console-script.js';

// The arm64 serial console against a recording of the real thing: Linux 6.1's amba-pl011 and
// QEMU 7.2's PL011 on the virt board (tools/serial-golden/record.sh arm64; QEMU's pl011_read,
// pl011_write and pl011_irq_state trace points). Tokens: R<offset>=<value>, W<offset>=<value>
// (hex; a transmitted byte as W0=*, received bytes with their value), L<level> for each
// pl011_update, in QEMU's trace order.

const GOLDEN = path.join(__dirname, 'golden', 'pl011-linux6.1-qemu7.2.log');
const tok = (rw: 'R' | 'W', off: number, v: number): string => `${rw}${off.toString(16)}=${rw === 'W' && off === 0 ? '*' : v.toString(16)}`;

function goldenTokens(): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync(GOLDEN, 'utf8').split('\n')) {
    let m = /^pl011_(read|write) addr 0x([0-9a-f]+) value 0x([0-9a-f]+)/.exec(line);
    if (m) {
      out.push(tok(m[1] === 'read' ? 'R' : 'W', parseInt(m[2]!, 16), parseInt(m[3]!, 16)));
      continue;
    }
    m = /^pl011_irq_state irq state (\d)/.exec(line);
    if (m) out.push(`L${m[1]}`);
  }
  return out;
}

/** The model driven by the recording's own script: the same writes and the same input. */
function modelRun(): { boot: string[]; run: string[]; m: ArmMachine } {
  const d = presetDocument('arm-virt-gicv3');
  d.durationUs = CONSOLE_SCRIPT_END / 1000;
  d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'serial');
  d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, ipisPerSec: 0, serialPerSec: 0, serialRxPerSec: 0 };
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const boot: string[] = [];
  const run: string[] = [];
  ctx.trace.events$.subscribe((e: TraceEvent) => {
    const into = e.time === 0 ? boot : run;
    if (e.fn === 'pl011_read' || e.fn === 'pl011_write') into.push(tok(e.fn === 'pl011_read' ? 'R' : 'W', e.args['addr'] as number, e.args['value'] as number));
    else if (e.fn === 'pl011_update') into.push(`L${e.args['level'] as number}`);
  });
  const m = new ArmMachine(ctx, t);
  m.start();
  // The recording's guest is a running shell script, not an idle vCPU waiting in WFI (arm-gic
  // runs queued guest work only while the guest runs: as for the machine's own busy guests).
  m.vm.vcpus[0]!.guest.idleWithWfi = false;
  m.startWorkload(CONSOLE_SCRIPT_END);
  const { uart, driver } = m.serials[0]!;
  for (const step of CONSOLE_SCRIPT) {
    if (step.write !== undefined) m.cpus[0]!.at(step.at, () => driver.write(step.write!));
    else ctx.scheduler.at(step.at, m.mainLoop, () => uart.receive([step.receive!]));
  }
  ctx.scheduler.runUntil(CONSOLE_SCRIPT_END);
  return { boot, run, m };
}

// One character of tty output: pl011_tx_chars' FR read and DR write (TX raised but masked: the
// line is set low), pl011_stop_tx's IMSC write (RXIM|RTIM).
const TX_CHAR = 'R18=90 W0=* L0 W38=50 L0';
// One character of console input: pl011_put_fifo raises RX; pl011_int reads RIS (TX|RX — TX,
// set by every DR write, is never cleared by this driver), writes ICR 0, pl011_rx_chars reads FR,
// DR (the line falls), FR (empty), and RIS again (TX only: masked, done).
const RX_CHAR = 'L1 R3c=30 W44=0 L1 R18=80 L0 R0=61 R18=90 R3c=20';

/** Occurrences of `needle` in `hay`, overlapping ones included (consecutive characters share a stop_tx). */
function occurrences(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + 1)) n++;
  return n;
}

describe('arm64 serial console against a recording of Linux 6.1 + QEMU 7.2 (test/golden)', () => {
  const golden = goldenTokens();
  // From the first tty write's FR read on (before it: probe, early console, the tty's open and stty).
  const goldenRun = golden.slice(golden.indexOf('W0=*') - 1);
  const model = modelRun();

  it('the recording, from the first tty write on: 3 marker lines, 6 characters out, 6 in', () => {
    const g = goldenRun.join(' ');
    expect(occurrences(g, RX_CHAR)).toBe(6);
    expect(occurrences(g, `W38=50 L0 ${TX_CHAR}`)).toBe(6); // each lone character right after a stop_tx
    expect(goldenRun.filter((t) => t === 'W0=*').length).toBe(14 + 6 + 14 + 10);
    expect(goldenRun.filter((t) => t.startsWith('L1')).length).toBe(6 * 2); // only the input raises the line
  });

  it('the model makes the recording\'s register accesses, values and line changes, token for token (bursts of 14 and 10 characters, single characters both ways)', () => {
    expect(model.run).toEqual(goldenRun);
    expect(model.m.serials[0]!.driver.received).toEqual([0x61, 0x61, 0x61, 0x61, 0x61, 0x61]);
  });

  it('the driver\'s bring-up (pl011_startup, set_termios, set_mctrl) is the recorded one, token for token', () => {
    expect(model.boot.length).toBeGreaterThan(20);
    expect(golden.join(' ')).toContain(model.boot.join(' '));
  });
});
