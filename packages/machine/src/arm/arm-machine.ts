import { EventFd, GuestMemory, KvmRoutingTable, Tokens, type Actor, type MsiMessage, type MsiSink, type SimContext, type TraceEvent, type VmInterruptApi } from '@virq/core';
import type { DependencyContainer } from 'tsyringe';
import { ArmHost, GuestGicDriver, KVM_ARM_IRQ_TYPE_SPI, KvmArchTimer, VTIMER_PPI, armIrqLine, registerArmGic, type ArmVm, type GicVersion } from '@virq/arm-gic';
import { IrqBypassManager } from '@virq/irqbypass';
import { PciBus, pciBdf } from '@virq/pci';
import { GuestPageAllocator, GuestVirtioBlk, GuestVirtioNet, GuestVirtioPci, VirtioBlkDevice, VirtioFeature, VirtioNet, VirtioNetFeature, VirtioPciProxy, assignBars, bit, type VirtioDevice } from '@virq/virtio-pci';
import { PL011, type Pl011 } from '../devices/pl011.js';
import type { GuestPl011 } from '../guest/guest-pl011.js';
import { VIRT_UART_BASE, VIRT_UART_SPI, attachVirtPl011 } from './virt-pl011.js';
import { ArmGuestCpu } from '../guest/arm-guest-cpu.js';
import { GuestPciAccess } from '../guest/guest-pci-access.js';
import { GuestIrqDomain } from '../guest/irq-domain.js';
import type { Topology, VfioConfig, VirtioBlkConfig, VirtioNetConfig } from '../topology.js';
import type { ComposedMachine } from '../machine.js';
import { GUEST_MAC, attachNetBackend, startNetWorkload, type NetBackendHandle } from '../net-backend.js';
import { restrictVmApi } from '../vm-api.js';
import { createMachineContainer } from '../container.js';
import { BLK_DISK_BYTES, BLK_IO_LATENCY_NS, startBlkClosedLoop } from '../blk-workload.js';
import { poissonArrivals } from '../workload.js';
import { MachineErrorCode, machineError } from '../errors.js';

const MMIO_BASE = 0x1000_0000;
/** QEMU virt's PCIe host (GPEX): INTA–INTD on SPIs 3–6 (VIRT_PCIE), swizzled by slot. */
const GPEX_FIRST_SPI = 3;

interface ArmVfioFunction {
  config: VfioConfig;
  deviceId: number;
  hostIrqs: number[];
  fds: EventFd[];
  targets: Array<{ vcpu: number; lpi: number }>;
}

/**
 * An arm64 "virt" machine on KVM's vGIC: the same devices as the x86 machine (virtio-net on
 * virtio-pci, assigned functions, a UART) behind the same VmInterruptApi, with the GIC
 * version chosen by the topology's one `irqchip.kind` line. MSIs go through the guest's vITS
 * (DeviceID = PCI requester id); assigned-device interrupts are host LPIs whose VFIO-style
 * handler signals an eventfd, connected to KVM's irqfd through the irqbypass manager, which
 * on GICv4 forwards them as vLPIs (kvm_vgic_v4_set_forwarding).
 */
export class ArmMachine implements ComposedMachine {
  readonly host: ArmHost;
  readonly vm: ArmVm;
  readonly mem: GuestMemory;
  readonly bus = new PciBus(0);
  readonly irqs = new GuestIrqDomain();
  readonly cpus: ArmGuestCpu[] = [];
  readonly current: { cpu: { capture: ArmGuestCpu['capture'] | undefined } | undefined } = { cpu: undefined };
  readonly access: GuestPciAccess;
  readonly alloc: GuestPageAllocator;
  readonly mainLoop: Actor;
  readonly routes: KvmRoutingTable;
  readonly vmApi: VmInterruptApi;
  readonly msiSink: MsiSink;
  readonly manager: IrqBypassManager;
  readonly nets: Array<{ config: VirtioNetConfig; device: VirtioNet; proxy: VirtioPciProxy; pci: GuestVirtioPci; driver: GuestVirtioNet; backend: NetBackendHandle; vcpu: number }> = [];
  readonly vfios: ArmVfioFunction[] = [];
  /** The next vITS DeviceID for an assigned function's vector (above PCI bus 0). */
  private nextGuestDevid = 0x100;
  readonly serials: Array<{ uart: Pl011; driver: GuestPl011; spi: number }> = [];
  readonly blks: Array<{ config: VirtioBlkConfig; driver: GuestVirtioBlk; vcpu: number }> = [];
  readonly notes: string[] = [];
  private nextDev = 1;
  private nextMmio = MMIO_BASE;

