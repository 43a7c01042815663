import { type Actor, type GsiRoute, type GuestMemory, type MsiSink, type SimContext, type TraceChannel, type VmInterruptApi, VirqError } from '@virq/core';
import { ArmHost } from './arm-host.js';
import { ArmVcpu, type ArmExitReason, type ArmVcpuHost, type GuestMmioAccess } from './arm-vcpu.js';
import { GicErrorCode } from './errors.js';
import { type GicVersion, Gicv3 } from './gic.js';
import { GuestGicDriver } from './guest-gic-driver.js';
import { Its } from './its.js';
import { MAINTENANCE_PPI } from './registers.js';
import { Vgic } from './vgic.js';
import { VgicIrqfd } from './vgic-irqfd.js';
import { VgicV4 } from './vgic-v4.js';

/** Guest physical addresses of the vGIC frames (QEMU's `virt` machine). */
export interface ArmVgicLayout {
  distBase: number;
  itsBase: number;
  redistBase: number;
}

export const VIRT_GIC_LAYOUT: ArmVgicLayout = { distBase: 0x0800_0000, itsBase: 0x0808_0000, redistBase: 0x080a_0000 };

export interface ArmVmOptions {
  numVcpus: number;
  /**
   * 'v3': every guest LPI is injected by KVM through list registers. 'v4' / 'v4.1': LPIs
   * fed by assigned devices can be forwarded (kvm_vgic_v4_set_forwarding) and are then
   * delivered directly to resident vPEs. Devices and irqfds are the same either way.
   */
  gic?: GicVersion;
  /** Guest RAM (holds the guest's LPI/ITS tables at `gicTablesGpa`). */
  memory: GuestMemory;
  /** Where the guest GIC driver puts its tables. Default: the start of `memory`'s first region. */
  gicTablesGpa?: number;
  /** The host (physical GIC). Created with one CPU per vCPU when omitted. */
  host?: ArmHost;
  numSpis?: number;
  /** List registers per CPU (ICH_VTR.ListRegs + 1). Default 4. */
  nrLr?: number;
  /** VHE host (cheaper world switch). Default true. */
  vhe?: boolean;
  /** Host CPU of each vCPU thread. Default vCPU i → CPU i mod host CPUs. */
  vcpuCpus?: readonly number[];
  layout?: ArmVgicLayout;
}

/**
 * An arm64 KVM VM's interrupt side: the guest-visible GICv3 that KVM emulates (distributor
 * and redistributor frames, the vITS as the VM's `MsiSink`), KVM's vGIC (ap_lists, LRs),
 * the vCPUs' run loops, the VM-fd interrupt ioctls (`VmInterruptApi`: irqfd, ioeventfd,
 * KVM_SIGNAL_MSI, KVM_IRQ_LINE) and, on a GICv4 host, direct vLPI injection with the
 * irqbypass consumer's forwarding entry points.
 */
export class ArmVm implements ArmVcpuHost {
  readonly channel: TraceChannel;
  readonly vhe: boolean;
  readonly version: GicVersion;
  readonly memory: GuestMemory;
  readonly host: ArmHost;
  readonly gic: Gicv3;
  readonly vgic: Vgic;
  readonly its: Its;
  readonly vcpus: ArmVcpu[] = [];
  readonly irqfd: VgicIrqfd;
  readonly v4: VgicV4 | undefined;
  readonly guestDriver: GuestGicDriver;
  readonly layout: ArmVgicLayout;

