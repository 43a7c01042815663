import { GuestVirtioNet, VirtioNet, ethernetFrame } from '@virq/virtio-pci';
import { VhostKernelNetOps } from '@virq/vhost-user';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

/**
 * F8: virtio-net served by kernel vhost-net on a VM whose QEMU does not use irqfd
 * (kvm_irqfds_enabled() false). vhost signals the queue's call eventfd as usual, but nobody
 * in the kernel consumes it: QEMU's main loop polls it (virtio_queue_guest_notifier_read),
 * clears it and raises the interrupt itself — MSI-X (`msix`: msix_notify → KVM_SIGNAL_MSI) or,
 * for a guest on INTx with vhostforce (`intx`), the PCI INTx pin from ISR bit 0.
 */
export const f08VirtioIrqWithoutIrqfd = defineFlow('F8', (s) => {
  const intx = s.variant === 'intx';
  const rig = new X86FlowRig(s.ctx, { irqfd: false });
  const net = new VirtioNet(s.ctx, { name: 'virtio-net0', mem: rig.mem, mainLoop: rig.mainLoop });
  const vhost = new VhostKernelNetOps({ ctx: s.ctx, memory: rig.mem, ownerPid: 1002, cpu: 3 });
  net.setBackend({ kind: 'vhost-kernel', ops: [vhost], ...(intx ? { force: true } : {}) });
  const fn = rig.addVirtio(net);
  const driver = rig.boot(0, () => new GuestVirtioNet(s.ctx, { pci: fn.pci, alloc: rig.alloc, irqModes: intx ? ['intx'] : ['msix-per-vq', 'msix-shared'] }));
  rig.guest(0, 10_000, () => void driver.startXmit(ethernetFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], driver.mac, 64, 1)));
  rig.start();
  rig.runUntil(5_000);
  s.mark();
  rig.runUntil(500_000);
  s.notes.push(...net.backendMessages, `guest irq mode ${fn.pci.irqMode}; ${driver.txCompleted} tx completion(s) seen by the guest`);
});