  constructor(
    readonly ctx: SimContext,
    readonly topology: Topology,
    readonly container: DependencyContainer = createMachineContainer(ctx),
  ) {
    const t = topology;
    const version: GicVersion = t.irqchip.kind === 'gicv3' ? 'v3' : t.irqchip.kind === 'gicv4' ? 'v4' : 'v4.1';
    if (version !== 'v3' && !t.irqchip.posted) this.notes.push(`irqchip.posted off: the ${t.irqchip.kind} host forwards no vLPIs; assigned-device interrupts go through KVM's vITS`);
    if (t.irqchip.apicv || t.irqchip.avic) this.notes.push('irqchip.apicv/avic are x86 settings; ignored on an ARM GIC');
    const hostCpus = Math.max(2, ...t.vcpus.map((v) => v.hostCpu + 1));
    this.host = new ArmHost(ctx, { numCpus: hostCpus, version });
    const tables = GuestGicDriver.tablesSize(t.vcpus.length);
    const ramBase = Math.ceil(tables / (1 << 20)) * (1 << 20) + (1 << 20);
    this.mem = GuestMemory.ofSize(ramBase + t.memoryMiB * 1024 * 1024);
    this.alloc = new GuestPageAllocator(this.mem, ramBase, ramBase + t.memoryMiB * 1024 * 1024);
    this.container.registerInstance(Tokens.GuestMemory, this.mem);
    this.vm = registerArmGic(this.container, ctx, { numVcpus: t.vcpus.length, gic: version, memory: this.mem, host: this.host, vcpuCpus: t.vcpus.map((v) => v.hostCpu) });
    // Devices see the seams, not the GIC: what the container holds for core's Tokens.
    this.msiSink = this.container.resolve(Tokens.MsiSink);
    this.vmApi = restrictVmApi(this.container.resolve(Tokens.VmInterruptApi), t.routing.irqfd, t.routing.ioeventfd);
    if (!t.routing.irqfd) this.notes.push('routing.irqfd off: guest notifiers are read by the QEMU main loop (F8)');
    this.mainLoop = ctx.scheduler.actor({ name: 'qemu-system-aarch64', kind: 'vmm-main', cpu: 0 });
    this.routes = new KvmRoutingTable(this.vmApi, 32);
    this.manager = new IrqBypassManager(ctx);
    this.vm.userspaceMmio = (_vcpu, a) => {
      const uart = this.serials[0]?.uart;
      if (uart !== undefined && a.addr >= VIRT_UART_BASE && a.addr < VIRT_UART_BASE + PL011.SIZE) {
        if (a.write) uart.mmioWrite(a.addr - VIRT_UART_BASE, Number(a.value & 0xffffffffn));
        else a.done?.(BigInt(uart.mmioRead(a.addr - VIRT_UART_BASE)));
        return;
      }
      if (a.write) this.bus.mmioWrite(a.addr, a.len, Number(a.value & 0xffffffffn));
      else a.done?.(BigInt(this.bus.mmioRead(a.addr, a.len)));
    };
    // irqbypass on ARM: KVM's irqfd is the consumer; a connection forwards the host LPI as a vLPI.
    this.vm.irqfd.setIrqfdBypassHooks({
      irqfdAssigned: (view) => {
        const route = view.route;
        this.manager.registerConsumer(
          {
            token: view.eventfd,
            addProducer: (p) => void (route !== undefined && this.vm.kvmVgicV4SetForwarding(p.irq, route)),
            delProducer: (p) => void (route !== undefined && this.vm.kvmVgicV4UnsetForwarding(p.irq, route)),
          },
          'kvm_irqfd_assign',
        );
      },
      irqfdDeassigned: () => undefined,
      irqfdRoutingUpdated: () => undefined,
    });
    this.vm.start();
    for (const v of this.vm.vcpus) this.cpus.push(new ArmGuestCpu(v, ctx.scheduler, this.current));
    this.access = new GuestPciAccess(this.bus, this.current, undefined, () => this.ctx.scheduler.current);
    // Before the run loop owns the guest (firmware, probe), writes go through KVM's ioeventfd
    // bus, then the PCI bus, without exits.
    const api = this.vm.irqfd;
    const bus = this.bus;
    this.directMmio = (a, s, v) => {
      if (!api.mmioWrite(a, s, BigInt(v >>> 0))) bus.mmioWrite(a, s, v);
    };
    ctx.scheduler.at(0, this.vm.vcpus[0]!.actor, () => this.boot());
    ctx.scheduler.runUntil(0);
  }