  constructor(
    readonly ctx: SimContext,
    options: ArmVmOptions,
  ) {
    const n = options.numVcpus;
    if (!Number.isInteger(n) || n < 1 || n > 512) throw new VirqError(GicErrorCode.ConfigInvalid, `numVcpus must be in [1, 512], got ${n}`);
    this.version = options.gic ?? 'v3';
    this.vhe = options.vhe ?? true;
    this.memory = options.memory;
    this.layout = options.layout ?? VIRT_GIC_LAYOUT;
    this.channel = ctx.trace.channel('kvm-arm');
    this.host = options.host ?? new ArmHost(ctx, { numCpus: n, version: this.version });
    if (this.version !== 'v3' && (this.host.version === 'v3' || (this.version === 'v4.1' && this.host.version !== 'v4.1'))) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `a ${this.version} VM needs a host GIC ${this.version} (the host has ${this.host.version})`);
    }
    // KVM always presents a GICv3 (+ ITS) to the guest; Group 1 by default.
    this.gic = new Gicv3(ctx, { numCpus: n, numSpis: options.numSpis ?? 64, version: 'v3', memory: this.memory, defaultGroup: 1, name: 'vgic' });
    this.vgic = new Vgic(ctx, this.gic, options.nrLr ?? 4);
    this.its = new Its(this.gic, this.memory, { flavor: 'kvm', baseAddress: this.layout.itsBase });
    for (let i = 0; i < n; i++) {
      const cpu = options.vcpuCpus?.[i] ?? i % this.host.numCpus;
      if (cpu < 0 || cpu >= this.host.numCpus) throw new VirqError(GicErrorCode.ConfigInvalid, `vCPU ${i} pinned to host CPU ${cpu}, but the host has ${this.host.numCpus}`);
      const vc = new ArmVcpu(this, i, this.vgic.cpus[i], () => this.vgic.pendingIrq(i), cpu);
      vc.vgicFlush = () => this.vgic.flush(i);
      vc.vgicSync = () => this.vgic.sync(i);
      this.vgic.cpus[i].cpuif.onPhysicalDeactivate = (pintid) => this.host.deactivatePhysical(pintid, vc.cpu);
      this.vcpus.push(vc);
    }
    this.vgic.kick = (v, caller) => this.vcpus[v].kick(caller);
    this.vgic.physicalLevel = (hwintid, v) => this.host.gic.irqFor(hwintid, this.vcpus[v].cpu)?.lineLevel ?? false;
    this.irqfd = new VgicIrqfd(ctx, this.vgic, this.its, this.channel);
    if (this.version !== 'v3') {
      this.v4 = new VgicV4(this.host, this.vgic, this.its, this.vcpus, this.channel);
      this.its.hooks = this.v4;
      this.v4.init();
    }
    this.guestDriver = new GuestGicDriver(this, options.gicTablesGpa ?? this.memory.regions()[0]?.gpa ?? 0);
  }

  /** The VM's MSI sink: the vITS's GITS_TRANSLATER (DeviceID = requester id). */
  get msiSink(): MsiSink {
    return this.its;
  }

  /** The VM-fd interrupt ioctls. */
  get interruptApi(): VmInterruptApi {
    return this.irqfd;
  }

  /** Boots the guest's GIC/ITS drivers and starts every vCPU's KVM_RUN loop. */
  start(): void {
    this.guestDriver.boot();
    for (const v of this.vcpus) v.run();
  }

  /** Exits of every vCPU by reason. */
  exitCounts(): Record<ArmExitReason, number> & { total: number } {
    const out = { IRQ: 0, WFx: 0, HVC: 0, DABT_LOW: 0, SYS64: 0, total: 0 };
    for (const v of this.vcpus) {
      for (const k of Object.keys(v.exits) as ArmExitReason[]) out[k] += v.exits[k];
      out.total += v.totalExits;
    }
    return out;
  }

  /** kvm_vgic_v4_set_forwarding: 0 and nothing done unless the VM uses GICv4 (the software path stays). */
  kvmVgicV4SetForwarding(hostIrq: number, route: GsiRoute): number {
    if (this.v4 === undefined) return 0;
    this.v4.setForwarding(hostIrq, route);
    return 0;
  }

  kvmVgicV4UnsetForwarding(hostIrq: number, route: GsiRoute): number {
    if (this.v4 === undefined) return 0;
    this.v4.unsetForwarding(hostIrq, route);
    return 0;
  }

  /**
   * Forwards physical interrupt `pintid` (taken on the vCPU's host CPU) to `vintid` of
   * `vcpu` with the HW bit (kvm_vgic_map_phys_irq + a host handler that injects and leaves
   * the physical interrupt active, as the arch timer does).
   */
  forwardPhysicalIrq(pintid: number, vcpu: number, vintid: number): void {
    const vc = this.vcpus[vcpu];
    if (vc === undefined) throw new VirqError(GicErrorCode.VcpuUnknown, `vCPU ${vcpu} does not exist`);
    this.vgic.mapPhysIrq(vcpu, vintid, pintid);
    this.host.requestIrq(pintid, `kvm-vcpu${vcpu}-fwd`, () => {
      this.vgic.injectIrq(vcpu, vintid, true, 'kvm_timer_update_irq');
      return 'keep-active';
    }, vc.cpu);
  }

  // ---- ArmVcpuHost ----

  setMaintenanceLevel(cpu: number, level: boolean): void {
    this.host.gic.setPpiLevel(cpu, MAINTENANCE_PPI, level);
  }

  vgicV4Load(vcpu: ArmVcpu, caller?: string): void {
    this.v4?.load(vcpu, caller);
  }

  vgicV4Put(vcpu: ArmVcpu, needDoorbell: boolean, caller?: string): void {
    this.v4?.put(vcpu, needDoorbell, caller);
  }

  /** The VMM's handler for KVM_EXIT_MMIO (QEMU's address-space dispatch: PCI BARs …). */
  userspaceMmio: ((vcpu: ArmVcpu, access: GuestMmioAccess) => void) | undefined = undefined;

  handleMmio(_vcpu: ArmVcpu, a: GuestMmioAccess): boolean {
    const L = this.layout;
    let read: (() => bigint) | undefined;
    let write: (() => void) | undefined;
    if (a.addr >= L.distBase && a.addr < L.distBase + 0x10000) {
      const off = a.addr - L.distBase;
      const d = this.gic.distributor;
      read = () => (a.len === 8 ? d.read64(off) : BigInt(d.read32(off)));
      write = () => (a.len === 8 ? d.write64(off, a.value) : d.write32(off, Number(a.value & 0xffffffffn)));
    } else if (a.addr >= L.itsBase && a.addr < L.itsBase + 0x20000) {
      const off = a.addr - L.itsBase;
      read = () => (a.len === 8 ? this.its.read64(off) : BigInt(this.its.read32(off)));
      write = () => (a.len === 8 ? this.its.write64(off, a.value) : this.its.write32(off, Number(a.value & 0xffffffffn)));
    } else if (a.addr >= L.redistBase && a.addr < L.redistBase + this.vcpus.length * 0x20000) {
      const rd = this.gic.redistributors[Math.floor((a.addr - L.redistBase) / 0x20000)];
      const off = (a.addr - L.redistBase) % 0x20000;
      read = () => (a.len === 8 ? rd.read64(off) : BigInt(rd.read32(off)));
      write = () => (a.len === 8 ? rd.write64(off, a.value) : rd.write32(off, Number(a.value & 0xffffffffn)));
    }
    if (read !== undefined && write !== undefined) {
      if (this.channel.on) this.channel.emit('vgic.mmio', a.write ? 'dispatch_mmio_write' : 'dispatch_mmio_read', a.write ? '__kvm_io_bus_write' : '__kvm_io_bus_read', { addr: a.addr, len: a.len });
      if (a.write) write();
      else a.done?.(read());
      return true;
    }
    return a.write && this.irqfd.mmioWrite(a.addr, a.len, a.value);
  }

  dispatchSgi(vcpu: ArmVcpu, value: bigint): void {
    this.gic.cpuInterfaces[vcpu.vcpuId].sgi1r(value);
  }

  occupy(cpu: number, sink: ArmVcpu): void {
    this.host.occupy(cpu, sink);
  }

  vacate(cpu: number): void {
    this.host.vacate(cpu);
  }

  handleHostIrqs(cpu: number, actor: Actor): void {
    this.host.handleIrqs(cpu, actor);
  }
}
