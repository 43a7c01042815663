import { defineFlow } from './flow-kit.js';
import { VfioFlowRig } from './vfio-flow-rig.js';

/**
 * F12 (seed 002): the guest masks vector 0 of an assigned function (QEMU moves VFIO's
 * trigger to its userspace notifier), the device fires twice while it is masked (QEMU's
 * vfio_msi_interrupt finds it masked: PBA bit), then the guest unmasks it: the KVM route
 * is updated and committed, the irqfd trigger returns, and the pending vector is replayed —
 * exactly once.
 */
export const f12MaskUnmaskMsixVector = defineFlow('F12', (s) => {
  const rig = new VfioFlowRig(s.ctx, { vcpus: 8, vectors: 3 });
  rig.enableMsix(5, [{ apicId: 2, vector: 0x40 }, { apicId: 5, vector: 0x41 }, { apicId: 3, vector: 0x42 }]);
  s.mark();
  rig.maskVector(2, 0, true);
  rig.advance(50_000);
  const takenBefore = rig.guest.taken.length;
  rig.fire(0);
  rig.fire(0);
  rig.advance(50_000);
  const whileMasked = rig.guest.taken.length - takenBefore;
  const pending = rig.msix.isPending(0);
  rig.maskVector(2, 0, false);
  rig.advance(50_000);
  const replayed = rig.guest.taken.slice(takenBefore + whileMasked);
  s.notes.push(
    `2 device interrupts while masked: ${whileMasked} taken, PBA bit ${pending ? 'set' : 'clear'}`,
    `replayed on unmask: ${replayed.length} interrupt(s) (${replayed.map((t) => `vector 0x${t.vector.toString(16)} on vCPU ${t.vcpu}`).join(', ')}); PBA bit now ${rig.msix.isPending(0) ? 'set' : 'clear'}`,
  );
});
