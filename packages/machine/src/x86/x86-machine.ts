import { GuestMemory, KvmRoutingTable, Tokens, type Actor, type MsiSink, type SimContext, type TraceEvent, type VmInterruptApi } from '@virq/core';
import type { DependencyContainer } from 'tsyringe';
import { QemuVfioPci, registerIrqBypass, type IrqBypassHost, type VfioPciCore } from '@virq/irqbypass';
import { APIC, HpetLegacy, IOAPIC_DEFAULT_BASE_ADDRESS, KVM_MIN_TIMER_PERIOD_US, KVM_PIT_FREQ, KvmPit, MSR_IA32_TSC_DEADLINE, PcGsi, QemuIrq, QemuPit, registerKvmIrqchip, registerQemuUserspaceIrqchip, type QemuPcIrqchip, type KvmVcpu, type KvmVm, type UserspaceExit } from '@virq/kvm-irqchip';
import { Msix, MsixTable, PciBus, PciCommand, PciDevice, PciReg, pciBdf } from '@virq/pci';
import { GuestPageAllocator, GuestVirtioBlk, GuestVirtioNet, GuestVirtioPci, VirtioBlkDevice, VirtioFeature, VirtioNet, VirtioNetFeature, VirtioPciProxy, assignBars, bit, type VirtioDevice } from '@virq/virtio-pci';
import type { Serial16550 } from '../devices/serial-16550.js';
import type { GuestSerial8250 } from '../guest/guest-serial8250.js';
import { attachIsaSerial } from './isa-serial.js';
import { MachineErrorCode, machineError } from '../errors.js';
import { GuestPciAccess } from '../guest/guest-pci-access.js';
import { GuestIrqDomain } from '../guest/irq-domain.js';
import { X86GuestCpu } from '../guest/x86-guest-cpu.js';
import { machineRunProblem, type Topology, type VfioConfig, type VirtioBlkConfig, type VirtioNetConfig } from '../topology.js';
import type { ComposedMachine } from '../machine.js';
import { GUEST_MAC, attachNetBackend, startNetWorkload, type NetBackendHandle } from '../net-backend.js';
import { restrictVmApi } from '../vm-api.js';
import { poissonArrivals } from '../workload.js';
import { addPcIrqRoutes } from './pc-irq-routing.js';
import { createMachineContainer } from '../container.js';
import { BLK_DISK_BYTES, BLK_IO_LATENCY_NS, startBlkClosedLoop } from '../blk-workload.js';

const MMIO_BASE = 0xfe00_0000;
const PIO_BASE = 0xc000;
/** LOCAL_TIMER_VECTOR (arch/x86/include/asm/irq_vectors.h). */
const LOCAL_TIMER_VECTOR = 0xec;
/** LVTT timer mode TSC-deadline (bits 18:17 = 2). */
const LVTT_TSCDEADLINE = 2 << 17;
const SERIAL_PORTS = [0x3f8, 0x2f8, 0x3e8, 0x2e8];


export interface X86NetDevice {
  config: VirtioNetConfig;
  device: VirtioNet;
  proxy: VirtioPciProxy;
  pci: GuestVirtioPci;
  driver: GuestVirtioNet;
  backend: NetBackendHandle;
  vcpu: number;
}

export interface X86VfioDevice {
  config: VfioConfig;
  vfio: VfioPciCore;
  qemu: QemuVfioPci;
  msix: MsixTable;
  /** Vector n → (vCPU, guest vector). */
  targets: Array<{ vcpu: number; vector: number }>;
}

/**
 * An x86 q35-like machine on KVM's in-kernel irqchip (`kvm-x86`) or on QEMU's userspace
 * irqchip (`userspace-x86`, kernel-irqchip=off: the VM has no KVM_CREATE_IRQCHIP, QEMU's
 * 8259/IOAPIC/APICs inject through KVM_INTERRUPT, no irqfd): vCPU threads with the KVM run loop,
 * QEMU's PCI bus with virtio-net (in-VMM, kernel vhost or vhost-user back end), VFIO
 * functions whose interrupts go through irqbypass (VT-d posted or remapped; AVIC), and a
 * 16550 UART on IRQ 4 through kvm_pc_gsi_handler. The guest is the Linux driver models of
 * @virq/virtio-pci plus small 8250 and VFIO-consumer drivers, running on each vCPU's run loop.
 */
