import { VhostUserNetOps } from '@virq/vhost-user';
import { CommonCfg, GuestVirtioNet, VirtioNet } from '@virq/virtio-pci';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

/**
 * F14 (seed 003): the guest's virtio_net driver sets DRIVER_OK on a virtio-net whose data
 * queues are served by a vhost-user back end (@virq/vhost-user's in-process back end behind
 * QEMU's vhost-user front end). QEMU starts vhost: guest notifiers per vector (each an irqfd
 * on its MSI route, as the vector is unmasked), then per ring NUM, BASE, ADDR, KICK (the
 * host notifier, also the ioeventfd) and CALL. `no-irqfd`: the same start on a VM without
 * irqfd (QEMU 2.3/2.7 crashed in kvm_virtio_pci_irqfd_use): the model falls back to QEMU's
 * main loop reading the call fds (F8) and says so. `vectorless-tx`: the guest re-initialises the device with the tx queue
 * left without a vector; QEMU then sends SET_VRING_CALL with no fd for it.
 */
export const f14VhostStart = defineFlow('F14', (s) => {
  const irqfd = s.variant !== 'no-irqfd';
  const rig = new X86FlowRig(s.ctx, { irqfd });
  const net = new VirtioNet(s.ctx, { name: 'virtio-net0', mem: rig.mem, mainLoop: rig.mainLoop });
  const backend = new VhostUserNetOps({ ctx: s.ctx, cpu: 3 });
  net.setBackend({ kind: 'vhost-user', ops: [backend] });
  const fn = rig.addVirtio(net);
  if (s.variant !== 'vectorless-tx') s.mark();
  rig.boot(0, () => new GuestVirtioNet(s.ctx, { pci: fn.pci, alloc: rig.alloc }));
  if (s.variant === 'vectorless-tx') {
    // The guest resets the device and brings it up again with the tx queue (1) left without
    // an MSI-X vector (VIRTIO_MSI_NO_VECTOR): rx keeps vector 1, the config vector is 0.
    const base = fn.proxy.pci.bar(4)!.address!;
    const saved = [0, 1, 2].map((q) => ({ ...net.queues[q]! }));
    rig.boot(0, () => {
      const w = (o: number, size: 1 | 2 | 4, v: number): void => rig.access.mmioWrite(base + o, size, v);
      w(CommonCfg.STATUS, 1, 0);
      w(CommonCfg.STATUS, 1, 3);
      w(CommonCfg.GFSELECT, 4, 1);
      w(CommonCfg.GF, 4, 1);
      w(CommonCfg.STATUS, 1, 11);
      w(CommonCfg.MSIX, 2, 0);
      for (let q = 0; q < 3; q++) {
        w(CommonCfg.Q_SELECT, 2, q);
        w(CommonCfg.Q_DESCLO, 4, saved[q]!.desc);
        w(CommonCfg.Q_AVAILLO, 4, saved[q]!.driver);
        w(CommonCfg.Q_USEDLO, 4, saved[q]!.device);
        if (q === 0) w(CommonCfg.Q_MSIX, 2, 1);
        w(CommonCfg.Q_ENABLE, 2, 1);
      }
    });
    s.mark();
    rig.boot(0, () => rig.access.mmioWrite(base + CommonCfg.STATUS, 1, 15));
    s.notes.push(`tx queue vector after the reset: 0x${net.queues[1]!.vector.toString(16)} (VIRTIO_MSI_NO_VECTOR = 0xffff)`);
  }
  s.notes.push(
    ...net.backendMessages,
    `vhost started: ${net.vhostStarted}; guest notifier masking used: ${net.useGuestNotifierMask}; guest irq mode ${fn.pci.irqMode}`,
  );
});
