import { IrqLine } from '@virq/core';
import type { DestMap, LapicIrq } from './lapic-irq.js';
import type { KvmLapic } from './lapic.js';

export const IOAPIC_NUM_PINS = 24;
export const IOAPIC_DEFAULT_BASE_ADDRESS = 0xfec00000;
export const IOAPIC_MEM_LENGTH = 0x100;
/** KVM's in-kernel IOAPIC reports version 0x11 (no EOI register). */
export const IOAPIC_VERSION_ID = 0x11;
export const RTC_GSI = 8;
/** IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT: EOIs in a row with the line still high before KVM throttles. */
export const IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT = 10000;
/** HZ/100 of the throttled re-injection, in ns (10 ms). */
export const IOAPIC_EOI_INJECT_DELAY_NS = 10_000_000;

/** A redirection entry as the golden corpus decodes it. */
export interface RedirEntryJson {
  pin: number;
  bits: number;
  vector: number;
  delivery_mode: number;
  dest_mode: number;
  delivery_status: number;
  polarity: number;
  remote_irr: number;
  trigger: number;
  mask: number;
  dest: number;
}

/** `struct kvm_ioapic_state` as the golden corpus decodes it. */
export interface IoapicStateJson {
  base_address: number;
  id: number;
  ioregsel: number;
  irr: number;
  irr_pins: number[];
  redirtbl: RedirEntryJson[];
}

/** What the IOAPIC needs of its VM (implemented by KvmVm). */
export interface IoapicHost {
  deliverToApic(src: KvmLapic | null, irq: LapicIrq, destMap?: DestMap, caller?: string): number;
  /** kvm_notify_acked_irq(KVM_IRQCHIP_IOAPIC, pin) */
  notifyAckedIrq(irqchip: number, pin: number): void;
  /** kvm_notify_irqfd_resampler: true when a resampler took the pin. */
  notifyIrqfdResampler(irqchip: number, pin: number): boolean;
  /** kvm_fire_mask_notifiers */
  fireMaskNotifiers(irqchip: number, pin: number, masked: boolean): void;
  lapics(): readonly KvmLapic[];
  matchDest(target: KvmLapic, dest: number, logical: boolean): boolean;
  /** kvm_make_scan_ioapic_request: every vCPU recomputes its ioapic_handled_vectors at its next entry. */
  makeScanIoapicRequest(): void;
  /** kvm_make_scan_ioapic_request_mask for the vCPUs a FIXED entry's new (or old) destination names. */
  scanIoapicRequestForEntry(dest: number, oldDest: number, logical: boolean, changed: boolean): void;
  /** schedule_delayed_work(&ioapic->eoi_inject, HZ / 100) */
  scheduleEoiInject(fn: () => void, delayNs: number): void;
  readonly tracing: boolean;
  traceIoapic(fn: string, caller: string, args: Readonly<Record<string, number | string | boolean>>): void;
}

const LO_REMOTE_IRR = 1 << 14;
const LO_DELIVERY_STATUS = 1 << 12;
const LO_LEVEL = 1 << 15;
const LO_MASK = 1 << 16;

/**
 * KVM's in-kernel IOAPIC (arch/x86/kvm/ioapic.c): 24 pins, each with a line OR-ed over irq
 * source ids, the redirection table, IRR with KVM's `irr_delivered` bookkeeping for edge
 * pins, Remote IRR for level pins, EOI broadcast, the storm throttle and RTC (GSI 8)
 * coalescing for KVM_IRQ_LINE_STATUS.
 */