export class X86Machine implements ComposedMachine {
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
  readonly msiSink: MsiSink;
  readonly gsi: PcGsi;
  /** QEMU's userspace PIC/IOAPIC/APICs and vCPU loop (`userspace-x86` only). */
  readonly qemuIrqchip: QemuPcIrqchip | undefined;
  readonly bypass: IrqBypassHost | undefined;
  readonly nets: X86NetDevice[] = [];
  readonly vfios: X86VfioDevice[] = [];
  readonly serials: Serial16550[] = [];
  readonly serialDrivers: GuestSerial8250[] = [];
  /** Legacy timers present: QEMU's i8254 PIT, and the HPET whose legacy routing it passes through. */
  private readonly timers = new Set<'pit' | 'hpet'>();
  /** The pit device is KVM's (KVM_CREATE_PIT2) rather than QEMU's i8254. */
  private pitInKernel = false;
  readonly blks: Array<{ config: VirtioBlkConfig; driver: GuestVirtioBlk; vcpu: number }> = [];
  readonly notes: string[] = [];
  private nextDev = 3;
  private nextMmio = MMIO_BASE;
  private nextPio = PIO_BASE;

  constructor(
    readonly ctx: SimContext,
    readonly topology: Topology,
    readonly container: DependencyContainer = createMachineContainer(ctx),
  ) {
    const t = topology;
    if (t.irqchip.kind !== 'kvm-x86' && t.irqchip.kind !== 'userspace-x86') {
      throw machineError(MachineErrorCode.Unsupported, machineRunProblem(t) ?? `irqchip.kind ${t.irqchip.kind} is not an x86 machine`);
    }
    const userspace = t.irqchip.kind === 'userspace-x86';
    const hostOf = new Map(t.vcpus.map((v, i) => [i, v.hostCpu]));
    // Guest CPUID with TSC-deadline (the LAPIC timer mode Linux's lapic-deadline clockevent uses).
    this.vm = registerKvmIrqchip(this.container, ctx, { nvcpus: t.vcpus.length, hostCpuOf: (n) => hostOf.get(n) ?? n + 1, irqchip: !userspace, cpuid: { tscDeadline: true } });
    if (userspace) {
      // kernel-irqchip=off: QEMU's own controllers; a device's MSI write lands in its "apic-msi" region.
      this.qemuIrqchip = registerQemuUserspaceIrqchip(this.container, ctx, this.vm);
      this.notes.push('userspace-x86 (kernel-irqchip=off): no in-kernel irqchip, so no irqfd (KVM_IRQFD is EINVAL) — every interrupt goes through QEMU (apic_set_irq → qemu_cpu_kick → KVM_INTERRUPT)');
      if (t.irqchip.apicv) this.notes.push('irqchip.apicv ignored: APICv needs the in-kernel LAPIC');
    } else {
      this.qemuIrqchip = undefined;
      this.vm.setApicv(t.irqchip.apicv);
    }
    // Devices see the seams, not the irqchip: what the container holds for core's Tokens.
    this.msiSink = this.container.resolve(Tokens.MsiSink);
    this.vmApi = restrictVmApi(this.container.resolve(Tokens.VmInterruptApi), t.routing.irqfd, t.routing.ioeventfd);
    if (!t.routing.irqfd && !userspace) this.notes.push('routing.irqfd off: guest notifiers are read by the QEMU main loop (F8)');
    if (!t.routing.ioeventfd) this.notes.push('routing.ioeventfd off: virtqueue kicks exit to QEMU (virtio_pci_notify_write)');
    this.mem = new GuestMemory([{ gpa: 0, size: t.memoryMiB * 1024 * 1024 }]);
    this.container.registerInstance(Tokens.GuestMemory, this.mem);
    this.alloc = new GuestPageAllocator(this.mem, 1 << 20, t.memoryMiB * 1024 * 1024);
    this.mainLoop = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
    this.routes = new KvmRoutingTable(this.vmApi, 24);
    if (this.qemuIrqchip === undefined) {
      // kvm_pc_setup_irq_routing runs only with the in-kernel irqchip.
      addPcIrqRoutes(this.routes);
      this.routes.commit();
    }
    this.gsi = this.qemuIrqchip?.gsi ?? PcGsi.kernelIrqchip(ctx, this.vm);
    // The driver models trace vp_notify themselves; the captured write is the exit that follows.
    this.access = new GuestPciAccess(this.bus, this.current, undefined, () => this.ctx.scheduler.current);
    const devices = (_vcpu: number, exit: UserspaceExit): number => {
      if (exit.exit === 'IO') {
        const s = this.serials.find((x) => x.claims(exit.addr));
        if (s !== undefined) {
          if (exit.write) s.ioWrite(exit.addr, exit.value);
          return exit.write ? 0 : s.ioRead(exit.addr);
        }
        if (exit.write) this.bus.pioWrite(exit.addr, exit.len as 1 | 2 | 4, exit.value);
        return exit.write ? 0 : this.bus.pioRead(exit.addr, exit.len as 1 | 2 | 4);
      }
      if (exit.write) this.bus.mmioWrite(exit.addr, exit.len as 1 | 2 | 4 | 8, exit.value);
      return exit.write ? 0 : this.bus.mmioRead(exit.addr, exit.len as 1 | 2 | 4 | 8);
    };
    // With the userspace irqchip QEMU's dispatch finds the APIC, IOAPIC and 8259 regions first.
    this.vm.onUserspaceExit = this.qemuIrqchip?.exitHandler(devices) ?? devices;
    const usesVfio = t.devices.some((d) => d.kind === 'vfio');
    // VMX posted-interrupt processing serves KVM's own APICv deliveries (irqfd MSIs, IPIs, the
    // LAPIC timer: vmx_deliver_posted_interrupt) with or without assigned devices.
    if (usesVfio || (!userspace && t.irqchip.apicv)) {
      this.bypass = registerIrqBypass(this.container, ctx, {
        kvm: this.vm,
        hostCpus: Math.max(16, ...t.vcpus.map((v) => v.hostCpu + 1)),
        vendor: t.irqchip.avic ? 'avic' : 'vmx',
        devicePosting: usesVfio && t.irqchip.posted && !userspace,
      });
      if (userspace) this.notes.push('assigned-device interrupts: host IRQ → vfio_msihandler → eventfd → QEMU main loop vfio_msi_interrupt → msix_notify → apic_send_msi (no irqfd, no posting)');
      else if (!t.irqchip.posted) this.notes.push('irqchip.posted off: assigned-device interrupts take host IRQ → vfio_msihandler → irqfd → injection');
    } else {
      this.bypass = undefined;
    }
    for (const v of this.vm.vcpus()) {
      this.cpus.push(new X86GuestCpu(v.vcpuId, ctx.scheduler, this.irqs, ctx.costs.ns.guestHandler, this.current));
    }
    // Firmware and the guest's driver probe run at time 0 on vCPU 0's guest context, before the
    // run loops start (nothing of it is measured).
    ctx.scheduler.at(0, this.vm.guestActor(this.vcpu(0)), () => this.boot());
    ctx.scheduler.runUntil(0);
  }

