import { GuestVirtioNet, VirtioNet, ethernetFrame } from '@virq/virtio-pci';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

const PEER_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

/**
 * F10 (seed 001): a frame arrives at the host's physical NIC, whose IRQ is taken on host CPU 0;
 * the host stack bridges it to the tap device (the host half is traced as the kernel's
 * functions: no package models the host network stack); QEMU's main loop reads the tap fd
 * (tap_send) and virtio-net receives it into the guest's rx ring, then interrupts the guest:
 * `msix` — msix_notify → KVM_SIGNAL_MSI; `intx` — pci_set_irq → KVM_IRQ_LINE_STATUS →
 * IOAPIC. The vCPU runs guest code on host CPU 1, so kvm_vcpu_kick IPIs it out
 * (EXTERNAL_INTERRUPT) and the interrupt is injected on the next entry.
 */
export const f10NicToGuestUserspaceBackend = defineFlow('F10', (s) => {
  const intx = s.variant === 'intx';
  const rig = new X86FlowRig(s.ctx, { hostCpuOf: () => 1 });
  const net = new VirtioNet(s.ctx, { name: 'virtio-net0', mem: rig.mem, mainLoop: rig.mainLoop });
  const fn = rig.addVirtio(net, intx ? { vectors: 0 } : {});
  const driver = new GuestVirtioNet(s.ctx, { pci: fn.pci, alloc: rig.alloc, irqModes: intx ? ['intx'] : ['msix-per-vq'] });
  // The guest is busy (computing until 1 ms), in guest mode on host CPU 1.
  rig.guest(0, 1_000_000, () => undefined);
  rig.start();
  rig.runUntil(5_000);
  s.mark();
  const sched = s.ctx.scheduler;
  const host = s.ctx.trace.channel('host-net');
  const nic = sched.actor({ name: 'irq/nic0', kind: 'host-cpu', cpu: 0 });
  const frame = ethernetFrame(driver.mac, PEER_MAC, 64, 1);
  sched.at(20_000, nic, () => {
    if (host.on) {
      host.emit('host.irq', 'handle_irq_event', 'handle_edge_irq', { irq: 'nic0', cpu: 0 });
      host.emit('host.rx', '__netif_receive_skb_core', '__netif_receive_skb_one_core', { len: frame.length });
      host.emit('host.br', 'br_handle_frame', '__netif_receive_skb_core', { port: 'eth0' });
      host.emit('host.tun', 'tun_net_xmit', 'dev_hard_start_xmit', { dev: 'tap0' });
    }
    nic.charge(s.ctx.costs.ns.ringChain);
    sched.after(s.ctx.costs.ns.threadWakeup, rig.mainLoop, () => {
      if (host.on) host.emit('host.tap', 'tap_send', 'aio_dispatch_handler', { fd: 'tap0' });
      net.receive(frame);
    });
  });
  rig.runUntil(200_000);
  const v = rig.vm.vcpu(0)!;
  s.notes.push(`${driver.rxPackets} frame(s) received by the guest driver; vCPU 0: ${v.hostIpis} host IPI(s), exits ${JSON.stringify(Object.fromEntries(v.exits))}`);
});
