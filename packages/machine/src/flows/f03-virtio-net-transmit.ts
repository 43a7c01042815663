import { GuestVirtioNet, VirtioNet, ethernetFrame, type NetPeer } from '@virq/virtio-pci';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

/**
 * F3: a frame transmitted by the guest's virtio_net driver (start_xmit) on a device served by
 * QEMU (the in-VMM back end): the tx kick goes through the ioeventfd as in F1 and QEMU's main
 * loop pops the tx ring and hands the frame to the peer (the tap netdev).
 */
export const f03VirtioNetTransmit = defineFlow('F3', (s) => {
  const rig = new X86FlowRig(s.ctx);
  const sent: Uint8Array[] = [];
  const peer: NetPeer = { send: (f) => void sent.push(f.slice()) };
  const net = new VirtioNet(s.ctx, { name: 'virtio-net0', mem: rig.mem, mainLoop: rig.mainLoop, peer });
  const fn = rig.addVirtio(net);
  const driver = new GuestVirtioNet(s.ctx, { pci: fn.pci, alloc: rig.alloc });
  rig.guest(0, 10_000, () => void driver.startXmit(ethernetFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], driver.mac, 64, 1)));
  s.mark();
  rig.start();
  rig.runUntil(500_000);
  s.notes.push(`${sent.length} frame(s) reached the tap peer; ${driver.txCompleted} tx completion(s) seen by the guest`);
});
