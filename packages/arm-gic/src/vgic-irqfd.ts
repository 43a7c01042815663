import {
  type Actor, type EventFd, type GsiRoute, type IoeventfdRequest, type IrqRouting, type IrqfdRequest, type MsiMessage,
  type SimContext, type TraceChannel, type VmInterruptApi, VirqError, msiAddress,
} from '@virq/core';
import { GicErrorCode } from './errors.js';
import type { Its } from './its.js';
import { SPI_BASE_INTID } from './registers.js';
import type { Vgic } from './vgic.js';

/** KVM_MAX_IRQ_ROUTES. */
export const KVM_MAX_IRQ_ROUTES = 4096;
/** KVM_IRQCHIP_NUM_PINS on arm64: SPIs 32–1019. */
export const KVM_IRQCHIP_NUM_PINS = 1020 - 32;
/** KVM_IRQ_LINE irq field on arm64: type 27:24, vcpu index 23:16 (+ vcpu2 31:28), number 15:0. */
export const KVM_ARM_IRQ_TYPE_CPU = 0;
export const KVM_ARM_IRQ_TYPE_SPI = 1;
export const KVM_ARM_IRQ_TYPE_PPI = 2;

/** Builds the arm64 KVM_IRQ_LINE `irq` value. */
export function armIrqLine(type: number, vcpu: number, num: number): number {
  return (((type & 0xf) << 24) | ((vcpu & 0xff) << 16) | (((vcpu >> 8) & 0xf) << 28) | (num & 0xffff)) >>> 0;
}

interface IrqfdEntry {
  readonly fd: EventFd;
  readonly gsi: number;
  readonly resampleFd: EventFd | undefined;
  readonly remove: () => void;
}

/** One irqfd as KVM's irqbypass consumer sees it (`struct kvm_kernel_irqfd`). */
export interface ArmIrqfdView {
  readonly gsi: number;
  readonly eventfd: EventFd;
  /** The cached route (irqfd->irq_entry), undefined when the GSI has 0 or several routes. */
  readonly route: GsiRoute | undefined;
}

/** Where virt/kvm/eventfd.c calls into irqbypass (irq_bypass_register_consumer & co). */
export interface ArmIrqfdBypassHooks {
  irqfdAssigned(irqfd: ArmIrqfdView): void;
  irqfdDeassigned(irqfd: ArmIrqfdView): void;
  irqfdRoutingUpdated(irqfd: ArmIrqfdView): void;
}

interface IoeventfdEntry {
  readonly fd: EventFd;
  readonly addr: number;
  readonly len: number;
  readonly datamatch: bigint | undefined;
}

/**
 * The interrupt ioctls of an arm64 KVM VM (virt/kvm/eventfd.c + arch/arm64/kvm/vgic/
 * vgic-irqfd.c, FACTS §6, §14.6): the GSI routing table (default GSI i → SPI 32 + i,
 * irqchip routes to SPIs and MSI routes to the ITS), irqfd with the atomic fast path
 * (kvm_arch_set_irq_inatomic: SPIs and translation-cache hits inject from the wakeup, a
 * cache miss defers to the irqfd workqueue) and resamplers, ioeventfd on the MMIO bus,
 * KVM_SIGNAL_MSI (DeviceID required) and KVM_IRQ_LINE with the arm64 encoding.
 */
export class VgicIrqfd implements VmInterruptApi, IrqRouting {
  readonly irqfdCapable = true;
  readonly ioeventfdCapable = true;
  private routes = new Map<number, GsiRoute[]>();
  private readonly irqfds = new Map<EventFd, IrqfdEntry>();
  private readonly ioeventfds: IoeventfdEntry[] = [];
  private readonly resamplers = new Map<number, Set<IrqfdEntry>>();
  private readonly kworker: Actor;
  private bypass: ArmIrqfdBypassHooks | undefined;
  readonly stats = { irqfdInjections: 0, fastPath: 0, slowPath: 0, ioeventfdSignals: 0 };