  private readonly directMmio: (addr: number, size: 1 | 2 | 4 | 8, value: number) => void;

  private boot(): void {
    let virtioIndex = 0;
    let vfioIndex = 0;
    for (const d of this.topology.devices) {
      switch (d.kind) {
        case 'virtio-net':
          this.addNet(d, virtioIndex++ % this.topology.vcpus.length);
          break;
        case 'vfio':
          this.addVfio(d, vfioIndex++);
          break;
        case 'serial':
          this.addSerial(d.name);
          break;
        case 'virtio-blk':
          this.addBlk(d, virtioIndex++ % this.topology.vcpus.length);
          break;
        default:
          this.notes.push(`${d.name}: ${d.kind} is not part of ARM machine runs; ignored`);
      }
    }
  }

  /** Host CPU for back-end threads: the first one no vCPU runs on (or the last vCPU's). */
  private backendCpu(): number {
    const used = new Set(this.topology.vcpus.map((v) => v.hostCpu));
    let c = 0;
    while (used.has(c)) c++;
    return c;
  }

  /**
   * A virtio device on the PCI bus with QEMU's virtio-pci proxy, its MSI-X vectors mapped by
   * the guest's ITS driver (DeviceID = requester id, one LPI per vector on `vcpu`), and the
   * guest's virtio-pci driver bound to it.
   */
  private attachVirtio(device: VirtioDevice, name: string, msix: boolean, vcpu: number): { proxy: VirtioPciProxy; pci: GuestVirtioPci } {
    const irqs = this.irqs;
    const sched = this.ctx.scheduler;
    const slot = this.nextDev++;
    // INTA of slot s goes to GPEX line (s + 0) % 4 (pci_swizzle_map_irq_fn), SPI 3 + that.
    const intxSpi = GPEX_FIRST_SPI + (slot % 4);
    const proxy = new VirtioPciProxy(this.ctx, {
      device,
      vm: this.vmApi,
      routes: this.routes,
      msiSink: { deliverMsi: (m) => (irqs.raisedMsi(m, sched.now), this.msiSink.deliverMsi(m)) },
      intx: { setLevel: (level: boolean) => this.gpexSetIrq(intxSpi, name, level) },
      vectors: msix ? undefined : 0,
      ioeventfd: this.topology.routing.ioeventfd,
    });
    const bdf = pciBdf(0, slot);
    this.bus.attach(proxy.pci, bdf & 0xff);
    const boot = { configRead: this.access.configRead.bind(this.access), configWrite: this.access.configWrite.bind(this.access), mmioRead: this.access.mmioRead.bind(this.access), mmioWrite: this.directMmio, pioRead: this.access.pioRead.bind(this.access), pioWrite: this.access.pioWrite.bind(this.access) };
    const w = { mmio: this.nextMmio, pio: 0x1000 };
    assignBars(boot, bdf, w);
    this.nextMmio = w.mmio;
    let pci: GuestVirtioPci | undefined;
    if (!msix) {
      // Legacy INTx: a level SPI the guest's PCI host driver maps (interrupt-map); every
      // function on the line runs its vp_interrupt, which reads its ISR.
      this.bindSpi(intxSpi, vcpu, `${name}-intx-spi${intxSpi}`, () => void pci!.intxInterrupt());
      pci = new GuestVirtioPci(this.ctx, { access: this.access, bdf, mem: this.mem, alloc: this.alloc, vcpu: this.vm.vcpus[vcpu]!.actor, composeMsi: () => {
        throw machineError(MachineErrorCode.Unsupported, `${name}: MSI-X is off`);
      } });
      return { proxy, pci };
    }
    const nvec = proxy.msix?.vectors ?? 1;
    const { lpis, messages } = this.vm.guestDriver.mapMsi(proxy.pci.requesterId, nvec, vcpu);
    lpis.forEach((lpi, e) => {
      this.irqs.bind(vcpu, lpi, `${name}-msix${e}`, () => void pci!.msixInterrupt(e));
      this.irqs.registerMsi(messages[e]!, vcpu, lpi);
      const cpu = this.cpus[vcpu]!;
      this.vm.vcpus[vcpu]!.onInterrupt(lpi, (intid) => cpu.runGuest(() => void this.irqs.handle(vcpu, intid, sched.now)));
    });
    pci = new GuestVirtioPci(this.ctx, { access: this.access, bdf, mem: this.mem, alloc: this.alloc, vcpu: this.vm.vcpus[vcpu]!.actor, composeMsi: (e) => messages[e]! });
    return { proxy, pci };
  }

