import { defineFlow } from './flow-kit.js';
import { VfioFlowRig } from './vfio-flow-rig.js';

/**
 * F11 (seed 002): an assigned NIC's MSI-X vector 1 (guest vector 0x41) is moved from vCPU 5
 * to vCPU 6 — the guest rewrites the table entry from vCPU 5 (irq affinity change); QEMU
 * re-sets the VFIO trigger and the KVM route, and the posted IRTE follows each step. After
 * it, the device fires vector 1 while vCPU 6 runs guest code: the interrupt is posted by the
 * IOMMU and taken with no VM exit.
 */
export const f11MoveMsixVector = defineFlow('F11', (s) => {
  const rig = new VfioFlowRig(s.ctx, { vcpus: 8, vectors: 3 });
  rig.enableMsix(5, [{ apicId: 2, vector: 0x40 }, { apicId: 5, vector: 0x41 }, { apicId: 3, vector: 0x42 }]);
  s.mark();
  rig.programVector(5, 1, 6, 0x41);
  rig.advance(200_000);
  const exitsBefore = rig.totalExits(6);
  const takenBefore = rig.guest.taken.length;
  rig.fire(1);
  rig.advance(20_000);
  const taken = rig.guest.taken.slice(takenBefore);
  s.notes.push(
    `after the move: device interrupt taken as ${taken.map((t) => `vector 0x${t.vector.toString(16)} on vCPU ${t.vcpu}`).join(', ') || 'nothing'}; VM exits on vCPU 6 meanwhile: ${rig.totalExits(6) - exitsBefore}`,
  );
});