  constructor(
    private readonly ctx: SimContext,
    private readonly vgic: Vgic,
    private readonly its: Its,
    private readonly channel: TraceChannel,
  ) {
    this.kworker = ctx.scheduler.actor({ name: 'kworker/u8:1', kind: 'kernel', cpu: 0 });
    const n = vgic.gic.numSpis;
    for (let i = 0; i < n; i++) this.routes.set(i, [{ gsi: i, type: 'irqchip', irqchip: 0, pin: i }]);
    vgic.onAckedSpi = (pin) => this.ackedSpi(pin);
  }

  /** Installs the irqbypass consumer hooks (a machine connects @virq/irqbypass here). */
  setIrqfdBypassHooks(hooks: ArmIrqfdBypassHooks | undefined): void {
    this.bypass = hooks;
  }

  private view(e: IrqfdEntry): ArmIrqfdView {
    const rs = this.routesOf(e.gsi);
    return { gsi: e.gsi, eventfd: e.fd, route: rs.length === 1 ? rs[0] : undefined };
  }

  // ---- KVM_SET_GSI_ROUTING ----

  setGsiRouting(entries: readonly GsiRoute[]): void {
    const next = new Map<number, GsiRoute[]>();
    for (const e of entries) {
      if (!Number.isInteger(e.gsi) || e.gsi < 0 || e.gsi >= KVM_MAX_IRQ_ROUTES) {
        throw new VirqError(GicErrorCode.IoctlInvalid, `GSI ${e.gsi} is outside [0, ${KVM_MAX_IRQ_ROUTES - 1}]`, { errno: 'EINVAL' });
      }
      if (e.type === 'irqchip') {
        if (e.irqchip !== 0 || !Number.isInteger(e.pin) || e.pin < 0 || e.pin >= KVM_IRQCHIP_NUM_PINS) {
          throw new VirqError(GicErrorCode.IoctlInvalid, `arm64 irqchip routes need irqchip 0 and a pin in [0, ${KVM_IRQCHIP_NUM_PINS - 1}] (SPI = 32 + pin); got irqchip ${e.irqchip} pin ${e.pin}`, { errno: 'EINVAL' });
        }
      }
      const list = next.get(e.gsi) ?? [];
      list.push(e);
      next.set(e.gsi, list);
    }
    this.routes = next;
    if (this.bypass !== undefined) for (const e of this.irqfds.values()) this.bypass.irqfdRoutingUpdated(this.view(e));
  }

  routesOf(gsi: number): readonly GsiRoute[] {
    return this.routes.get(gsi) ?? [];
  }

  /** kvm_set_irq: drives every route of `gsi`. Returns > 0 delivered, 0 coalesced/blocked, < 0 no route. */
  setIrq(gsi: number, level: boolean, _sourceId = 0): number {
    const rs = this.routesOf(gsi);
    if (rs.length === 0) return -1;
    let ret = 0;
    for (const r of rs) {
      if (r.type === 'irqchip') {
        const intid = SPI_BASE_INTID + r.pin;
        if (intid >= SPI_BASE_INTID + this.vgic.gic.numSpis) continue;
        if (this.vgic.injectIrq(-1, intid, level, 'vgic_irqfd_set_irq')) ret = Math.max(ret, 1);
      } else if (level) {
        ret = Math.max(ret, this.setMsi(r.msi, 'kvm_set_irq'));
      }
    }
    return ret;
  }

  /**
   * kvm_set_msi (called by kvm_set_irq for an MSI route, or by kvm_send_userspace_msi) →
   * vgic_its_inject_msi: 1 delivered, 0 blocked by the guest's mapping.
   */
  private setMsi(msg: MsiMessage, caller: 'kvm_set_irq' | 'kvm_send_userspace_msi'): number {
    if (this.channel.on) this.channel.emit('vgic.set-msi', 'kvm_set_msi', caller, { devid: msg.requesterId ?? -1, eventid: msg.data });
    if (msg.requesterId === undefined || msiAddress(msg) !== BigInt(this.its.translaterAddress)) return -1; // vgic_msi_to_its: no ITS at that doorbell
    if (this.channel.on) this.channel.emit('vgic.its.msi', 'vgic_its_inject_msi', 'kvm_set_msi', { devid: msg.requesterId, eventid: msg.data });
    return this.its.translate(msg.requesterId, msg.data, 'msi') === 'dropped' ? 0 : 1;
  }