  private addNet(cfg: VirtioNetConfig, vcpu: number): void {
    const ring = (cfg.eventIdx ? bit(VirtioFeature.RING_EVENT_IDX) : 0n) | (cfg.packed ? bit(VirtioFeature.RING_PACKED) : 0n);
    const net = bit(VirtioNetFeature.MAC) | bit(VirtioNetFeature.STATUS) | bit(VirtioNetFeature.CTRL_VQ) | bit(VirtioNetFeature.CTRL_RX) | bit(VirtioNetFeature.MRG_RXBUF) | (cfg.queuePairs > 1 ? bit(VirtioNetFeature.MQ) : 0n);
    const device = new VirtioNet(this.ctx, { name: cfg.name, mem: this.mem, mainLoop: this.mainLoop, mac: [...GUEST_MAC], queuePairs: cfg.queuePairs, queueSize: cfg.queueSize, hostFeatures: net | ring | bit(VirtioFeature.RING_INDIRECT_DESC) });
    const { proxy, pci } = this.attachVirtio(device, cfg.name, cfg.msix, vcpu);
    const backend = attachNetBackend(this, cfg, device, this.mem, this.backendCpu());
    const driver = new GuestVirtioNet(this.ctx, { pci, alloc: this.alloc, features: net | ring, irqModes: cfg.msix ? ['msix-per-vq', 'msix-shared'] : ['intx'] });
    this.nets.push({ config: cfg, device, proxy, pci, driver, backend, vcpu });
  }

  private addBlk(cfg: VirtioBlkConfig, vcpu: number): void {
    if (cfg.backend !== 'in-vmm') this.notes.push(`${cfg.name}: virtio-blk is served by QEMU here (${cfg.backend} for block devices is not modelled)`);
    const ring = (cfg.eventIdx ? bit(VirtioFeature.RING_EVENT_IDX) : 0n) | (cfg.packed ? bit(VirtioFeature.RING_PACKED) : 0n);
    const device = new VirtioBlkDevice(this.ctx, { name: cfg.name, mem: this.mem, mainLoop: this.mainLoop, backing: new Uint8Array(BLK_DISK_BYTES), queueSize: cfg.queueSize, ioLatencyNs: BLK_IO_LATENCY_NS });
    const { pci } = this.attachVirtio(device, cfg.name, cfg.msix, vcpu);
    const driver = new GuestVirtioBlk(this.ctx, { pci, alloc: this.alloc, features: bit(VirtioFeature.VERSION_1) | ring, irqModes: cfg.msix ? ['msix-per-vq', 'msix-shared'] : ['intx'] });
    this.blks.push({ config: cfg, driver, vcpu });
  }


