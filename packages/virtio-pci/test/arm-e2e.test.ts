import { GuestMemory, KvmRoutingTable, TraceRecorder, createSimContext } from '@virq/core';
import { ArmHost, ArmVm, GuestGicDriver } from '@virq/arm-gic';
import { type PciAccess, PciBus, pciBdf } from '@virq/pci';
import { GuestPageAllocator, GuestVirtioNet, GuestVirtioPci, VirtioNet, VirtioPciProxy, assignBars } from '@virq/virtio-pci';
import { FakeVhost } from './harness.js';

describe('the same device on arm64 (@virq/arm-gic behind VmInterruptApi): F17', () => {
  test('vhost call fd → irqfd → MSI route with DeviceID = requester id → vITS LPI → the guest\'s vring_interrupt', () => {
    const ctx = createSimContext({ seed: 5 });
    const host = new ArmHost(ctx, { numCpus: 2, version: 'v3' });
    const tables = GuestGicDriver.tablesSize(1);
    const ramBase = Math.ceil(tables / (1 << 20)) * (1 << 20) + (1 << 20);
    const mem = GuestMemory.ofSize(ramBase + (16 << 20));
    const vm = new ArmVm(ctx, { numVcpus: 1, gic: 'v3', memory: mem, host });
    vm.start();
    const api = vm.interruptApi;
    const mainLoop = ctx.scheduler.actor({ name: 'qemu-system-aarch64', kind: 'vmm-main', cpu: 0 });
    const net = new VirtioNet(ctx, { name: 'net0', mem, mainLoop });
    const proxy = new VirtioPciProxy(ctx, { device: net, vm: api, routes: new KvmRoutingTable(api, 32), msiSink: vm.msiSink });
    const bus = new PciBus(0);
    const bdf = pciBdf(0, 1);
    bus.attach(proxy.pci, bdf & 0xff);
    expect(proxy.pci.requesterId).toBe(0x8);
    const access: PciAccess = {
      configRead: (b, o, s) => bus.configRead(b, o, s),
      configWrite: (b, o, s, v) => bus.configWrite(b, o, s, v),
      mmioRead: (a, s) => bus.mmioRead(a, s),
      mmioWrite: (a, s, v) => {
        if (!vm.irqfd.mmioWrite(a, s, BigInt(v))) bus.mmioWrite(a, s, v);
      },
      pioRead: (p, s) => bus.pioRead(p, s),
      pioWrite: (p, s, v) => bus.pioWrite(p, s, v),
    };
    assignBars(access, bdf, { mmio: 0x4000_0000, pio: 0x1000 });
    // The guest's ITS driver maps DeviceID 8 with 4 events (config + 3 queues): MSI-X entry e → event e → an LPI.
    const { lpis, messages } = vm.guestDriver.mapMsi(0x8, 4, 0);
    const alloc = new GuestPageAllocator(mem, ramBase, ramBase + (16 << 20));
    const pci = new GuestVirtioPci(ctx, { access, bdf, mem, alloc, composeMsi: (e) => messages[e]! });
    lpis.forEach((lpi, e) => vm.vcpus[0]!.onInterrupt(lpi, () => pci.msixInterrupt(e)));
    const worker = ctx.scheduler.actor({ name: 'vhost-4242', kind: 'vhost-worker', cpu: 1 });
    const be = new FakeVhost(ctx, 'kernel', worker);
    net.setBackend({ kind: 'vhost-kernel', ops: [be] });
    const guest = ctx.scheduler.actor({ name: 'guest', kind: 'guest', cpu: 0 });
    let d: GuestVirtioNet | undefined;
    ctx.scheduler.at(100_000, guest, () => {
      d = new GuestVirtioNet(ctx, { pci, alloc });
    });
    ctx.scheduler.runUntil(1_000_000);
    expect(net.vhostStarted).toBe(true);
    const rec = new TraceRecorder(ctx.trace.events$);
    ctx.scheduler.at(2_000_000, guest, () => d!.startXmit(new Uint8Array(64)));
    ctx.scheduler.runUntil(3_000_000);
    expect(be.txFrames.length).toBe(1);
    expect(d!.txCompleted).toBe(1);
    const fns = rec.functions();
    for (const fn of ['irqfd_wakeup', 'vgic_its_resolve_lpi', 'vring_interrupt']) expect(fns).toContain(fn);
    // The MSI routes carry the requester id as the ITS DeviceID.
    const route = net.queues[1]!.vector;
    expect(proxy.msix!.getMessage(route).requesterId).toBe(0x8);
  });
});