  // ---- KVM_IRQFD ----

  irqfd(req: IrqfdRequest): void {
    if (req.deassign === true) {
      const e = this.irqfds.get(req.fd);
      if (e === undefined || e.gsi !== req.gsi) {
        throw new VirqError(GicErrorCode.IoctlInvalid, `no irqfd for ${req.fd.name} on GSI ${req.gsi} to deassign`, { errno: 'ENOENT' });
      }
      e.remove();
      this.irqfds.delete(req.fd);
      this.resamplers.get(req.gsi)?.delete(e);
      this.bypass?.irqfdDeassigned(this.view(e));
      return;
    }
    if (!Number.isInteger(req.gsi) || req.gsi < 0 || req.gsi >= KVM_MAX_IRQ_ROUTES) {
      throw new VirqError(GicErrorCode.IoctlInvalid, `irqfd GSI ${req.gsi} is outside [0, ${KVM_MAX_IRQ_ROUTES - 1}]`, { errno: 'EINVAL' });
    }
    if (this.irqfds.has(req.fd)) throw new VirqError(GicErrorCode.IoctlInvalid, `${req.fd.name} already is an irqfd`, { errno: 'EBUSY' });
    let entry!: IrqfdEntry;
    // irqfd_wakeup is a wait-queue callback: it runs inside eventfd_signal, in the writer's context.
    const remove = req.fd.addWaiter({ inline: true, wake: () => this.irqfdWakeup(entry) });
    entry = { fd: req.fd, gsi: req.gsi, resampleFd: req.resampleFd, remove };
    this.irqfds.set(req.fd, entry);
    if (req.resampleFd !== undefined) {
      const set = this.resamplers.get(req.gsi) ?? new Set<IrqfdEntry>();
      set.add(entry);
      this.resamplers.set(req.gsi, set);
    }
    this.bypass?.irqfdAssigned(this.view(entry));
    // An eventfd already signalled before KVM_IRQFD is injected at once (irqfd_wakeup on poll).
    if (req.fd.readable) this.ctx.scheduler.after(0, this.ctx.trace.hostActor, () => this.irqfdWakeup(entry));
  }

