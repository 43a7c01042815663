import fs from 'node:fs';
import path from 'node:path';
import type { TraceEvent } from '@virq/core';
import { FLOWS } from '../src/flows/registry.js';
import { presetDocument } from '../src/presets.js';
import { runTopology } from '../src/scenario.js';
import { parseTopology } from '../src/topology.js';

function run(preset: string, edit: (d: Record<string, unknown>) => void): TraceEvent[] {
  const d = presetDocument(preset);
  d.durationUs = 300;
  edit(d);
  return runTopology(parseTopology(d), { keepTrace: true }).trace!;
}

/** A C identifier (kernel/QEMU/DPDK function), or a hardware step marked `hw:`. */
const FUNCTION_NAME = /^(hw:)?[A-Za-z_][A-Za-z0-9_]*$/;

describe('trace names are functions (or hw: steps)', () => {
  it.each(['x86-q35', 'x86-q35-noapicv', 'arm-virt-gicv3', 'arm-virt-gicv4'])('%s: every fn and caller is an identifier — no device labels like "ttyS0-irq4"', (preset) => {
    const trace = run(preset, (d) => {
      d.workload = { rxPacketsPerSec: 200_000, txPacketsPerSec: 100_000, vfioInterruptsPerSec: 100_000, serialPerSec: 20_000, serialRxPerSec: 20_000, ipisPerSec: 20_000 };
    });
    const bad = new Set<string>();
    for (const e of trace) {
      if (!FUNCTION_NAME.test(e.fn)) bad.add(`fn ${e.fn}`);
      if (e.caller !== undefined && e.caller !== 'guest' && !FUNCTION_NAME.test(e.caller)) bad.add(`caller ${e.caller}`);
    }
    expect([...bad]).toEqual([]);
  });

  it('every name is one checked against the real sources (test/audited-trace-names.txt)', () => {
    const audited = new Set(
      fs
        .readFileSync(path.join(__dirname, 'audited-trace-names.txt'), 'utf8')
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#')),
    );
    const seen = new Set<string>();
    const note = (e: TraceEvent): void => {
      seen.add(e.fn);
      if (e.caller !== undefined && e.caller !== 'guest') seen.add(e.caller);
    };
    for (const preset of ['x86-q35', 'x86-q35-noapicv', 'x86-q35-avic', 'x86-q35-userspace-irqchip', 'arm-virt-gicv3', 'arm-virt-gicv4', 'arm-virt-gicv4.1']) {
      run(preset, (d) => {
        d.workload = { rxPacketsPerSec: 200_000, txPacketsPerSec: 100_000, vfioInterruptsPerSec: 100_000, serialPerSec: 20_000, serialRxPerSec: 20_000, ipisPerSec: 20_000, timerHz: 10_000, ioDepth: 4 };
      }).forEach(note);
    }
    for (const f of FLOWS) for (const v of Object.keys(f.spec.variants)) f.run(v).trace.forEach(note);
    expect([...seen].filter((n) => !n.startsWith('hw:') && !audited.has(n)).sort()).toEqual([]);
  });

  it('x86 guest: the IPI is sent by __default_send_IPI_dest_field and taken by sysvec_call_function_single; the UART IIR read is serial8250_default_handle_irq', () => {
    const fns = new Set(run('x86-q35', (d) => (d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, serialPerSec: 20_000, ipisPerSec: 20_000 })).map((e) => e.fn));
    for (const f of ['__default_send_IPI_dest_field', 'sysvec_call_function_single', 'serial8250_tx_chars', 'serial8250_default_handle_irq', 'common_interrupt']) expect(fns).toContain(f);
  });

  it('in-VMM back end: the host path in its real call relations (Linux net/core/dev.c, net/bridge, QEMU util/aio-posix.c)', () => {
    const trace = run('x86-q35', (d) => {
      d.devices = [{ kind: 'virtio-net', backend: 'in-vmm' }];
      d.workload = { rxPacketsPerSec: 100_000, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, serialPerSec: 0 };
    });
    const pairs = new Set(trace.filter((e) => e.source === 'host-net').map((e) => `${e.fn}<-${e.caller}`));
    expect([...pairs].sort()).toEqual([
      '__netif_receive_skb_core<-__netif_receive_skb_one_core',
      'br_handle_frame<-__netif_receive_skb_core', // the bridge port's rx_handler
      'handle_irq_event<-handle_edge_irq', // MSI-X: an edge flow handler
      'tap_send<-aio_dispatch_handler', // the tap fd's io_read in QEMU's iohandler AioContext
      'tun_net_xmit<-dev_hard_start_xmit', // ndo_start_xmit via the inlined xmit_one/netdev_start_xmit
    ]);
  });
});