  private vcpu(i: number): KvmVcpu {
    return this.vm.vcpu(i)!;
  }

  /** Firmware + guest kernel boot, done before the run starts (no exits are counted for it). */
  private boot(): void {
    const t = this.topology;
    // Linux: software-enable each LAPIC (SPIV), mask the 8259s (the IOAPIC is used).
    const q = this.qemuIrqchip;
    for (const v of this.vm.vcpus()) {
      // (QEMU's APIC takes the value as the vCPU's own SVR write leaves it.)
      if (q !== undefined) q.cpu(v.vcpuId).apic.spuriousVec = 0x1ff;
      else v.lapic.regWrite(APIC.SPIV, 0x1ff);
    }
    this.vm.guestAccess(0, 'out', 0x21, 0xff, 1);
    this.vm.guestAccess(0, 'out', 0xa1, 0xff, 1);
    let serialIndex = 0;
    let virtioIndex = 0;
    let vfioIndex = 0;
    for (const d of t.devices) {
      switch (d.kind) {
        case 'virtio-net':
          this.addNet(d, virtioIndex++ % t.vcpus.length);
          break;
        case 'vfio':
          this.addVfio(d, vfioIndex++);
          break;
        case 'serial':
          this.addSerial(d.name, d.irq, serialIndex++);
          break;
        case 'virtio-blk':
          this.addBlk(d, virtioIndex++ % t.vcpus.length);
          break;
        case 'pit':
          this.timers.add(d.kind);
          this.pitInKernel = d.inKernel === true;
          break;
        case 'hpet':
          this.timers.add(d.kind);
          break;
      }
    }
  }

  private place(): number {
    const bdf = pciBdf(0, this.nextDev++);
    return bdf;
  }

  private assign(bdf: number): void {
    const w = { mmio: this.nextMmio, pio: this.nextPio };
    assignBars(this.access, bdf, w);
    this.nextMmio = w.mmio;
    this.nextPio = w.pio;
  }