  /**
   * irqfd_wakeup, on the signalling actor (the eventfd's wait-queue callback). Every route
   * first tries kvm_arch_set_irq_inatomic (vgic-irqfd.c, since Linux 5.9): an IRQCHIP route
   * injects the SPI at once with level 1 (vgic_irqfd_set_irq → kvm_vgic_inject_irq — only
   * the rising edge: nothing lowers the line on this path), an MSI route injects only on a
   * translation-cache hit (vgic_its_inject_cached_translation); anything else returns
   * -EWOULDBLOCK and irqfd_inject runs on a workqueue: kvm_set_irq → kvm_set_msi →
   * vgic_its_inject_msi.
   */
  private irqfdWakeup(e: IrqfdEntry): void {
    if (!this.irqfds.has(e.fd)) return;
    if (e.fd.testAndClear() === 0) return; // eventfd_ctx_do_read
    this.stats.irqfdInjections++;
    if (this.channel.on) this.channel.emit('irqfd.wakeup', 'irqfd_wakeup', '__wake_up_common', { gsi: e.gsi, fd: e.fd.name });
    for (const r of this.routesOf(e.gsi)) {
      if (r.type === 'irqchip') {
        this.stats.fastPath++;
        if (this.channel.on) this.channel.emit('irqfd.inatomic', 'kvm_arch_set_irq_inatomic', 'irqfd_wakeup', { gsi: e.gsi, type: 'irqchip', spi: SPI_BASE_INTID + r.pin });
        const intid = SPI_BASE_INTID + r.pin;
        if (intid >= SPI_BASE_INTID + this.vgic.gic.numSpis) continue; // vgic_valid_spi: -EINVAL
        this.vgic.injectIrq(-1, intid, true, 'vgic_irqfd_set_irq');
        continue;
      }
      const msg = r.msi;
      if (this.channel.on) this.channel.emit('irqfd.inatomic', 'kvm_arch_set_irq_inatomic', 'irqfd_wakeup', { gsi: e.gsi, type: 'msi' });
      if (msg.requesterId !== undefined && this.its.enabled && msiAddress(msg) === BigInt(this.its.translaterAddress) && this.its.cached(msg.requesterId, msg.data) !== undefined) {
        this.stats.fastPath++;
        this.its.translate(msg.requesterId, msg.data, 'cached');
        continue;
      }
      // -EWOULDBLOCK: irqfd_inject on the irqfd workqueue → kvm_set_irq → kvm_set_msi.
      this.stats.slowPath++;
      this.ctx.scheduler.after(this.ctx.costs.ns.threadWakeup, this.kworker, () => {
        if (this.channel.on) this.channel.emit('irqfd.inject', 'irqfd_inject', 'process_one_work', { gsi: e.gsi });
        if (this.channel.on) this.channel.emit('irqfd.set-irq', 'kvm_set_irq', 'irqfd_inject', { gsi: e.gsi, level: 1 });
        this.setMsi(msg, 'kvm_set_irq');
      });
    }
  }

  /** kvm_notify_acked_irq → irqfd_resampler_ack: deassert and signal every resamplefd of the GSI. */
  private ackedSpi(pin: number): void {
    for (const [gsi, set] of this.resamplers) {
      const hit = this.routesOf(gsi).some((r) => r.type === 'irqchip' && r.pin === pin);
      if (!hit) continue;
      // kvm_notify_acked_irq → kvm_notify_acked_gsi → irqfd_resampler_ack → kvm_set_irq(level 0).
      if (this.channel.on) this.channel.emit('irqfd.resample', 'irqfd_resampler_ack', 'kvm_notify_acked_gsi', { gsi, pin });
      this.vgic.injectIrq(-1, SPI_BASE_INTID + pin, false, 'vgic_irqfd_set_irq');
      for (const e of set) e.resampleFd?.tryWrite(1);
    }
  }

  // ---- KVM_IOEVENTFD ----

  ioeventfd(req: IoeventfdRequest): void {
    if (req.space === 'pio') {
      throw new VirqError(GicErrorCode.IoctlInvalid, 'arm64 has no port I/O: register the ioeventfd on the MMIO bus (space "mmio")', { errno: 'EINVAL' });
    }
    const dm = req.datamatch === undefined ? undefined : BigInt(req.datamatch);
    if (req.len === 0 && dm !== undefined) {
      throw new VirqError(GicErrorCode.IoctlInvalid, 'a zero-length (FAST_MMIO) ioeventfd cannot have a datamatch', { errno: 'EINVAL' });
    }
    const i = this.ioeventfds.findIndex((e) => e.addr === req.addr && e.len === req.len && e.datamatch === dm && (req.deassign === true ? e.fd === req.fd : true));
    if (req.deassign === true) {
      if (i < 0) throw new VirqError(GicErrorCode.IoctlInvalid, `no ioeventfd at 0x${req.addr.toString(16)} to deassign`, { errno: 'ENOENT' });
      this.ioeventfds.splice(i, 1);
      return;
    }
    if (i >= 0) throw new VirqError(GicErrorCode.IoctlInvalid, `an ioeventfd already covers 0x${req.addr.toString(16)} len ${req.len}`, { errno: 'EEXIST' });
    this.ioeventfds.push({ fd: req.fd, addr: req.addr, len: req.len, datamatch: dm });
  }

