import { EventFd } from '@virq/core';
import { VfioIrqSetFlag, VfioPciIrqIndex, x86MsiFixed } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

const TRIGGER_EVENTFD = VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER;

function rigWithRoute(msi = x86MsiFixed(3, 0x61)): { rig: Rig; gsi: number; fd: EventFd } {
  const rig = new Rig({ vcpus: 4, msixVectors: 1 });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId);
  const gsi = rig.routes.addMsiRoute(msi);
  rig.routes.commit();
  return { rig, gsi, fd: new EventFd(rig.ctx.scheduler, { name: 'vector0' }) };
}

describe('F13: irqfd assignment registers a bypass consumer', () => {
  test('consumer first: kvm_irqfd_assign registers with no match; the producer connects later', () => {
    const { rig, gsi, fd } = rigWithRoute();
    const a = rig.mark();
    rig.kvm.irqfd({ fd, gsi });
    expect(rig.fns(a)).toEqual(['kvm_irqfd_assign', 'irqfd_update', 'irq_bypass_register_consumer']);
    expect(rig.host.manager.consumerCount).toBe(1);
    expect(rig.host.manager.connectedCount).toBe(0);
    const b = rig.mark();
    rig.vfio.setIrqs({ flags: TRIGGER_EVENTFD, index: VfioPciIrqIndex.MSIX, start: 0, count: 1, data: [fd] });
    const fns = rig.fns(b);
    expect(fns.slice(fns.indexOf('irq_bypass_register_producer'))).toEqual([
      'irq_bypass_register_producer',
      'kvm_arch_irq_bypass_add_producer',
      'vmx_pi_update_irte',
      'kvm_pi_irte_update',
      'irq_set_vcpu_affinity',
      'modify_irte',
    ]);
    const callers = rig.recorder.events.slice(b).filter((e) => e.fn === 'kvm_arch_irq_bypass_add_producer').map((e) => e.caller);
    expect(callers).toEqual(['__connect']);
    expect(rig.host.remapper.postedTarget(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toEqual({ vcpuId: 3, vector: 0x61 });
  });

  test('producer first: the consumer connects inside kvm_irqfd_assign', () => {
    const { rig, gsi, fd } = rigWithRoute();
    rig.vfio.setIrqs({ flags: TRIGGER_EVENTFD, index: VfioPciIrqIndex.MSIX, start: 0, count: 1, data: [fd] });
    expect(rig.host.manager.producerCount).toBe(1);
    expect(rig.host.remapper.modeOf(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toBe('remapped');
    const a = rig.mark();
    rig.kvm.irqfd({ fd, gsi });
    expect(rig.fns(a).slice(0, 5)).toEqual(['kvm_irqfd_assign', 'irqfd_update', 'irq_bypass_register_consumer', 'kvm_arch_irq_bypass_add_producer', 'vmx_pi_update_irte']);
    expect(rig.host.manager.connectedCount).toBe(1);
    expect(rig.host.remapper.postedTarget(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toEqual({ vcpuId: 3, vector: 0x61 });
  });

  test.each([
    ['logical destination reaching two vCPUs', { addressLo: 0xfee00000 | (0x3 << 12) | 4, addressHi: 0, data: 0x61 }, 'multi-destination'],
    ['NMI delivery mode', { addressLo: 0xfee00000 | (1 << 12), addressHi: 0, data: 0x400 | 0x61 }, 'not-postable'],
    ['a destination no vCPU has', { addressLo: 0xfee00000 | (0x20 << 12), addressHi: 0, data: 0x61 }, 'no-vcpu'],
  ])('remapped mode for %s', (_name, msi, reason) => {
    const { rig, gsi, fd } = rigWithRoute(msi);
    rig.kvm.irqfd({ fd, gsi });
    rig.vfio.setIrqs({ flags: TRIGGER_EVENTFD, index: VfioPciIrqIndex.MSIX, start: 0, count: 1, data: [fd] });
    expect(rig.host.manager.connectedCount).toBe(1);
    expect(rig.host.remapper.modeOf(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toBe('remapped');
    expect(rig.host.kvmBypass.decisionOf(fd)).toEqual({ mode: 'remapped', reason });
  });

  test('deassigning the irqfd disconnects (del_producer → IRTE remapped) and unregisters the consumer', () => {
    const { rig, gsi, fd } = rigWithRoute();
    rig.kvm.irqfd({ fd, gsi });
    rig.vfio.setIrqs({ flags: TRIGGER_EVENTFD, index: VfioPciIrqIndex.MSIX, start: 0, count: 1, data: [fd] });
    const a = rig.mark();
    rig.kvm.irqfd({ fd, gsi, deassign: true });
    expect(rig.fns(a).slice(0, 4)).toEqual(['irqfd_shutdown', 'irq_bypass_unregister_consumer', 'kvm_arch_irq_bypass_del_producer', 'vmx_pi_update_irte']);
    expect(rig.host.manager.consumerCount).toBe(0);
    expect(rig.host.manager.producerCount).toBe(1);
    expect(rig.host.remapper.modeOf(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toBe('remapped');
  });
});