  /** Host CPU for back-end threads: the first one no vCPU runs on (or the last vCPU's). */
  private backendCpu(): number {
    const used = new Set(this.topology.vcpus.map((v) => v.hostCpu));
    let c = 0;
    while (used.has(c)) c++;
    return c;
  }

  private virtioCount = 0;

  /**
   * A virtio device on the PCI bus with QEMU's virtio-pci proxy (MSI-X or INTx on IOAPIC
   * pins 16–19), and the guest's virtio-pci driver bound to it with its vectors on `vcpu`.
   */
  private attachVirtio(device: VirtioDevice, name: string, msix: boolean, vcpu: number): { proxy: VirtioPciProxy; pci: GuestVirtioPci; intxPin: number } {
    const devIndex = this.virtioCount++;
    const intxPin = 16 + (devIndex % 4);
    const proxy = new VirtioPciProxy(this.ctx, {
      device,
      vm: this.vmApi,
      routes: this.routes,
      msiSink: { deliverMsi: (m) => (this.irqs.raisedMsi(m, this.ctx.scheduler.now), this.msiSink.deliverMsi(m)) },
      intx: { setLevel: (level: boolean) => this.setIntx(intxPin, devIndex, level) },
      vectors: msix ? undefined : 0,
      ioeventfd: this.topology.routing.ioeventfd,
    });
    const bdf = this.place();
    this.bus.attach(proxy.pci, bdf & 0xff);
    this.assign(bdf);
    const apicId = this.vcpu(vcpu).apicId;
    let pci: GuestVirtioPci | undefined;
    pci = new GuestVirtioPci(this.ctx, {
      access: this.access,
      bdf,
      mem: this.mem,
      alloc: this.alloc,
      vcpu: this.vm.guestActor(this.vcpu(vcpu)),
      composeMsi: (entry) => {
        const vector = this.irqs.allocate(vcpu, `${name}-msix${entry}`, () => void pci!.msixInterrupt(entry));
        return this.irqs.registerMsi(GuestIrqDomain.x86Msi(apicId, vector), vcpu, vector);
      },
    });
    return { proxy, pci, intxPin };
  }

  private addNet(cfg: VirtioNetConfig, vcpu: number): void {
    const ring = (cfg.eventIdx ? bit(VirtioFeature.RING_EVENT_IDX) : 0n) | (cfg.packed ? bit(VirtioFeature.RING_PACKED) : 0n);
    const net =
      bit(VirtioNetFeature.MAC) | bit(VirtioNetFeature.STATUS) | bit(VirtioNetFeature.CTRL_VQ) | bit(VirtioNetFeature.CTRL_RX) |
      bit(VirtioNetFeature.MRG_RXBUF) | (cfg.queuePairs > 1 ? bit(VirtioNetFeature.MQ) : 0n);
    const device = new VirtioNet(this.ctx, {
      name: cfg.name,
      mem: this.mem,
      mainLoop: this.mainLoop,
      mac: [...GUEST_MAC],
      queuePairs: cfg.queuePairs,
      queueSize: cfg.queueSize,
      hostFeatures: net | ring | bit(VirtioFeature.RING_INDIRECT_DESC),
    });
    const { proxy, pci, intxPin } = this.attachVirtio(device, cfg.name, cfg.msix, vcpu);
    const backend = attachNetBackend(this, cfg, device, this.mem, this.backendCpu());
    const driver = new GuestVirtioNet(this.ctx, { pci, alloc: this.alloc, features: net | ring, irqModes: cfg.msix ? ['msix-per-vq', 'msix-shared'] : ['intx'] });
    if (!cfg.msix) this.bindIntx(pci, cfg.name, intxPin, vcpu);
    this.nets.push({ config: cfg, device, proxy, pci, driver, backend, vcpu });
  }