  /**
   * The virt board's one non-secure UART: a PL011 at 0x0900_0000 on SPI 1 whatever the
   * topology's `irq` says (that is the ISA IRQ an x86 machine puts the port on), driven by the
   * guest's amba-pl011 driver (see virt-pl011.ts).
   */
  private addSerial(name: string): void {
    if (this.serials.length > 0) {
      this.notes.push(`${name}: the virt board has one PL011 (VIRT_UART); this serial port is not part of the run`);
      return;
    }
    const spi = VIRT_UART_SPI;
    const vcpu = 0;
    const { uart, driver } = attachVirtPl011({
      ctx: this.ctx,
      name,
      vm: this.vm,
      mainLoop: this.mainLoop,
      vcpu: this.vm.vcpus[vcpu]!,
      // The line's handler runs where the SPI targets.
      raised: () => this.irqs.raised(this.spiLine(spi).vcpu, 32 + spi, this.ctx.scheduler.now),
    });
    this.bindSpi(spi, vcpu, `${name}-spi${spi}`, () => void driver.interrupt());
    this.serials.push({ uart, driver, spi });
  }

  private addVfio(cfg: VfioConfig, index: number): void {
    const deviceId = ((index + 1) << 8) | 0;
    const n = this.topology.vcpus.length;
    const hostIrqs = this.host.mapDevice(deviceId, cfg.vectors, 0);
    const t = this.ctx.trace.channel('vfio');
    const fds: EventFd[] = [];
    const targets: Array<{ vcpu: number; lpi: number }> = [];
    // The guest's driver: one LPI per vector on its target vCPU (the vITS mapping).
    for (let v = 0; v < cfg.vectors; v++) {
      const vcpu = cfg.targetVcpus?.[v % cfg.targetVcpus.length] ?? (v + index) % n;
      // One vITS DeviceID per vector (each vector has its own target vCPU here), from one
      // counter over every assigned function: (index+1)<<8 + v + 1 collided as soon as a
      // function had more than 255 vectors. IDs start above bus 0 (virtio's requester ids).
      if (this.nextGuestDevid > 0xffff) throw machineError(MachineErrorCode.Unsupported, `${cfg.name}: the assigned functions have more vectors than the vITS's 16-bit DeviceIDs leave room for`);
      const { lpis, messages } = this.vm.guestDriver.mapMsi(this.nextGuestDevid++, 1, vcpu);
      const lpi = lpis[0]!;
      const msg = messages[0]!;
      this.irqs.bind(vcpu, lpi, `${cfg.name}-msix${v}`, () => undefined);
      const cpu = this.cpus[vcpu]!;
      this.vm.vcpus[vcpu]!.onInterrupt(lpi, (i) => cpu.runGuest(() => void this.irqs.handle(vcpu, i, this.ctx.scheduler.now)));
      const fd = new EventFd(this.ctx.scheduler, { name: `vfio-${cfg.name}-msix${v}` });
      fds.push(fd);
      const hostIrq = hostIrqs[v]!;
      // vfio_msihandler: the host LPI's handler signals the trigger eventfd.
      this.host.requestIrq(hostIrq, `vfio-msix[${v}](${cfg.name})`, () => {
        if (t.on) {
          t.emit('vfio.msihandler', 'vfio_msihandler', '__handle_irq_event_percpu', { irq: hostIrq });
          t.emit('vfio.eventfd_signal', 'eventfd_signal', 'vfio_msihandler', { fd: fd.fd });
        }
        fd.write(1);
        return 'handled';
      }, 0);
      this.manager.registerProducer({ token: fd, irq: hostIrq }, 'vfio_msi_set_vector_signal');
      targets.push({ vcpu, lpi });
      if (!this.vmApi.irqfdCapable) {
        this.vfioThroughQemu(cfg.name, v, fd, msg);
        continue;
      }
      // QEMU: an MSI route and an irqfd on it (the consumer side registers through the hook).
      const gsi = this.routes.addMsiRoute(msg);
      this.routes.commit();
      this.vmApi.irqfd({ fd, gsi });
    }
    this.vfios.push({ config: cfg, deviceId, hostIrqs, fds, targets });
  }

