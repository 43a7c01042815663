import { GuestVirtioNet, VirtioNet, VirtioNetCtrl } from '@virq/virtio-pci';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

/**
 * F2: `ifconfig eth0 promisc`. The guest's virtio_net driver sends VIRTIO_NET_CTRL_RX_PROMISC
 * on the control queue and polls the used ring for the status byte; QEMU serves the control
 * queue (virtio_net_handle_ctrl → virtio_net_handle_rx_mode). Variant `wrong-size` sends the
 * command without its one-byte payload: the device answers VIRTIO_NET_ERR, promisc unchanged.
 */
export const f02VirtioNetCtrlPromisc = defineFlow('F2', (s) => {
  const rig = new X86FlowRig(s.ctx);
  const net = new VirtioNet(s.ctx, { name: 'virtio-net0', mem: rig.mem, mainLoop: rig.mainLoop });
  const fn = rig.addVirtio(net);
  const driver = new GuestVirtioNet(s.ctx, { pci: fn.pci, alloc: rig.alloc });
  // QEMU's virtio-net is promiscuous after reset (n->promisc = 1): start from an interface without it.
  net.rxFilter.promisc = false;
  let status = -1;
  rig.guest(0, 10_000, () => {
    if (s.variant === 'wrong-size') {
      // A buggy driver: RX_PROMISC without its one-byte payload (iov_to_buf gets 0 bytes).
      driver.sendCommand(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new Uint8Array(0), 1000, (c) => void (status = c.status));
    } else {
      // virtnet_set_rx_mode on IFF_PROMISC: RX_PROMISC 1, RX_ALLMULTI, MAC_TABLE_SET; the first reply is the promisc one.
      driver.setRxMode({ promisc: true, allmulti: false }, (replies) => void (status = replies[0]?.status ?? -1));
    }
  });
  s.mark();
  rig.start();
  rig.runUntil(500_000);
  s.notes.push(`status byte ${status} (${status === VirtioNetCtrl.OK ? 'VIRTIO_NET_OK' : status === VirtioNetCtrl.ERR ? 'VIRTIO_NET_ERR' : 'no reply'}); device promisc = ${net.rxFilter.promisc}`);
});