  private addBlk(cfg: VirtioBlkConfig, vcpu: number): void {
    if (cfg.backend !== 'in-vmm') this.notes.push(`${cfg.name}: virtio-blk is served by QEMU here (${cfg.backend} for block devices is not modelled)`);
    const ring = (cfg.eventIdx ? bit(VirtioFeature.RING_EVENT_IDX) : 0n) | (cfg.packed ? bit(VirtioFeature.RING_PACKED) : 0n);
    const device = new VirtioBlkDevice(this.ctx, { name: cfg.name, mem: this.mem, mainLoop: this.mainLoop, backing: new Uint8Array(BLK_DISK_BYTES), queueSize: cfg.queueSize, ioLatencyNs: BLK_IO_LATENCY_NS });
    const { pci, intxPin } = this.attachVirtio(device, cfg.name, cfg.msix, vcpu);
    const driver = new GuestVirtioBlk(this.ctx, { pci, alloc: this.alloc, features: bit(VirtioFeature.VERSION_1) | ring, irqModes: cfg.msix ? ['msix-per-vq', 'msix-shared'] : ['intx'] });
    if (!cfg.msix) this.bindIntx(pci, cfg.name, intxPin, vcpu);
    this.blks.push({ config: cfg, driver, vcpu });
  }

  /**
   * PIRQ → GSI 16–19 as on q35: a pin is shared by every fifth virtio function, so its level
   * is the OR of the functions asserting it (QEMU's pci_bus_get_irq_level in
   * ich9_lpc_update_apic, which then calls qemu_set_irq on the GSI).
   */
  private setIntx(pin: number, devIndex: number, level: boolean): void {
    const line = this.intxLine(pin);
    if (level) line.asserted.add(devIndex);
    else line.asserted.delete(devIndex);
    if (level && line.vector !== undefined) this.irqs.raised(line.vcpu, line.vector, this.ctx.scheduler.now);
    this.gsi.gsi[pin]!.set(line.asserted.size > 0, 'ich9_lpc_update_apic');
  }

  private readonly intxLines = new Map<number, { asserted: Set<number>; handlers: GuestVirtioPci[]; vector: number | undefined; vcpu: number }>();
  private intxLine(pin: number): { asserted: Set<number>; handlers: GuestVirtioPci[]; vector: number | undefined; vcpu: number } {
    let l = this.intxLines.get(pin);
    if (l === undefined) this.intxLines.set(pin, (l = { asserted: new Set(), handlers: [], vector: undefined, vcpu: 0 }));
    return l;
  }

  /**
   * Programs the IOAPIC pin the device's INTx routes to (Linux's level, active-low PCI INTx)
   * once; a device sharing the pin adds its handler to the same vector (a shared IRQ: each
   * driver's vp_interrupt runs and checks its own ISR).
   */
  private bindIntx(pci: GuestVirtioPci, name: string, pin: number, vcpu: number): void {
    const line = this.intxLine(pin);
    line.handlers.push(pci);
    if (line.vector !== undefined) return;
    line.vcpu = vcpu;
    line.vector = this.irqs.allocate(vcpu, `${name}-intx-gsi${pin}`, () => {
      for (const h of line.handlers) h.intxInterrupt();
    });
    this.programIoapic(pin, line.vector, this.vcpu(vcpu).apicId, true);
  }

  /** Writes an IOAPIC redirection entry through IOREGSEL/IOWIN, as the guest kernel does. */
  programIoapic(pin: number, vector: number, apicId: number, level: boolean): void {
    const lo = vector | (level ? (1 << 15) | (1 << 13) : 0);
    const hi = (apicId & 0xff) << 24;
    const sel = IOAPIC_DEFAULT_BASE_ADDRESS;
    const io = this.qemuIrqchip?.ioapic;
    if (io !== undefined) {
      // QEMU's IOAPIC: the same register writes, without counting them as the run's exits.
      for (const [a, v] of [[sel, 0x10 + pin * 2 + 1], [sel + 0x10, hi], [sel, 0x10 + pin * 2], [sel + 0x10, lo]] as const) io.memWrite(a, v);
      return;
    }
    this.vm.guestAccess(0, 'mmio_write', sel, 0x10 + pin * 2 + 1, 4);
    this.vm.guestAccess(0, 'mmio_write', sel + 0x10, hi, 4);
    this.vm.guestAccess(0, 'mmio_write', sel, 0x10 + pin * 2, 4);
    this.vm.guestAccess(0, 'mmio_write', sel + 0x10, lo, 4);
  }

  private addSerial(name: string, irq: number, index: number): void {
    const vcpu = 0;
    const { uart, driver, vector } = attachIsaSerial({
      ctx: this.ctx,
      name,
      port: SERIAL_PORTS[index % SERIAL_PORTS.length]!,
      irq,
      line: this.gsi.gsi[irq]!,
      mainLoop: this.mainLoop,
      irqs: this.irqs,
      vcpu: { id: vcpu, thread: this.vcpu(vcpu).actor, capture: () => this.cpus[vcpu]!.capture },
    });
    this.serials.push(uart);
    this.serialDrivers.push(driver);
    this.programIoapic(irq, vector, this.vcpu(vcpu).apicId, false);
  }

