import { VfioIrqInfoFlag, VfioPciIrqIndex } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

function enableTwo(dynamicMsix: boolean): { rig: Rig; fns: string[] } {
  const rig = new Rig({ vcpus: 4, msixVectors: 2, dynamicMsix });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 1, vector: 0x50 }]));
  const from = rig.mark();
  rig.onVcpu(1, () => rig.guestProgramVector(1, 2, 0x51));
  return { rig, fns: rig.fns(from) };
}

describe('QEMU vfio_msix_enable / vfio_msix_vector_do_use against the kernel’s NORESIZE flag', () => {
  test('vfio_msix_enable puts the device in MSI-X mode with vector 0 on the userspace notifier and no route', () => {
    const rig = new Rig({ vcpus: 2, msixVectors: 2 });
    rig.on('qemu-system-x86', () => rig.guestEnableMsix([]));
    expect(rig.qemu.mode).toBe('msix');
    expect(rig.vfio.type).toBe('msix');
    expect(rig.vfio.triggerOf(0)).toBe(rig.qemu.vector(0).interrupt);
    expect(rig.qemu.vector(0).virq).toBe(-1);
    expect(rig.kvm.irqfdList()).toEqual([]);
  });

  test('dynamic MSI-X (no NORESIZE): a new vector is added alone; vector 0 keeps its connected producer', () => {
    const { rig, fns } = enableTwo(true);
    expect(rig.vfio.getIrqInfo(VfioPciIrqIndex.MSIX).flags & VfioIrqInfoFlag.NORESIZE).toBe(0);
    expect(fns).not.toContain('vfio_enable_vectors');
    expect(fns.filter((f) => f === 'kvm_arch_irq_bypass_del_producer')).toEqual([]);
    expect(rig.host.manager.connectedCount).toBe(2);
  });

  test('NORESIZE: a vector past nr_vectors disables the index and re-enables all vectors (vector 0 disconnects and reconnects)', () => {
    const { rig, fns } = enableTwo(false);
    expect(rig.vfio.getIrqInfo(VfioPciIrqIndex.MSIX).flags & VfioIrqInfoFlag.NORESIZE).toBe(VfioIrqInfoFlag.NORESIZE);
    const i = fns.indexOf('vfio_enable_vectors');
    expect(i).toBeGreaterThan(0);
    expect(fns.slice(0, i)).toContain('kvm_arch_irq_bypass_del_producer');
    expect(fns.slice(i).filter((f) => f === 'kvm_arch_irq_bypass_add_producer')).toHaveLength(2);
    expect(rig.host.manager.connectedCount).toBe(2);
    expect(rig.host.irteViolations(rig.kvm.irqfdList())).toEqual([]);
  });
});
