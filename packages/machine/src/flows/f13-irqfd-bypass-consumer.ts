import { EventFd } from '@virq/core';
import { VfioIrqSetFlag, VfioPciIrqIndex, x86MsiFixed } from '@virq/irqbypass';
import { defineFlow } from './flow-kit.js';
import { VfioFlowRig } from './vfio-flow-rig.js';

const TRIGGER_EVENTFD = VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER;

/**
 * F13: KVM_IRQFD on an MSI route registers an irqbypass consumer whose token is the eventfd;
 * VFIO_DEVICE_SET_IRQS with the same eventfd registers the producer. Whichever comes second
 * connects them (`consumer-first`: inside the producer's registration; `producer-first`:
 * inside kvm_irqfd_assign) and KVM switches the IRTE to posted mode (a single-destination
 * fixed MSI to vCPU 3).
 */
export const f13IrqfdBypassConsumer = defineFlow('F13', (s) => {
  const rig = new VfioFlowRig(s.ctx, { vcpus: 4, vectors: 1 });
  const gsi = rig.routes.addMsiRoute(x86MsiFixed(3, 0x61));
  rig.routes.commit();
  const fd = new EventFd(s.ctx.scheduler, { name: 'vfio-msix0' });
  const irqfd = (): void => rig.vm.irqfd({ fd, gsi });
  const setIrqs = (): void => rig.vfio.setIrqs({ flags: TRIGGER_EVENTFD, index: VfioPciIrqIndex.MSIX, start: 0, count: 1, data: [fd] });
  s.mark();
  if (s.variant === 'consumer-first') {
    irqfd();
    setIrqs();
  } else {
    setIrqs();
    irqfd();
  }
  const irte = rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!);
  const target = rig.host.remapper.postedTarget(irte);
  s.notes.push(`IRTE ${irte}: ${rig.host.remapper.modeOf(irte)}${target === undefined ? '' : ` to vCPU ${target.vcpuId} vector 0x${target.vector.toString(16)}`}`);
});
