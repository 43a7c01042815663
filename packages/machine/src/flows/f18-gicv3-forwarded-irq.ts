import { VTIMER_PPI } from '@virq/arm-gic';
import { defineFlow } from './flow-kit.js';
import { armFlowRig } from './arm-flow-rig.js';

/**
 * F18 (seed 004): GICv3, a physical interrupt forwarded to a vCPU indirectly — the virtual
 * timer PPI 27, mapped to the vCPU (HW = 1). It fires while the guest runs: the host takes it
 * (an IRQ exit), KVM marks the virtual interrupt pending and writes it into a list register
 * with HW = 1 and the physical INTID on the next entry; the guest's EOI deactivates the
 * physical interrupt as well.
 */
export const f18Gicv3ForwardedIrq = defineFlow('F18', (s) => {
  const r = armFlowRig(s.ctx, 'v3', { vcpus: 1 });
  const { vm, host } = r;
  const sched = s.ctx.scheduler;
  vm.guestDriver.enablePpi(0, VTIMER_PPI);
  vm.vcpus[0]!.guest.idleWithWfi = false; // a busy guest: the timer fires while it runs
  vm.forwardPhysicalIrq(VTIMER_PPI, 0, VTIMER_PPI);
  let taken = 0;
  vm.vcpus[0]!.onInterrupt(VTIMER_PPI, () => {
    taken++;
    host.gic.setPpiLevel(0, VTIMER_PPI, false); // the guest reprograms its timer: the line drops
  });
  sched.runUntil(50_000);
  const timer = sched.actor({ name: 'arch-timer', kind: 'device', cpu: 0 });
  s.mark();
  sched.at(60_000, timer, () => host.gic.setPpiLevel(0, VTIMER_PPI, true));
  sched.runUntil(200_000);
  s.notes.push(`guest took the virtual timer PPI ${taken} time(s); physical PPI still active: ${host.isActive(VTIMER_PPI, 0)}`);
});
