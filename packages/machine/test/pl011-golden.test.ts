import fs from 'node:fs';
import path from 'node:path';
import { createSimContext, type TraceEvent } from '@virq/core';
import { ArmMachine } from '../src/arm/arm-machine.js';
import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';

// The arm64 serial console against a recording of the real thing: Linux 6.1's amba-pl011 and
// QEMU 7.2's PL011 on the virt board (tools/serial-golden/record.sh arm64; QEMU's pl011_read,
// pl011_write and pl011_irq_state trace points). Tokens: R<offset>=<value>, W<offset>=<value>
// (hex; DR data as *), L<level> for each pl011_update, in QEMU's trace order.

const GOLDEN = path.join(__dirname, 'golden', 'pl011-linux6.1-qemu7.2.log');
const tok = (rw: 'R' | 'W', off: number, v: number): string => `${rw}${off.toString(16)}=${off === 0 ? '*' : v.toString(16)}`;

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

/** The arm64 machine with only its UART, single characters far apart both ways (as recorded: 300 ms). */
function modelTokens(): string[] {
  const d = presetDocument('arm-virt-gicv3');
  d.durationUs = 2_000_000;
  d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'serial');
  d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, ipisPerSec: 0, serialPerSec: 10, serialRxPerSec: 10 };
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const out: string[] = [];
  ctx.trace.events$.subscribe((e: TraceEvent) => {
    if (e.time === 0) return; // the driver's probe
    if (e.fn === 'pl011_read' || e.fn === 'pl011_write') out.push(tok(e.fn === 'pl011_read' ? 'R' : 'W', e.args['addr'] as number, e.args['value'] as number));
    else if (e.fn === 'pl011_update') out.push(`L${e.args['level'] as number}`);
  });
  const m = new ArmMachine(ctx, t);
  m.start();
  m.startWorkload(t.durationUs * 1000);
  ctx.scheduler.runUntil(t.durationUs * 1000 + 5_000_000);
  return out;
}

// One character of tty output: pl011_tx_chars' FR read and DR write (TX raised but masked: the
// line is set low), pl011_stop_tx's IMSC write (RXIM|RTIM).
const TX_CHAR = 'R18=90 W0=* L0 W38=50 L0';
// One character of console input: pl011_put_fifo raises RX; pl011_int reads RIS (TX|RX — TX,
// set by every DR write, is never cleared by this driver), writes ICR 0, pl011_rx_chars reads FR,
// DR (the line falls), FR (empty), and RIS again (TX only: masked, done).
const RX_CHAR = 'L1 R3c=30 W44=0 L1 R18=80 L0 R0=* R18=90 R3c=20';

describe('arm64 serial console against a recording of Linux 6.1 + QEMU 7.2 (test/golden)', () => {
  it('the recording holds the per-character sequences this test checks (six of each)', () => {
    const g = ` ${goldenTokens().join(' ')} `;
    expect(g.split(` ${TX_CHAR} `).length - 1).toBeGreaterThanOrEqual(6);
    expect(g.split(RX_CHAR).length - 1).toBe(6);
  });

  it('after its first character out, the model\'s UART traffic is nothing but the recorded characters, each way', () => {
    const tokens = modelTokens();
    const first = tokens.indexOf('W0=*');
    expect(first).toBeGreaterThan(0);
    const run = tokens.slice(first - 1).join(' ');
    expect(run.split(TX_CHAR).length - 1).toBeGreaterThanOrEqual(8);
    expect(run.split(RX_CHAR).length - 1).toBeGreaterThanOrEqual(8);
    expect(run.replaceAll(TX_CHAR, '').replaceAll(RX_CHAR, '').trim()).toBe('');
  });
});