  /** ioeventfd_write on the MMIO bus: returns whether an ioeventfd took the write. */
  mmioWrite(addr: number, len: number, value: bigint): boolean {
    for (const e of this.ioeventfds) {
      if (e.addr !== addr || (e.len !== 0 && e.len !== len)) continue;
      if (e.datamatch !== undefined && e.datamatch !== value) continue;
      this.stats.ioeventfdSignals++;
      if (this.channel.on) this.channel.emit('ioeventfd.write', 'ioeventfd_write', '__kvm_io_bus_write', { addr, len, fd: e.fd.name });
      e.fd.tryWrite(1);
      return true;
    }
    return false;
  }

  // ---- KVM_SIGNAL_MSI / KVM_IRQ_LINE ----

  signalMsi(msg: MsiMessage): number {
    if (msg.requesterId === undefined) {
      throw new VirqError(GicErrorCode.IoctlInvalid, 'KVM_SIGNAL_MSI on arm64 with an ITS needs KVM_MSI_VALID_DEVID: set requesterId (the DeviceID)', { errno: 'EINVAL' });
    }
    if (msiAddress(msg) !== BigInt(this.its.translaterAddress)) {
      throw new VirqError(GicErrorCode.IoctlInvalid, `KVM_SIGNAL_MSI: no ITS doorbell at 0x${msiAddress(msg).toString(16)} (the vITS's GITS_TRANSLATER is 0x${this.its.translaterAddress.toString(16)})`, { errno: 'EINVAL' });
    }
    if (!this.its.enabled) throw new VirqError(GicErrorCode.IoctlInvalid, 'the guest has not enabled its ITS (GITS_CTLR.Enabled = 0)', { errno: 'EBUSY' });
    return this.setMsi(msg, 'kvm_send_userspace_msi');
  }

  /**
   * KVM_IRQ_LINE with the arm64 `irq` encoding (see `armIrqLine`): SPI (type 1, number ≥ 32)
   * or PPI (type 2, a vCPU, 16–31). Returns 1 when the injection changed the interrupt's
   * state, 0 when vgic_validate_injection found nothing to do (arm64 writes no status).
   */
  irqLine(irq: number, level: boolean): number {
    const type = (irq >>> 24) & 0xf;
    const vcpu = ((irq >>> 16) & 0xff) | (((irq >>> 28) & 0xf) << 8);
    const num = irq & 0xffff;
    if (type === KVM_ARM_IRQ_TYPE_SPI) {
      if (num < SPI_BASE_INTID || num >= SPI_BASE_INTID + this.vgic.gic.numSpis) {
        throw new VirqError(GicErrorCode.IoctlInvalid, `KVM_IRQ_LINE: SPI number ${num} outside [32, ${SPI_BASE_INTID + this.vgic.gic.numSpis - 1}]; encode with armIrqLine(KVM_ARM_IRQ_TYPE_SPI, 0, 32 + pin)`, { errno: 'EINVAL' });
      }
      return this.vgic.injectIrq(-1, num, level) ? 1 : 0;
    }
    if (type === KVM_ARM_IRQ_TYPE_PPI) {
      if (vcpu >= this.vgic.gic.numCpus) throw new VirqError(GicErrorCode.IoctlInvalid, `KVM_IRQ_LINE: vCPU ${vcpu} does not exist`, { errno: 'EINVAL' });
      if (num < 16 || num >= 32) throw new VirqError(GicErrorCode.IoctlInvalid, `KVM_IRQ_LINE: PPI number ${num} outside [16, 31]`, { errno: 'EINVAL' });
      return this.vgic.injectIrq(vcpu, num, level) ? 1 : 0;
    }
    throw new VirqError(GicErrorCode.IoctlInvalid, `KVM_IRQ_LINE type ${type} is not usable with an in-kernel vGIC (use type 1 SPI or 2 PPI: armIrqLine(type, vcpu, num))`, { errno: 'ENXIO' });
  }
}
