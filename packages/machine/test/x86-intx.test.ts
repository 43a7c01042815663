import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';
import { parseTopologyText } from '../src/topology-file.js';
import { runTopology } from '../src/scenario.js';

const rxOnly = 'workload: {rxPacketsPerSec: 100000, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, serialPerSec: 0}\n';

describe('x86 INTx virtio: PIRQ pins shared like q35\'s (GSI 16–19)', () => {
  it('five INTx virtio-net functions: the fifth shares GSI 16 with the first and both keep getting their interrupts', () => {
    const devs = Array.from({ length: 5 }, (_, i) => `{kind: virtio-net, name: n${i}, msix: false, backend: in-vmm}`).join(',');
    const r = runTopology(parseTopologyText(`durationUs: 2000\ndevices: [${devs}]\n${rxOnly}`), { keepTrace: true });
    const perBdf = new Map<number, number>();
    for (const e of r.trace!) if (e.fn === 'vp_interrupt') perBdf.set((e.args as { bdf: number }).bdf, (perBdf.get((e.args as { bdf: number }).bdf) ?? 0) + 1);
    // Before: the fifth function reprogrammed the first one's IOAPIC pin to its own vector and
    // a deassert from one dropped the other's level, so the first got no interrupt at all.
    expect(perBdf.size).toBe(5);
    for (const n of perBdf.values()) expect(n).toBeGreaterThan(10);
    // INTx deliveries are measured too (the line's rise starts the latency).
    expect(r.metrics.latencyNs.count).toBeGreaterThan(0);
  });

  it('vhost on INTx: QEMU\'s vhost_net_query keeps the userspace device (no vhostforce), and the run says so', () => {
    const r = runTopology(parseTopologyText(`durationUs: 300\ndevices: [{kind: virtio-net, msix: false, backend: vhost-user}]\n${rxOnly}`));
    expect(r.notes.join('\n')).toMatch(/vhost needs MSI-X guest notifiers/);
    expect(r.notes.join('\n')).toMatch(/vhost-user back end is not serving the rings/);
  });

  it('each INTx interrupt reads the ISR: an MMIO read exit to QEMU before the handler\'s work, its deassert on the vCPU thread', () => {
    const d = presetDocument('x86-q35-noapicv');
    d.durationUs = 400;
    d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'virtio-net').map((x) => ({ ...x, msix: false }));
    const r = runTopology(parseTopology(d), { keepTrace: true });
    const t = r.trace!;
    const handlers = t.filter((e) => e.fn === 'vp_interrupt').length;
    const isrReads = t.filter((e) => e.fn === 'kvm_io_bus_read' && e.caller === 'vcpu_mmio_read').length;
    expect(handlers).toBeGreaterThan(5);
    expect(isrReads).toBe(handlers);
    // QEMU's emulation of the read (and the deassert it causes) runs on the vCPU thread, not as guest code.
    for (const e of t.filter((x) => x.fn === 'virtio_pci_isr_read')) expect(e.actor.name).toMatch(/^CPU \d+\/KVM$/);
  });
});
