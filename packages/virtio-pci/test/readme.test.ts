import { GuestMemory, KvmRoutingTable, createSimContext } from '@virq/core';
import { KvmVm } from '@virq/kvm-irqchip';                 // or any VmInterruptApi (ARM vGIC …)
import { type PciAccess, PciBus, pciBdf } from '@virq/pci';
import { GuestPageAllocator, GuestVirtioNet, GuestVirtioPci, VirtioNet, VirtioPciProxy, assignBars } from '@virq/virtio-pci';

test('the README example runs: promisc OK and one frame sent', () => {
  const sent: number[] = [];
  const replies: string[] = [];

  const ctx = createSimContext({ seed: 1 });
  const vm = new KvmVm(ctx, { nvcpus: 1 });
  const mem = new GuestMemory([{ gpa: 0, size: 16 << 20 }]);
  const net = new VirtioNet(ctx, { name: 'net0', mem, peer: { send: (frame) => sent.push(frame.length) } });
  const proxy = new VirtioPciProxy(ctx, { device: net, vm, routes: new KvmRoutingTable(vm, 24), msiSink: { deliverMsi: (m) => vm.signalMsi(m) } });

  const bus = new PciBus(0);
  const bdf = pciBdf(0, 3);
  bus.attach(proxy.pci, bdf & 0xff);
  // A machine puts KVM's buses in front of the PCI bus (ioeventfds first, then an exit to QEMU):
  const access: PciAccess = {
    configRead: (b, o, s) => bus.configRead(b, o, s),
    configWrite: (b, o, s, v) => bus.configWrite(b, o, s, v),
    mmioRead: (a, s) => bus.mmioRead(a, s),
    mmioWrite: (a, s, v) => { if (s === 8 || vm.guestAccess(0, 'mmio_write', a, v, s).toUserspace) bus.mmioWrite(a, s, v); },
    pioRead: (p, s) => bus.pioRead(p, s),
    pioWrite: (p, s, v) => { if (vm.guestAccess(0, 'out', p, v, s).toUserspace) bus.pioWrite(p, s, v); },
  };
  assignBars(access, bdf, { mmio: 0xfe000000, pio: 0xc000 });

  const vcpu = vm.guestActor(vm.vcpu(0)!);
  const alloc = new GuestPageAllocator(mem, 1 << 20, 16 << 20);
  const pci = new GuestVirtioPci(ctx, { access, bdf, mem, alloc });
  ctx.scheduler.after(0, vcpu, () => {
    const eth0 = new GuestVirtioNet(ctx, { pci, alloc });
    eth0.setPromisc(true, (c) => replies.push(c.ok ? 'VIRTIO_NET_OK' : 'VIRTIO_NET_ERR'));
    eth0.startXmit(new Uint8Array(64));
  });
  ctx.scheduler.runUntilIdle();
  expect(replies).toEqual(['VIRTIO_NET_OK']);
  expect(sent).toEqual([64]);
});
