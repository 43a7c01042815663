import { GuestMemory, KvmRoutingTable, type Actor, type IrqPin, type SimContext, type VmInterruptApi } from '@virq/core';
import { APIC, KvmVm, PcGsi } from '@virq/kvm-irqchip';
import { PciBus, pciBdf } from '@virq/pci';
import { GuestPageAllocator, GuestVirtioPci, VirtioPciProxy, assignBars, type VirtioDevice } from '@virq/virtio-pci';
import { GuestPciAccess } from '../guest/guest-pci-access.js';
import { GuestIrqDomain } from '../guest/irq-domain.js';
import { X86GuestCpu } from '../guest/x86-guest-cpu.js';
import { restrictVmApi } from '../vm-api.js';
import { addPcIrqRoutes } from '../x86/pc-irq-routing.js';

export interface X86FlowRigOptions {
  nvcpus?: number;
  /** KVM_IRQFD offered to QEMU (kvm_irqfds_enabled). Default true. */
  irqfd?: boolean;
  /** KVM_IOEVENTFD offered to QEMU (kvm_eventfds_enabled). Default true. */
  ioeventfd?: boolean;
  /** Host CPU of vCPU n (default n + 1). */
  hostCpuOf?: (vcpu: number) => number;
}

/** One virtio function on the rig's PCI bus with the guest's virtio_pci driver bound to it. */
export interface X86VirtioFunction {
  proxy: VirtioPciProxy;
  pci: GuestVirtioPci;
  bdf: number;
}

/**
 * The smallest x86 KVM machine the virtio flows need: a KvmVm with the in-kernel irqchip and
 * its vCPU run loops, QEMU's main loop and PCI bus, QEMU's GSI routing table (legacy pins as
 * kvm_pc_setup_irq_routing sets them), guest RAM, and per vCPU the guest kernel whose driver
 * code runs on that vCPU (its register writes take their real exits).
 */
export class X86FlowRig {
  readonly vm: KvmVm;
  readonly mem: GuestMemory;
  readonly bus = new PciBus(0);
  readonly irqs = new GuestIrqDomain();
  readonly cpus: X86GuestCpu[] = [];
  readonly current: { cpu: X86GuestCpu | undefined } = { cpu: undefined };
  readonly access: GuestPciAccess;
  readonly alloc: GuestPageAllocator;
  readonly mainLoop: Actor;
  readonly routes: KvmRoutingTable;
  readonly vmApi: VmInterruptApi;
  readonly gsi: PcGsi;
  private nextDev = 3;
  private window = { mmio: 0xfe00_0000, pio: 0xc000 };

  constructor(
    readonly ctx: SimContext,
    o: X86FlowRigOptions = {},
  ) {
    this.vm = new KvmVm(ctx, { nvcpus: o.nvcpus ?? 1, ...(o.hostCpuOf === undefined ? {} : { hostCpuOf: o.hostCpuOf }) });
    this.vmApi = restrictVmApi(this.vm, o.irqfd ?? true, o.ioeventfd ?? true);
    this.mem = new GuestMemory([{ gpa: 0, size: 16 << 20, name: 'pc.ram' }]);
    this.alloc = new GuestPageAllocator(this.mem, 1 << 20, 16 << 20);
    this.mainLoop = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
    this.routes = new KvmRoutingTable(this.vmApi, 24);
    addPcIrqRoutes(this.routes);
    this.routes.commit();
    this.gsi = PcGsi.kernelIrqchip(ctx, this.vm);
    this.access = new GuestPciAccess(this.bus, this.current, undefined, () => this.ctx.scheduler.current);
    // QEMU's KVM_RUN loop: KVM_EXIT_IO / KVM_EXIT_MMIO dispatched to the PCI bus.
    this.vm.onUserspaceExit = (_vcpu, exit) => {
      if (exit.exit === 'IO') {
        if (exit.write) this.bus.pioWrite(exit.addr, exit.len as 1 | 2 | 4, exit.value);
        return exit.write ? 0 : this.bus.pioRead(exit.addr, exit.len as 1 | 2 | 4);
      }
      if (exit.write) this.bus.mmioWrite(exit.addr, exit.len as 1 | 2 | 4 | 8, exit.value);
      return exit.write ? 0 : this.bus.mmioRead(exit.addr, exit.len as 1 | 2 | 4 | 8);
    };
    for (const v of this.vm.vcpus()) {
      v.lapic.regWrite(APIC.SPIV, 0x1ff);
      this.cpus.push(new X86GuestCpu(v.vcpuId, ctx.scheduler, this.irqs, ctx.costs.ns.guestHandler, this.current));
    }
    // Linux masks the 8259s and uses the IOAPIC.
    this.vm.guestAccess(0, 'out', 0x21, 0xff, 1);
    this.vm.guestAccess(0, 'out', 0xa1, 0xff, 1);
  }

