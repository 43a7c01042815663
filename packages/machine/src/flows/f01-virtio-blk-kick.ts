import { GuestVirtioBlk, VirtioBlk, VirtioBlkDevice } from '@virq/virtio-pci';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

/**
 * F1: a virtio-blk read. The guest's virtio_blk driver queues the request on vCPU 0 and kicks;
 * the notify write takes an EPT_MISCONFIG exit. With an ioeventfd (QEMU's default on KVM) KVM
 * matches it on the fast MMIO bus and signals the host notifier, which QEMU's main loop reads
 * (virtio_queue_host_notifier_read) before popping the ring; without one (`ioeventfd=off`) the
 * exit goes to QEMU, which handles the write synchronously (virtio_pci_notify_write).
 */
export const f01VirtioBlkKick = defineFlow('F1', (s) => {
  const ioeventfd = s.variant === 'ioeventfd';
  const rig = new X86FlowRig(s.ctx, { ioeventfd });
  const backing = new Uint8Array(64 * 512);
  const blk = new VirtioBlkDevice(s.ctx, { name: 'virtio-blk0', mem: rig.mem, mainLoop: rig.mainLoop, backing, ioLatencyNs: 20_000 });
  const fn = rig.addVirtio(blk);
  const driver = new GuestVirtioBlk(s.ctx, { pci: fn.pci, alloc: rig.alloc });
  let status = -1;
  rig.guest(0, 10_000, () => void driver.queueRq({ type: VirtioBlk.T_IN, sector: 3, len: 512 }, (c) => void (status = c.status)));
  s.mark();
  rig.start();
  rig.runUntil(500_000);
  s.notes.push(
    ioeventfd ? 'notify write matched a len-0 ioeventfd on KVM\'s fast MMIO bus: no exit to QEMU' : 'ioeventfd=off: the notify write exited to QEMU (KVM_EXIT_MMIO)',
    `request completed with status ${status} (VIRTIO_BLK_S_OK = 0), ${driver.completed} completion(s) taken by the guest`,
  );
});
