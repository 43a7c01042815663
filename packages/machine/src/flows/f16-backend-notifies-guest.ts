import { VhostUserNetOps } from '@virq/vhost-user';
import { GuestVirtioNet, VirtioNet, ethernetFrame } from '@virq/virtio-pci';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

/**
 * F16 (seed 003): the vhost-user back end (@virq/vhost-user's net back end, macswap: every
 * frame the guest sends comes back on its rx ring) takes the guest's frame off the tx ring and
 * puts the reply in rx; for each ring it decides with EVENT_IDX whether to notify
 * (vhost_vring_call_split: vhost_need_event against used_event) and writes the call eventfd,
 * which is a KVM irqfd: irqfd_wakeup → the MSI route → the guest's LAPIC (F9).
 */
export const f16BackendNotifiesGuest = defineFlow('F16', (s) => {
  const rig = new X86FlowRig(s.ctx);
  const net = new VirtioNet(s.ctx, { name: 'virtio-net0', mem: rig.mem, mainLoop: rig.mainLoop });
  const backend = new VhostUserNetOps({ ctx: s.ctx, cpu: 3 });
  net.setBackend({ kind: 'vhost-user', ops: [backend] });
  const fn = rig.addVirtio(net);
  const driver = rig.boot(0, () => new GuestVirtioNet(s.ctx, { pci: fn.pci, alloc: rig.alloc }));
  rig.guest(0, 10_000, () => void driver.startXmit(ethernetFrame([0x02, 0, 0, 0, 0, 0x01], driver.mac, 64, 1)));
  rig.start();
  rig.runUntil(5_000);
  s.mark();
  rig.runUntil(500_000);
  s.notes.push(`VIRTIO_RING_F_EVENT_IDX negotiated: ${(fn.pci.features & (1n << 29n)) !== 0n}; guest: ${driver.txCompleted} tx completion(s), ${driver.rxPackets} frame(s) received`);
});