  /**
   * Plugs `device` into the bus behind virtio-pci and binds the guest's virtio_pci driver on
   * `vcpu` (MSI-X vectors allocated on that vCPU; INTx on IOAPIC pin `intxPin`).
   */
  addVirtio(device: VirtioDevice, o: { vcpu?: number; vectors?: number; intxPin?: number } = {}): X86VirtioFunction {
    const vcpu = o.vcpu ?? 0;
    const pin = o.intxPin ?? 16;
    const line = this.gsi.gsi[pin]!;
    const intx: IrqPin = { setLevel: (level: boolean) => line.set(level, 'ich9_lpc_update_apic') };
    const proxy = new VirtioPciProxy(this.ctx, {
      device,
      vm: this.vmApi,
      routes: this.routes,
      msiSink: { deliverMsi: (m) => this.vm.signalMsi(m) },
      intx,
      ...(o.vectors === undefined ? {} : { vectors: o.vectors }),
    });
    const bdf = pciBdf(0, this.nextDev++);
    this.bus.attach(proxy.pci, bdf & 0xff);
    assignBars(this.access, bdf, this.window);
    const apicId = this.vm.vcpu(vcpu)!.apicId;
    let pci: GuestVirtioPci | undefined;
    pci = new GuestVirtioPci(this.ctx, {
      access: this.access,
      bdf,
      mem: this.mem,
      alloc: this.alloc,
      vcpu: this.vm.guestActor(this.vm.vcpu(vcpu)!),
      composeMsi: (entry) => {
        const vector = this.irqs.allocate(vcpu, `${device.name}-msix${entry}`, () => void pci!.msixInterrupt(entry));
        return this.irqs.registerMsi(GuestIrqDomain.x86Msi(apicId, vector), vcpu, vector);
      },
    });
    const intxVector = this.irqs.allocate(vcpu, `${device.name}-intx`, () => void pci!.intxInterrupt());
    this.programIoapic(pin, intxVector, apicId, true);
    return { proxy, pci, bdf };
  }

  /** The guest kernel programs IOAPIC pin `pin` through IOREGSEL/IOWIN. */
  programIoapic(pin: number, vector: number, apicId: number, level: boolean): void {
    const lo = vector | (level ? (1 << 15) | (1 << 13) : 0);
    const sel = 0xfec00000;
    this.vm.guestAccess(0, 'mmio_write', sel, 0x10 + pin * 2 + 1, 4);
    this.vm.guestAccess(0, 'mmio_write', sel + 0x10, (apicId & 0xff) << 24, 4);
    this.vm.guestAccess(0, 'mmio_write', sel, 0x10 + pin * 2, 4);
    this.vm.guestAccess(0, 'mmio_write', sel + 0x10, lo, 4);
  }

  /**
   * Runs boot-time guest code (a driver's probe) on `vcpu`'s thread before the run loops
   * start: its register accesses go straight to the devices, as firmware/boot does here.
   */
  boot<T>(vcpu: number, fn: () => T): T {
    let out: T | undefined;
    this.ctx.scheduler.after(0, this.vm.guestActor(this.vm.vcpu(vcpu)!), () => void (out = fn()));
    this.ctx.scheduler.runUntilIdle();
    return out as T;
  }

  /** Runs `fn` as guest kernel code on `vcpu` at virtual time `at` (its register writes exit). */
  guest(vcpu: number, at: number, fn: () => void): void {
    this.cpus[vcpu]!.at(at, fn);
  }

  /** Starts every vCPU's KVM_RUN loop. */
  start(): void {
    for (const v of this.vm.vcpus()) {
      v.setGuest(this.cpus[v.vcpuId]!);
      v.run();
    }
  }

  /** Runs the machine until nothing is left to do or `until` (virtual ns) is reached. */
  runUntil(until: number): void {
    this.ctx.scheduler.runUntil(until);
  }
}