  /** Level SPIs with more than one source (a UART and PCI INTx, or functions sharing a GPEX line): wired-OR. */
  private readonly spiLines = new Map<number, { sources: Set<string>; handlers: Array<() => void>; level: boolean; vcpu: number }>();

  private spiLine(spi: number): { sources: Set<string>; handlers: Array<() => void>; level: boolean; vcpu: number } {
    let l = this.spiLines.get(spi);
    if (l === undefined) this.spiLines.set(spi, (l = { sources: new Set(), handlers: [], level: false, vcpu: 0 }));
    return l;
  }

  /** A source drives SPI `spi`; KVM_IRQ_LINE when the OR of its sources changes. */
  private setSpiLevel(spi: number, source: string, level: boolean): void {
    const l = this.spiLine(spi);
    if (level) l.sources.add(source);
    else l.sources.delete(source);
    const any = l.sources.size > 0;
    if (any === l.level) return;
    l.level = any;
    this.vm.irqfd.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_SPI, 0, 32 + spi), any);
  }

  /** The guest's handler for a level SPI (the first binder enables it; sharers add theirs: every one runs). */
  private bindSpi(spi: number, vcpu: number, name: string, handler: () => void): void {
    const l = this.spiLine(spi);
    l.handlers.push(handler);
    if (l.handlers.length > 1) return;
    l.vcpu = vcpu;
    const intid = 32 + spi;
    this.vm.guestDriver.enableSpi(intid, { trigger: 'level', vcpu });
    this.irqs.bind(vcpu, intid, name, () => {
      for (const h of l.handlers) h();
    });
    const cpu = this.cpus[vcpu]!;
    const sched = this.ctx.scheduler;
    this.vm.vcpus[vcpu]!.onInterrupt(intid, (i) => cpu.runGuest(() => void this.irqs.handle(vcpu, i, sched.now)));
  }

  /** pci_bus_change_irq_level → gpex_set_irq → qemu_set_irq on the GIC's SPI input. */
  private gpexSetIrq(spi: number, name: string, level: boolean): void {
    const t = this.ctx.trace.channel('qemu');
    if (t.on) {
      t.emit('qemu.gpex', 'gpex_set_irq', 'pci_bus_change_irq_level', { irq: spi - GPEX_FIRST_SPI, level: level ? 1 : 0 });
      t.emit('qemu.irq', 'qemu_set_irq', 'gpex_set_irq', { spi, level: level ? 1 : 0 });
    }
    // The line's handler runs on the vCPU the SPI targets (the first function bound to it).
    if (level) this.irqs.raised(this.spiLine(spi).vcpu, 32 + spi, this.ctx.scheduler.now);
    this.setSpiLevel(spi, `pci:${name}`, level);
  }

  /**
   * Without irqfd QEMU adds no KVM route for the vector (vfio_add_kvm_msi_virq gives up): VFIO
   * signals `vector->interrupt`, an fd handler in QEMU's main loop — vfio_msi_interrupt →
   * msix_notify → msi_send_message, whose write to GITS_TRANSLATER QEMU's KVM ITS turns into
   * KVM_SIGNAL_MSI (kvm_its_send_msi) → vgic_its_inject_msi. No irqbypass: the producer finds
   * no consumer, so GICv4 cannot forward it either.
   */
  private vfioThroughQemu(name: string, nr: number, fd: EventFd, msg: MsiMessage): void {
    const t = this.ctx.trace.channel('qemu');
    fd.addWaiter({
      actor: this.mainLoop,
      delayNs: this.ctx.costs.ns.threadWakeup,
      wake: () => {
        if (fd.testAndClear() === 0) return;
        if (t.on) {
          t.emit('qemu.vfio', 'vfio_msi_interrupt', 'aio_dispatch_handler', { dev: name, nr });
          t.emit('qemu.msix', 'msix_notify', 'vfio_msi_interrupt', { dev: name, vector: nr });
          t.emit('qemu.msi', 'msi_send_message', 'msix_notify', { dev: name, data: msg.data, devid: msg.requesterId ?? -1 });
          t.emit('qemu.its', 'kvm_its_send_msi', 'gicv3_its_trans_write', { devid: msg.requesterId ?? -1, eventid: msg.data });
        }
        this.vmApi.signalMsi(msg);
      },
    });
  }

  start(): void {
    // A vCPU whose guest starts work on its own (transmit, IPIs, UART output) is a busy guest:
    // arm-gic's guest actions run only while it runs (queued work does not wake a vCPU blocked
    // in WFI; its timer does, with workload.timerHz).
    const w = this.topology.workload;
    const busy = new Set<number>();
    if (w.txPacketsPerSec > 0) for (const n of this.nets) busy.add(n.vcpu);
    if (w.ipisPerSec > 0 && this.vm.vcpus.length > 1) for (const v of this.vm.vcpus) busy.add(v.vcpuId);
    if (w.serialPerSec > 0 && this.serials.length > 0) busy.add(0);
    for (const v of this.vm.vcpus) v.guest.idleWithWfi = !busy.has(v.vcpuId);
  }


  /**
   * Every vCPU's tick from its EL1 virtual timer (per-CPU, as a Linux guest's arch_timer
   * clockevent): the guest programs CNTV_CVAL one period ahead from its timer handler
   * (arch_timer_handler_virt); KVM's arch timer takes the forwarded PPI 27 while the vCPU runs
   * and wakes it with its background timer while it waits in WFI (KvmArchTimer).
   */
  private startArchTimers(hz: number, durationNs: number): void {
    const s = this.ctx.scheduler;
    const period = Math.max(1, Math.round(1e9 / hz));
    const timer = new KvmArchTimer(this.vm);
    for (const v of this.vm.vcpus) {
      const id = v.vcpuId;
      const cpu = this.cpus[id]!;
      let deadline = 0;
      const program = (at: number): void => {
        if (at >= durationNs) {
          timer.program(id, undefined); // the run ends: arch_timer_shutdown_virt
          return;
        }
        deadline = at;
        this.irqs.raised(id, VTIMER_PPI, at); // the tick is due at CVAL: latency counts from there
        timer.program(id, at);
      };
      this.irqs.bind(id, VTIMER_PPI, 'arch_timer', () => {
        // The next event one period after the last (a late tick is not made up: next one from now).
        const next = deadline + period;
        program(next > s.now ? next : s.now + period);
      }, 'arch_timer_handler_virt');
      this.vm.guestDriver.enablePpi(id, VTIMER_PPI); // the guest driver's enable_percpu_irq
      v.onInterrupt(VTIMER_PPI, (i) => cpu.runGuest(() => void this.irqs.handle(id, i, s.now)));
      cpu.at(0, () => program(period));
    }
  }

  /** vCPU threads are charged per running interval: close the open ones. */
  finish(): void {
    for (const v of this.vm.vcpus) v.flushCpuTime();
  }

  /** The trace tells when a device's interrupt entered KVM (irqfd) for latency accounting. */
  observe(e: TraceEvent): void {
    if (e.fn === 'irqfd_wakeup') {
      const msi = this.routes.msiOf((e.args as { gsi: number }).gsi);
      if (msi !== undefined) this.irqs.raisedMsi(msi, e.time);
    }
  }

  startWorkload(durationNs: number): void {
    const w = this.topology.workload;
    if (w.timerHz > 0) this.startArchTimers(w.timerHz, durationNs);
    const s = this.ctx.scheduler;
    if (w.ioDepth > 0) {
      for (const b of this.blks) {
        // blk-mq's tag depth is the virtqueue's size: requests beyond it wait in the block layer.
        const depth = Math.min(w.ioDepth, b.config.queueSize);
        if (depth < w.ioDepth) this.notes.push(`${b.config.name}: workload.ioDepth ${w.ioDepth} exceeds the queue size; ${depth} requests in flight`);
        startBlkClosedLoop(s, b.driver, depth, durationNs, (fn) => this.cpus[b.vcpu]!.at(s.now, fn));
      }
    }
    startNetWorkload(this, this.nets, (v) => this.cpus[v]!, durationNs);
    const nic = s.actor({ name: 'nic-dma', kind: 'device', cpu: 0 });
    for (const d of this.vfios) {
      if (w.vfioInterruptsPerSec <= 0) continue;
      let n = 0;
      poissonArrivals(s, 1e9 / w.vfioInterruptsPerSec, durationNs, (t, step) => void s.at(t, nic, step), () => {
        const v = n++ % d.targets.length;
        const tgt = d.targets[v]!;
        this.irqs.raised(tgt.vcpu, tgt.lpi, s.now);
        this.host.deviceMsi(d.deviceId, v);
      });
    }
    if (w.ipisPerSec > 0 && this.cpus.length > 1) {
      // smp_call_function_single: each vCPU sends SGI 1 (IPI_CALL_FUNC) to the next one by
      // writing ICC_SGI1R_EL1 — a trapped system-register write (SYS64 exit) on a GICv3 guest.
      const n = this.cpus.length;
      this.vm.guestDriver.enableSgis();
      const SGI_CALL_FUNC = 1;
      for (let dst = 0; dst < n; dst++) {
        this.irqs.bind(dst, SGI_CALL_FUNC, 'ipi_handler', () => undefined);
        const cpu = this.cpus[dst]!;
        this.vm.vcpus[dst]!.onInterrupt(SGI_CALL_FUNC, (i) => cpu.runGuest(() => void this.irqs.handle(dst, i, s.now)));
      }
      for (let src = 0; src < n; src++) {
        const dst = (src + 1) % n;
        const cpu = this.cpus[src]!;
        // TargetList bit = Aff0 (vCPU n has Aff0 n within Aff1 n / 16), INTID in bits 27:24.
        const value = BigInt(1 << (dst % 16)) | (BigInt(Math.floor(dst / 16)) << 16n) | (BigInt(SGI_CALL_FUNC) << 24n);
        poissonArrivals(s, 1e9 / w.ipisPerSec, durationNs, (t, step) => cpu.at(t, step), () => {
          this.irqs.raised(dst, SGI_CALL_FUNC, s.now);
          this.vm.vcpus[src]!.guestSendSgi(value);
        });
      }
    }
    if (this.serials.length > 0 && w.serialPerSec > 0) {
      const cpu = this.cpus[0]!;
      const driver = this.serials[0]!.driver;
      // A tty write of one character: pl011_start_tx's FR read and DR write, then pl011_stop_tx's IMSC write.
      poissonArrivals(s, 1e9 / w.serialPerSec, durationNs, (t, step) => cpu.at(t, step), () => driver.write([0x41]));
    }
    if (this.serials.length > 0 && w.serialRxPerSec > 0) {
      const uart = this.serials[0]!.uart;
      // Console input: the chardev's fd handler in QEMU's main loop hands each character to the UART.
      poissonArrivals(s, 1e9 / w.serialRxPerSec, durationNs, (t, step) => s.at(t, this.mainLoop, step), () => uart.receive([0x61]));
    }
  }

}