  private addVfio(cfg: VfioConfig, index: number): void {
    const host = this.bypass!;
    const requesterId = ((index + 1) << 8) | 0;
    const vfio = host.assignDevice({ name: `0000:${(index + 1).toString(16).padStart(2, '0')}:00.0`, requesterId, msixVectors: cfg.vectors });
    const pdev = new PciDevice(this.ctx, { name: cfg.name, vendorId: 0x8086, deviceId: 0x1572, classCode: 0x020000, msiSink: this.msiSink, configSize: 4096 });
    const msix = MsixTable.exclusiveBar(pdev, cfg.vectors, 0);
    const qemu = new QemuVfioPci(this.ctx, { pdev, msix, vfio, kvm: this.vmApi, routes: this.routes, mainLoop: this.mainLoop });
    const bdf = this.place();
    this.bus.attach(pdev, bdf & 0xff);
    this.assign(bdf);
    // The guest driver: enable MSI-X (config space), then program and unmask each vector.
    pdev.configWrite(PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
    pdev.configWrite(msix.capOffset + Msix.CONTROL_OFFSET, 1, Msix.ENABLE_MASK);
    const base = this.barAddress(pdev);
    const n = this.topology.vcpus.length;
    const targets: Array<{ vcpu: number; vector: number }> = [];
    for (let v = 0; v < cfg.vectors; v++) {
      const vcpuIdx = cfg.targetVcpus?.[v % cfg.targetVcpus.length] ?? (v + index) % n;
      const vector = this.irqs.allocate(vcpuIdx, `${cfg.name}-msix${v}`, () => undefined);
      const msg = GuestIrqDomain.x86Msi(this.vcpu(vcpuIdx).apicId, vector);
      const e = base + v * Msix.ENTRY_SIZE;
      this.bus.mmioWrite(e + Msix.ENTRY_VECTOR_CTRL, 4, 1);
      this.bus.mmioWrite(e + Msix.ENTRY_LOWER_ADDR, 4, msg.addressLo);
      this.bus.mmioWrite(e + Msix.ENTRY_UPPER_ADDR, 4, msg.addressHi);
      this.bus.mmioWrite(e + Msix.ENTRY_DATA, 4, msg.data);
      this.bus.mmioWrite(e + Msix.ENTRY_VECTOR_CTRL, 4, 0);
      targets.push({ vcpu: vcpuIdx, vector });
    }
    this.vfios.push({ config: cfg, vfio, qemu, msix, targets });
  }

  private barAddress(pdev: PciDevice): number {
    const lo = pdev.configRead(PciReg.BASE_ADDRESS_0, 4) & ~0xf;
    return lo >>> 0;
  }

  /** irqfd_wakeup names the GSI whose MSI route the device's interrupt takes: latency starts there. */
  observe(e: TraceEvent): void {
    if (e.fn === 'irqfd_wakeup') {
      const msi = this.routes.msiOf((e.args as { gsi: number }).gsi);
      if (msi !== undefined) this.irqs.raisedMsi(msi, e.time);
    }
  }

  private readonly ipiVectors = new Map<number, number>();
  /** The guest's CALL_FUNCTION_SINGLE vector on `vcpu` (allocated once). */
  private ipiVector(vcpu: number): number {
    let v = this.ipiVectors.get(vcpu);
    if (v === undefined) {
      // Linux ≥ 5.8's IDT entry for CALL_FUNCTION_SINGLE_VECTOR (call_function_single_interrupt before).
      v = this.irqs.allocate(vcpu, 'call-function-single', () => undefined, 'sysvec_call_function_single');
      this.ipiVectors.set(vcpu, v);
    }
    return v;
  }

  /**
   * The guest's periodic tick from a `pit` device, IRQ 0 → IOAPIC pin 2 (the timer override) →
   * vCPU 0, whose handler EOIs. Two PITs:
   * - KVM's (`inKernel`, QEMU's default with the kernel irqchip): the guest programs channel 0
   *   (ports 0x43/0x40, handled in the kernel), KVM's hrtimer expires, the kvm-pit worker pulses
   *   GSI 0 (pit_do_work → kvm_set_irq); in reinject mode a tick waits for the last one's EOI
   *   (kvm_pit_ack_irq). Rates above 5 kHz are held to kvm.ko's min_timer_period_us.
   * - QEMU's i8254: pit_irq_timer on the main loop → [hpet_handle_legacy_irq when an HPET is
   *   present, legacy mode off] → kvm_pc_gsi_handler → KVM_IRQ_LINE GSI 0 (or gsi_handler into
   *   QEMU's own PIC/IOAPIC with userspace-x86).
   */
  private startPit(hz: number, durationNs: number): void {
    if (!this.timers.has('pit')) {
      if (this.qemuIrqchip !== undefined) this.notes.push('workload.timerHz: no pit device, and the LAPIC timer of userspace-x86 (QEMU\'s APIC timer) is not modelled; no timer ticks');
      else this.startLapicTimers(hz, durationNs);
      return;
    }
    const t = this.ctx.trace.channel('qemu-irq');
    // IRQ 0's action handler (arch/x86/kernel/time.c), below common_interrupt.
    const vector = this.irqs.allocate(0, 'timer', () => void this.cpus[0]!.capture?.push({ op: 'compute', ns: 0, fn: 'timer_interrupt' }));
    this.programIoapic(2, vector, this.vcpu(0).apicId, false);
    if (this.pitInKernel) {
      const pit = new KvmPit(this.vm, { ownerPid: this.mainLoop.pid, onExpire: (when) => this.irqs.raised(0, vector, when) });
      // The guest's clockevent (i8253: pit_set_periodic): channel 0, LSB/MSB, mode 2 — at boot, so no exits are counted.
      const count = Math.max(1, Math.min(0x10000, Math.round(KVM_PIT_FREQ / hz))) & 0xffff;
      this.vm.guestAccess(0, 'out', 0x43, 0x34, 1);
      this.vm.guestAccess(0, 'out', 0x40, count & 0xff, 1);
      this.vm.guestAccess(0, 'out', 0x40, count >> 8, 1);
      if (pit.stats.clamped > 0) this.notes.push(`workload.timerHz ${hz}: KVM holds a periodic PIT to min_timer_period_us (${KVM_MIN_TIMER_PERIOD_US} µs): ${Math.round(1e9 / pit.periodNs)} ticks/s`);
      return;
    }
    const gsi0: QemuIrq = this.timers.has('hpet') ? new HpetLegacy(t, this.gsi.gsi).irqs[0]! : this.gsi.gsi[0]!;
    const out = new QemuIrq('pit.0', (_n, level) => {
      if (level) this.irqs.raised(0, vector, this.ctx.scheduler.now);
      gsi0.set(level, 'pit_irq_timer_update');
    }, 0, undefined);
    const pit = new QemuPit(this.ctx, this.mainLoop, out, Math.max(1, Math.round(1e9 / hz)));
    pit.start();
    this.ctx.scheduler.at(durationNs, this.mainLoop, () => pit.stop());
  }

  /** x86 vCPU threads are charged as they go; nothing to settle. */
  /** Steps in flight when the run stops were charged whole: take back what lies past the end. */
  finish(): void {
    for (const v of this.vm.vcpus()) v.settleCpuTime();
  }

  /** Starts every vCPU's run loop with its guest. */
  start(): void {
    for (const v of this.vm.vcpus()) {
      v.setGuest(this.cpus[v.vcpuId]!);
      v.run();
    }
  }

  /**
   * Without a `pit` device the tick is every vCPU's own LAPIC timer in TSC-deadline mode, as a
   * Linux guest runs it (the lapic-deadline clockevent, one-shot): the vector is 0xec
   * (LOCAL_TIMER_VECTOR); sysvec_apic_timer_interrupt EOIs first, then hrtimer_interrupt programs
   * the next deadline (lapic_next_deadline: WRMSR IA32_TSC_DEADLINE, an MSR_WRITE exit KVM
   * handles in its fastpath). KVM runs the deadline on the VMX preemption timer while the vCPU
   * is in guest mode (a PREEMPTION_TIMER exit at expiry) and on an hrtimer while it is blocked
   * (@virq/kvm-irqchip, KvmLapicTimer). The first deadlines are programmed at boot.
   */
  private startLapicTimers(hz: number, durationNs: number): void {
    const period = Math.max(1, Math.round(1e9 / hz));
    const n = this.vm.vcpus().length;
    for (const v of this.vm.vcpus()) {
      const id = v.vcpuId;
      const cpu = this.cpus[id]!;
      // Staggered by vCPU, as independent clockevents are; then on the tick's own grid
      // (tick_sched_timer's hrtimer_forward: late handling does not push later ticks back).
      let next = Math.round(period * (1 + id / Math.max(1, n)));
      v.onTimerExpired = (vector, time) => this.irqs.raised(id, vector, time);
      this.irqs.bind(id, LOCAL_TIMER_VECTOR, `lapic-timer${id}`, () => {
        const now = this.ctx.scheduler.now;
        cpu.capture?.push({ op: 'compute', ns: 0, fn: 'hrtimer_interrupt' });
        while (next <= now) next += period;
        // The next tick, while the workload lasts (afterwards the tick stops: NO_HZ idle).
        if (next < durationNs) cpu.capture?.push({ op: 'msr-write', index: MSR_IA32_TSC_DEADLINE, value: BigInt(next) });
      }, 'sysvec_apic_timer_interrupt');
      v.lapic.regWrite(APIC.LVTT, LOCAL_TIMER_VECTOR | LVTT_TSCDEADLINE);
      v.setMsr(MSR_IA32_TSC_DEADLINE, BigInt(next));
    }
  }

  /** Schedules the topology's workload over [0, durationNs). */
  startWorkload(durationNs: number): void {
    const w = this.topology.workload;
    if (w.timerHz > 0) this.startPit(w.timerHz, durationNs);

    const s = this.ctx.scheduler;
    startNetWorkload(this, this.nets, (v) => this.cpus[v]!, durationNs);
    for (const d of this.vfios) {
      if (w.vfioInterruptsPerSec <= 0) continue;
      const dev = d.vfio.device;
      let n = 0;
      poissonArrivals(s, 1e9 / w.vfioInterruptsPerSec, durationNs, (t, step) => void s.at(t, dev.actor, step), () => {
        const v = n++ % d.targets.length;
        const tgt = d.targets[v]!;
        this.irqs.raised(tgt.vcpu, tgt.vector, s.now);
        dev.fireMsix(v);
      });
    }
    if (w.ioDepth > 0) {
      for (const b of this.blks) {
        // blk-mq's tag depth is the virtqueue's size: requests beyond it wait in the block layer.
        const depth = Math.min(w.ioDepth, b.config.queueSize);
        if (depth < w.ioDepth) this.notes.push(`${b.config.name}: workload.ioDepth ${w.ioDepth} exceeds the queue size; ${depth} requests in flight`);
        startBlkClosedLoop(s, b.driver, depth, durationNs, (fn) => this.cpus[b.vcpu]!.at(0, fn));
      }
    }
    if (w.ipisPerSec > 0 && this.cpus.length > 1) {
      // smp_call_function_single: each vCPU sends a fixed IPI to the next one through its
      // xAPIC ICR (ICR2 = destination, then ICR — two APIC_ACCESS exits; F7).
      const n = this.cpus.length;
      for (let src = 0; src < n; src++) {
        const dst = (src + 1) % n;
        const vector = this.ipiVector(dst);
        const cpu = this.cpus[src]!;
        const apicBase = 0xfee00000;
        poissonArrivals(s, 1e9 / w.ipisPerSec, durationNs, (t, step) => cpu.at(t, step), () => {
          this.irqs.raised(dst, vector, s.now);
          // __default_send_IPI_dest_field (default_send_IPI_single_phys): ICR2, then ICR.
          cpu.capture?.push({ op: 'mmio-write', addr: apicBase + 0x310, len: 4, value: (this.vcpu(dst).apicId & 0xff) << 24, fn: '__default_send_IPI_dest_field' });
          cpu.capture?.push({ op: 'mmio-write', addr: apicBase + 0x300, len: 4, value: vector });
        });
      }
    }
    for (const serial of this.serials) {
      if (w.serialPerSec <= 0) continue;
      const cpu = this.cpus[0]!;
      // A tty write of one character: serial8250_start_tx turns THRI on; the THRI interrupt writes THR.
      const driver = this.serialDrivers[this.serials.indexOf(serial)]!;
      poissonArrivals(s, 1e9 / w.serialPerSec, durationNs, (t, step) => cpu.at(t, step), () => driver.write([0x41]));
    }
    for (const serial of this.serials) {
      if (w.serialRxPerSec <= 0) continue;
      // Console input: the chardev's fd handler in QEMU's main loop hands the character to the UART.
      poissonArrivals(s, 1e9 / w.serialRxPerSec, durationNs, (t, step) => s.at(t, this.mainLoop, step), () => serial.receive([0x61]));
    }
  }

}
