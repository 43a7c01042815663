import { presetDocument } from '../src/presets.js';
import { runTopology } from '../src/scenario.js';
import { parseTopology } from '../src/topology.js';
import { applyVary } from '../src/vary.js';

describe('arm64 INTx virtio: QEMU virt\'s GPEX lines on SPIs 3–6', () => {
  it('each interrupt is a level SPI through gpex_set_irq → KVM_IRQ_LINE; vp_interrupt reads the ISR (a data-abort exit), which lowers the line', () => {
    const d = presetDocument('arm-virt-gicv3');
    d.durationUs = 500;
    applyVary(d, 'msix', 'off');
    const r = runTopology(parseTopology(d), { keepTrace: true });
    const t = r.trace!;
    expect(r.notes.join(' ')).not.toMatch(/not modelled/);
    const handlers = t.filter((e) => e.fn === 'vp_interrupt').length;
    expect(handlers).toBeGreaterThan(5);
    // Slot 1's INTA is GPEX line 1 = SPI 4 = INTID 36, level-triggered.
    const raises = t.filter((e) => e.fn === 'gpex_set_irq' && e.args['level'] === 1);
    expect(raises.length).toBeGreaterThan(0);
    expect(t.filter((e) => e.fn === 'gic_handle_irq' && e.args['intid'] === 36).length).toBeGreaterThanOrEqual(handlers);
    // Every ISR read takes its exit to QEMU (applied read: no second device access).
    const isrExits = t.filter((e) => e.fn === 'io_mem_abort' && e.args['write'] === false).length;
    expect(isrExits).toBeGreaterThanOrEqual(handlers);
    expect(t.filter((e) => e.fn === 'virtio_pci_isr_read').length).toBe(handlers);
    expect(r.lostInterrupts).toEqual([]);
    expect(r.metrics.interrupts.posted).toBe(0); // no MSI, no ITS
  });

  it('MSI-X against INTx on the same ARM machine: INTx costs exits (the ISR read, the level EOI maintenance)', () => {
    const run = (msix: string) => {
      const d = presetDocument('arm-virt-gicv3');
      d.durationUs = 500;
      d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'virtio-net');
      applyVary(d, 'msix', msix);
      return runTopology(parseTopology(d)).metrics;
    };
    const on = run('on');
    const off = run('off');
    expect(off.exits.total).toBeGreaterThan(on.exits.total);
  });
});
