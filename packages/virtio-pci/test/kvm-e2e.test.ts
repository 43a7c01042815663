import { GuestMemory, KvmRoutingTable, TraceRecorder, createSimContext } from '@virq/core';
import { APIC, KvmVm } from '@virq/kvm-irqchip';
import { type PciAccess, PciBus, pciBdf } from '@virq/pci';
import { GuestPageAllocator, GuestVirtioNet, GuestVirtioPci, VirtioNet, VirtioPciProxy, assignBars } from '@virq/virtio-pci';
import { FakeVhost } from './harness.js';

/** Guest accesses through KVM: in-kernel buses and ioeventfds first, then an exit to QEMU's PCI bus. */
class KvmAccess implements PciAccess {
  constructor(
    readonly vm: KvmVm,
    readonly bus: PciBus,
  ) {}
  configRead(b: number, o: number, s: number): number {
    return this.bus.configRead(b, o, s);
  }
  configWrite(b: number, o: number, s: number, v: number): void {
    this.bus.configWrite(b, o, s, v);
  }
  mmioRead(a: number, s: 1 | 2 | 4 | 8): number {
    return this.bus.mmioRead(a, s);
  }
  mmioWrite(a: number, s: 1 | 2 | 4 | 8, v: number): void {
    if (s !== 8 && !this.vm.guestAccess(0, 'mmio_write', a, v, s).toUserspace) return;
    this.bus.mmioWrite(a, s, v);
  }
  pioRead(p: number, s: 1 | 2 | 4): number {
    return this.bus.pioRead(p, s);
  }
  pioWrite(p: number, s: 1 | 2 | 4, v: number): void {
    if (!this.vm.guestAccess(0, 'out', p, v, s).toUserspace) return;
    this.bus.pioWrite(p, s, v);
  }
}

function machine(irqchip: boolean) {
  const ctx = createSimContext({ seed: 3 });
  const vm = new KvmVm(ctx, { nvcpus: 1, irqchip });
  if (irqchip) {
    const page = vm.getLapic(0);
    page[APIC.SPIV >> 2] = 0x1ff;
    vm.setLapic(0, page);
  }
  const mem = new GuestMemory([{ gpa: 0, size: 16 << 20 }]);
  const mainLoop = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  const net = new VirtioNet(ctx, { name: 'net0', mem, mainLoop });
  const routes = new KvmRoutingTable(vm, 24);
  const proxy = new VirtioPciProxy(ctx, { device: net, vm, routes, msiSink: { deliverMsi: (m) => (irqchip ? vm.signalMsi(m) : -1) } });
  const bus = new PciBus(0);
  const bdf = pciBdf(0, 3);
  bus.attach(proxy.pci, bdf & 0xff);
  const access = new KvmAccess(vm, bus);
  assignBars(access, bdf, { mmio: 0xfe00_0000, pio: 0xc000 });
  const alloc = new GuestPageAllocator(mem, 1 << 20, 16 << 20);
  const pci = new GuestVirtioPci(ctx, { access, bdf, mem, alloc });
  const vhost = ctx.scheduler.actor({ name: 'vhost-1234', kind: 'vhost-worker', cpu: 3 });
  const be = new FakeVhost(ctx, 'kernel', vhost);
  net.setBackend({ kind: 'vhost-kernel', ops: [be] });
  const vcpu = vm.guestActor(vm.vcpu(0)!);
  return { ctx, vm, net, proxy, pci, alloc, be, vhost, vcpu, mainLoop };
}

describe('with @virq/kvm-irqchip behind VmInterruptApi', () => {
  test('F1 + F14 + F9: KVM ioeventfd wakes vhost, its call fd is a KVM irqfd on the MSI route, the vector lands in the LAPIC IRR', () => {
    const m = machine(true);
    let d: GuestVirtioNet | undefined;
    m.ctx.scheduler.after(0, m.vcpu, () => {
      d = new GuestVirtioNet(m.ctx, { pci: m.pci, alloc: m.alloc });
    });
    m.ctx.scheduler.runUntilIdle();
    expect(m.net.vhostStarted).toBe(true);
    const txEntry = m.pci.msixEntries.indexOf(1);
    const txVector = m.pci.msixMessages[txEntry]!.data & 0xff;
    const rec = new TraceRecorder(m.ctx.trace.events$);
    m.ctx.scheduler.after(0, m.vcpu, () => d!.startXmit(new Uint8Array(64)));
    m.ctx.scheduler.runUntilIdle();
    expect(m.be.txFrames.length).toBe(1);
    const fns = rec.functions();
    const chain = ['vp_notify', 'ioeventfd_write', 'eventfd_signal', 'irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'kvm_set_msi_irq', 'kvm_irq_delivery_to_apic_fast', '__apic_accept_irq'];
    const seen = fns.filter((f) => chain.includes(f));
    expect(seen.filter((f, i) => seen.indexOf(f) === i)).toEqual(chain);
    expect(rec.events.find((e) => e.fn === 'irqfd_wakeup')!.actor).toBe(m.vhost);
    expect(m.vm.vcpu(0)!.lapic.toJson().irr).toContain(txVector);
    // QEMU's main loop never ran for the data path.
    expect(rec.events.some((e) => e.actor === m.mainLoop)).toBe(false);
  });

  test('F14 bad configuration: no in-kernel irqchip → no irqfd; vhost falls back to the main-loop guest notifier path with a message', () => {
    const m = machine(false);
    m.ctx.scheduler.after(0, m.vcpu, () => new GuestVirtioNet(m.ctx, { pci: m.pci, alloc: m.alloc, irqModes: ['msix-per-vq', 'msix-shared'] }));
    expect(() => m.ctx.scheduler.runUntilIdle()).not.toThrow();
    expect(m.net.backendMessages.join('\n')).toMatch(/without irqfd/);
    expect(m.net.vhostStarted).toBe(true);
  });
});