export class KvmIoapic {
  baseAddress = IOAPIC_DEFAULT_BASE_ADDRESS;
  id = 0;
  ioregsel = 0;
  irr = 0;
  irrDelivered = 0;
  /** Redirection entries as two 32-bit halves. */
  readonly lo = new Uint32Array(IOAPIC_NUM_PINS);
  readonly hi = new Uint32Array(IOAPIC_NUM_PINS);
  readonly irqEoi = new Array<number>(IOAPIC_NUM_PINS).fill(0);
  readonly lines: IrqLine[] = [];
  /** rtc_status: pending EOIs and which vCPUs got the RTC vector. */
  rtcPendingEoi = 0;
  readonly rtcDestMap: DestMap = { vcpus: new Set(), vectors: new Map() };

  constructor(private readonly host: IoapicHost) {
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) this.lines.push(new IrqLine(`ioapic.${i}`));
    this.reset();
  }

  /** kvm_ioapic_reset */
  reset(): void {
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) {
      this.lo[i] = LO_MASK;
      this.hi[i] = 0;
      this.irqEoi[i] = 0;
    }
    this.baseAddress = IOAPIC_DEFAULT_BASE_ADDRESS;
    this.ioregsel = 0;
    this.irr = 0;
    this.irrDelivered = 0;
    this.id = 0;
    this.rtcEoiTrackingReset();
  }

  vector(pin: number): number {
    return this.lo[pin]! & 0xff;
  }
  levelTriggered(pin: number): boolean {
    return (this.lo[pin]! & LO_LEVEL) !== 0;
  }
  masked(pin: number): boolean {
    return (this.lo[pin]! & LO_MASK) !== 0;
  }
  remoteIrr(pin: number): boolean {
    return (this.lo[pin]! & LO_REMOTE_IRR) !== 0;
  }
  dest(pin: number): number {
    return this.hi[pin]! >>> 24;
  }
  logical(pin: number): boolean {
    return (this.lo[pin]! & (1 << 11)) !== 0;
  }

  private rtcEoiTrackingReset(): void {
    this.rtcPendingEoi = 0;
    this.rtcDestMap.vcpus.clear();
  }

  /** __rtc_irq_eoi_tracking_restore_one */
  rtcEoiTrackingRestoreOne(apic: KvmLapic): void {
    if (!this.host.matchDest(apic, this.dest(RTC_GSI), this.logical(RTC_GSI))) return;
    const vector = this.vector(RTC_GSI);
    const newVal = apic.pendingEoi(vector);
    const id = apic.vcpuId;
    const oldVal = this.rtcDestMap.vcpus.has(id);
    if (newVal === oldVal) return;
    if (newVal) {
      this.rtcDestMap.vcpus.add(id);
      this.rtcDestMap.vectors.set(id, vector);
      this.rtcPendingEoi++;
    } else {
      this.rtcDestMap.vcpus.delete(id);
      this.rtcPendingEoi = Math.max(0, this.rtcPendingEoi - 1);
    }
  }

  private rtcEoiTrackingRestoreAll(): void {
    this.rtcEoiTrackingReset();
    for (const a of this.host.lapics()) this.rtcEoiTrackingRestoreOne(a);
  }

  /** rtc_irq_eoi */
  private rtcIrqEoi(apic: KvmLapic, vector: number): void {
    const id = apic.vcpuId;
    if (this.rtcDestMap.vcpus.has(id) && this.rtcDestMap.vectors.get(id) === vector) {
      this.rtcDestMap.vcpus.delete(id);
      this.rtcPendingEoi = Math.max(0, this.rtcPendingEoi - 1);
    }
  }

  /** kvm_ioapic_set_irq: drive pin `pin` from `sourceId`; returns KVM's status convention. */
  setIrq(pin: number, sourceId: number, level: boolean, lineStatus: boolean): number {
    if (this.host.tracing) this.host.traceIoapic('kvm_ioapic_set_irq', 'kvm_set_ioapic_irq', { pin, src: sourceId, level });
    const lvl = this.lines[pin]!.set(sourceId, level).level;
    return this.setIrqLevel(pin, lvl, lineStatus);
  }

  /** ioapic_set_irq */
  private setIrqLevel(pin: number, level: boolean, lineStatus: boolean): number {
    const mask = 1 << pin;
    const edge = !this.levelTriggered(pin);
    if (this.host.tracing) this.host.traceIoapic('ioapic_set_irq', 'kvm_ioapic_set_irq', { pin, level: level ? 1 : 0 });
    let ret: number;
    if (!level) {
      this.irr &= ~mask;
      ret = 1;
    } else if (pin === RTC_GSI && lineStatus && this.rtcPendingEoi > 0) {
      ret = 0;
    } else {
      const old = this.irr;
      this.irr |= mask;
      if (edge) {
        this.irrDelivered &= ~mask;
        if (old === this.irr) {
          return 0;
        }
      }
      ret = this.service(pin, lineStatus);
    }
    return ret;
  }

  /** ioapic_service (+ ioapic_deliver) */
  service(pin: number, lineStatus: boolean): number {
    const lo = this.lo[pin]!;
    if (this.host.tracing) this.host.traceIoapic('ioapic_service', 'ioapic_set_irq', { pin, masked: (lo & LO_MASK) !== 0 });
    if (lo & LO_MASK || (lo & LO_LEVEL && lo & LO_REMOTE_IRR)) return -1;
    const irq: LapicIrq = {
      destId: this.dest(pin),
      vector: lo & 0xff,
      logical: (lo & (1 << 11)) !== 0,
      levelTriggered: (lo & LO_LEVEL) !== 0,
      deliveryMode: (lo >> 8) & 7,
      level: true,
      shorthand: 0,
      msiRedirHint: false,
    };
    if (!irq.levelTriggered) this.irrDelivered |= 1 << pin;
    if (this.host.tracing) this.host.traceIoapic('ioapic_deliver', 'ioapic_service', { pin, vector: irq.vector, dest: irq.destId });
    let ret: number;
    if (pin === RTC_GSI && lineStatus) {
      this.rtcDestMap.vcpus.clear();
      ret = this.host.deliverToApic(null, irq, this.rtcDestMap, 'ioapic_deliver');
      this.rtcPendingEoi = ret < 0 ? 0 : ret;
    } else {
      ret = this.host.deliverToApic(null, irq, undefined, 'ioapic_deliver');
    }
    if (ret !== 0 && irq.levelTriggered) this.lo[pin] = this.lo[pin]! | LO_REMOTE_IRR;
    return ret;
  }

  /** The vectors this IOAPIC wants EOIs for on `apic` (kvm_ioapic_scan_entry). */
  handlesVector(apic: KvmLapic, vector: number, hasNotifier: (pin: number) => boolean, countPending = true): boolean {
    if (this.rtcDestMap.vcpus.has(apic.vcpuId) && this.rtcDestMap.vectors.get(apic.vcpuId) === vector) return true;
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
      if (this.vector(pin) !== vector) continue;
      if (!(this.levelTriggered(pin) || hasNotifier(pin) || pin === RTC_GSI)) continue;
      if (this.host.matchDest(apic, this.dest(pin), this.logical(pin))) return true;
      if (countPending && apic.pendingEoi(vector)) return true;
    }
    return false;
  }

  /** kvm_ioapic_update_eoi: an EOI of `vector` from `apic` (levelTriggered = its TMR bit). */
  updateEoi(apic: KvmLapic, vector: number, levelTriggered: boolean, directedEoi: boolean): void {
    this.rtcIrqEoi(apic, vector);
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
      if (this.vector(pin) !== vector) continue;
      if (this.host.tracing) this.host.traceIoapic('kvm_ioapic_update_eoi_one', 'kvm_ioapic_update_eoi', { pin, vector });
      this.host.notifyAckedIrq(2, pin);
      if (!levelTriggered || directedEoi) continue;
      this.lo[pin] = this.lo[pin]! & ~LO_REMOTE_IRR;
      if (!this.masked(pin) && this.irr & (1 << pin)) {
        this.irqEoi[pin] = this.irqEoi[pin]! + 1;
        if (this.irqEoi[pin] === IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT) {
          this.irqEoi[pin] = 0;
          this.host.scheduleEoiInject(() => this.eoiInjectWork(), IOAPIC_EOI_INJECT_DELAY_NS);
        } else {
          this.service(pin, false);
        }
      } else {
        this.irqEoi[pin] = 0;
      }
    }
  }

  /** kvm_ioapic_eoi_inject_work: re-service level pins still asserted. */
  private eoiInjectWork(): void {
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
      if (this.levelTriggered(pin) && this.irr & (1 << pin) && !this.remoteIrr(pin)) this.service(pin, false);
    }
  }

  // ---- guest register access -------------------------------------------------------
  inRange(addr: number): boolean {
    return addr >= this.baseAddress && addr < this.baseAddress + IOAPIC_MEM_LENGTH;
  }

  /** ioapic_read_indirect */
  private readIndirect(): number {
    const sel = this.ioregsel;
    if (sel === 0x01) return (((IOAPIC_NUM_PINS - 1) & 0xff) << 16) | IOAPIC_VERSION_ID;
    if (sel === 0x00 || sel === 0x02) return ((this.id & 0xf) << 24) >>> 0;
    const idx = (sel - 0x10) >> 1;
    if (sel < 0x10 || idx >= IOAPIC_NUM_PINS) return 0xffffffff;
    return sel & 1 ? this.hi[idx]! : this.lo[idx]!;
  }

  /** ioapic_write_indirect */
  private writeIndirect(val: number): void {
    const sel = this.ioregsel;
    if (sel === 0x01 || sel === 0x02) return;
    if (sel === 0x00) {
      this.id = (val >>> 24) & 0xf;
      return;
    }
    const idx = (sel - 0x10) >> 1;
    if (sel < 0x10 || idx >= IOAPIC_NUM_PINS) return;
    const oldLo = this.lo[idx]!;
    const oldDest = this.dest(idx);
    const oldLogical = this.logical(idx);
    const maskBefore = (oldLo & LO_MASK) !== 0;
    let lo = oldLo;
    if (sel & 1) this.hi[idx] = val >>> 0;
    else lo = (val & ~(LO_REMOTE_IRR | LO_DELIVERY_STATUS)) | (oldLo & (LO_REMOTE_IRR | LO_DELIVERY_STATUS));
    // An edge entry has no Remote IRR (hardware without an EOI register; Linux relies on it).
    if (!(lo & LO_LEVEL)) lo &= ~LO_REMOTE_IRR;
    this.lo[idx] = lo >>> 0;
    const maskAfter = this.masked(idx);
    if (this.host.tracing) this.host.traceIoapic('ioapic_write_indirect', 'ioapic_mmio_write', { pin: idx, lo: this.lo[idx]!, hi: this.hi[idx]! });
    if (maskBefore !== maskAfter) this.host.fireMaskNotifiers(2, idx, maskAfter);
    if (this.levelTriggered(idx) && this.irr & (1 << idx) && !maskAfter && !this.remoteIrr(idx)) {
      if (this.host.notifyIrqfdResampler(2, idx)) this.irr &= ~(1 << idx);
      else this.service(idx, false);
    }
    // The destination bitmap uses the new dest_mode for the old dest_id too, as the kernel does.
    if (((this.lo[idx]! >> 8) & 7) === 0) {
      this.host.scanIoapicRequestForEntry(this.dest(idx), oldDest, this.logical(idx), oldLogical !== this.logical(idx) || oldDest !== this.dest(idx));
    } else {
      this.host.makeScanIoapicRequest();
    }
  }

  /** ioapic_mmio_write */
  mmioWrite(addr: number, len: number, val: number): void {
    let data: number;
    if (len === 8 || len === 4) data = val >>> 0;
    else if (len === 2) data = val & 0xffff;
    else if (len === 1) data = val & 0xff;
    else return;
    switch ((addr - this.baseAddress) & 0xff) {
      case 0x00:
        this.ioregsel = data & 0xff;
        break;
      case 0x10:
        this.writeIndirect(data);
        break;
      default:
        break; // no EOI register at 0x40 in KVM's version-0x11 IOAPIC
    }
  }

  /** ioapic_mmio_read */
  mmioRead(addr: number, len: number): number {
    let result: number;
    switch ((addr - this.baseAddress) & 0xff) {
      case 0x00:
        result = this.ioregsel;
        break;
      case 0x10:
        result = this.readIndirect();
        break;
      default:
        result = 0;
    }
    if (len === 1) return result & 0xff;
    if (len === 2) return result & 0xffff;
    return result >>> 0;
  }

  // ---- KVM_GET/SET_IRQCHIP ----------------------------------------------------------
  private entryJson(pin: number): RedirEntryJson {
    const lo = this.lo[pin]!;
    const hi = this.hi[pin]!;
    return {
      pin,
      bits: hi * 2 ** 32 + lo,
      vector: lo & 0xff,
      delivery_mode: (lo >> 8) & 7,
      dest_mode: (lo >> 11) & 1,
      delivery_status: (lo >> 12) & 1,
      polarity: (lo >> 13) & 1,
      remote_irr: (lo >> 14) & 1,
      trigger: (lo >> 15) & 1,
      mask: (lo >> 16) & 1,
      dest: hi >>> 24,
    };
  }

  /** kvm_get_ioapic: note the kernel hides delivered edge IRR bits. */
  toJson(): IoapicStateJson {
    const irr = (this.irr & ~this.irrDelivered) >>> 0;
    const pins: number[] = [];
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) if (irr & (1 << i)) pins.push(i);
    const redirtbl: RedirEntryJson[] = [];
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) redirtbl.push(this.entryJson(i));
    return { base_address: this.baseAddress, id: this.id, ioregsel: this.ioregsel, irr, irr_pins: pins, redirtbl };
  }

  /**
   * kvm_set_ioapic (KVM_SET_IRQCHIP): copy the state (the whole table, Remote IRR included),
   * clear IRR, then re-inject every pin set in the written `irr` (`kvm_ioapic_inject_all`).
   */
  setState(s: { baseAddress: number; id: number; ioregsel: number; irr: number; lo: ArrayLike<number>; hi: ArrayLike<number> }): void {
    this.baseAddress = s.baseAddress;
    this.id = s.id >>> 0;
    this.ioregsel = s.ioregsel >>> 0;
    for (let i = 0; i < IOAPIC_NUM_PINS; i++) {
      this.lo[i] = s.lo[i]! >>> 0;
      this.hi[i] = s.hi[i]! >>> 0;
    }
    this.irr = 0;
    this.irrDelivered = 0;
    this.rtcEoiTrackingReset();
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) if (s.irr & (1 << pin)) this.setIrqLevel(pin, true, true);
    this.rtcEoiTrackingRestoreAll();
  }
}

/** Encodes a decoded redirection entry (the golden corpus' fields) into its two halves. */
export function encodeRedirEntry(e: Partial<RedirEntryJson>): { lo: number; hi: number } {
  const lo =
    ((e.vector ?? 0) & 0xff) |
    (((e.delivery_mode ?? 0) & 7) << 8) |
    (((e.dest_mode ?? 0) & 1) << 11) |
    (((e.delivery_status ?? 0) & 1) << 12) |
    (((e.polarity ?? 0) & 1) << 13) |
    (((e.remote_irr ?? 0) & 1) << 14) |
    (((e.trigger ?? 0) & 1) << 15) |
    (((e.mask ?? 0) & 1) << 16);
  return { lo: lo >>> 0, hi: (((e.dest ?? 0) & 0xff) << 24) >>> 0 };
}
