import type { DestMap, LapicIrq } from './lapic-irq.js';
import {
  APIC, APICBASE_BSP, APICBASE_ENABLE, APICBASE_X2APIC, APIC_DEFAULT_PHYS_BASE, APIC_DFR_FLAT, DM, KVM_APIC_VERSION,
  LAPIC_MMIO_LENGTH, LVT_MASKED, LVT_OFFSETS, LVT_WRITE_MASK, READABLE_XAPIC, SPIV_APIC_ENABLED, SPIV_DIRECTED_EOI,
} from './lapic-registers.js';

/** What the LAPIC needs of its vCPU and VM (implemented by KvmVcpu). */
export interface LapicOwner {
  readonly vcpuId: number;
  /** vcpu_id == kvm->arch.bsp_vcpu_id. */
  readonly isBsp: boolean;
  /** kvm_make_request(KVM_REQ_EVENT) */
  requestEvent(): void;
  /** kvm_vcpu_kick */
  kick(): void;
  /** kvm_inject_nmi: nmi_queued++ and KVM_REQ_NMI. */
  queueNmi(): void;
  /** kvm_inject_smi: 0 on success, < 0 when SMM is not supported. */
  injectSmi(): number;
  /** vcpu->arch.pv.pv_unhalted = 1 (delivery mode 3, KVM's PV unhalt). */
  pvUnhalt(): void;
  /** APICv active on this vCPU: fixed interrupts are posted instead of set in IRR. */
  readonly apicvActive: boolean;
  /** Guest CPUID as KVM sees it (no KVM_SET_CPUID2 → none of these). */
  readonly cpuid: { readonly x2apic: boolean; readonly tscDeadline: boolean; readonly maxPhysAddr: number };
  /** vmx_deliver_posted_interrupt (installed by @virq/irqbypass). */
  deliverPosted(vector: number): void;
  /** The VM's APIC bus. */
  readonly bus: LapicBus;
  /** apic_update_lvtt: the guest changed LVTT's timer mode (the timer is cancelled). */
  lvttModeChanged?(): void;
  /** The APIC was software-disabled: an expiry not yet injected is dropped (lapic_timer.pending = 0). */
  timerPendingCleared?(): void;
}

/** VM-wide services the LAPIC uses (implemented by KvmVm). */
export interface LapicBus {
  /** atomic_set(&kvm->arch.apic_map_dirty, DIRTY) */
  markApicMapDirty(): void;
  /** kvm_recalculate_apic_map */
  recalculateApicMap(): void;
  /** kvm_irq_delivery_to_apic */
  deliverToApic(src: KvmLapic | null, irq: LapicIrq, destMap?: DestMap): number;
  /** kvm_ioapic_send_eoi: the IOAPIC side of an EOI (handled vectors, TMR, directed EOI). */
  ioapicSendEoi(apic: KvmLapic, vector: number): void;
  /** kvm_rtc_eoi_tracking_restore_one after KVM_SET_LAPIC. */
  rtcEoiTrackingRestoreOne(apic: KvmLapic): void;
  /** Trace hook: an APIC bus step, named as the kernel function. */
  readonly tracing: boolean;
  traceLapic(fn: string, caller: string, args: Readonly<Record<string, number | string | boolean>>): void;
}

/** KVM_GET_LAPIC as the golden corpus decodes it. */
export interface LapicStateJson {
  cpu: number;
  apic_base_msr: number;
  id: number;
  id_reg: number;
  version: number;
  tpr: number;
  ppr: number;
  ldr: number;
  dfr: number;
  spiv: number;
  sw_enabled: boolean;
  irr: number[];
  isr: number[];
  tmr: number[];
  esr: number;
  icr: number;
  icr2: number;
  lvt0: number;
  lvt1: number;
  lvtt: number;
  lvterr: number;
  hw_enabled: boolean;
}

const KVM_APIC_INIT = 1;
const KVM_APIC_SIPI = 2;

/**
 * One vCPU's local APIC as arch/x86/kvm/lapic.c models it (xAPIC MMIO and the register
 * page of KVM_GET/SET_LAPIC; x2APIC MSR access through `msrWrite`/`msrRead`).
 *
 * Kept faithful where it shows: `isr_count` / `highest_isr_cache` are kept like KVM's, so
 * KVM_SET_LAPIC leaves PPR computed from the *previous* ISR bookkeeping (KVM recomputes PPR
 * before it recounts ISR bits), which is what real KVM_GET_LAPIC returns afterwards.
 */
/** What a guest MMIO read receives when the device left the emulator's buffer untouched. */
const LapicMmio = {
  emulatorLeftover(addr: number, len: number): number {
    const v = addr >>> 0;
    return len >= 4 ? v : v & ((1 << (len * 8)) - 1);
  },
};

export class KvmLapic {
  /** The 1 KiB register page, 32-bit registers at offset/4. */
  readonly regs = new Uint32Array(256);
  apicBase = 0;
  private isrCount = 0;
  /** KVM's apic->irr_pending: false only when IRR is known to be empty. */
  private irrPending = true;
  private highestIsrCache = -1;
  /** KVM_APIC_INIT / KVM_APIC_SIPI bits (apic->pending_events). */
  pendingEvents = 0;
  sipiVector = 0;
  /** vcpu->arch.apic_arb_prio */
  arbPrio = 0;
  /** Accepted interrupts (fixed/lowest) since creation: a cheap counter for metrics. */
  accepted = 0;

  constructor(readonly owner: LapicOwner) {}

  // ---- register access -------------------------------------------------------------
  getReg(off: number): number {
    return this.regs[off >> 2]!;
  }
  setReg(off: number, v: number): void {
    this.regs[off >> 2] = v >>> 0;
    if (off >= APIC.IRR && off < APIC.IRR + 0x80) this.irrPending = true;
  }
  /** Snapshot restore: the whole register page at once. */
  restoreRegisters(page: ArrayLike<number>): void {
    this.regs.set(page);
    this.irrPending = true;
  }
  testVector(vec: number, base: number): boolean {
    return (this.regs[(base >> 2) + ((vec >> 5) << 2)]! & (1 << (vec & 31))) !== 0;
  }
  setVector(vec: number, base: number): void {
    this.regs[(base >> 2) + ((vec >> 5) << 2)]! |= 1 << (vec & 31);
    if (base === APIC.IRR) this.irrPending = true;
  }
  clearVector(vec: number, base: number): void {
    this.regs[(base >> 2) + ((vec >> 5) << 2)]! &= ~(1 << (vec & 31));
  }
  /** Highest set vector in a 256-bit group, or -1. */
  findHighestVector(base: number): number {
    const w0 = base >> 2;
    for (let i = 7; i >= 0; i--) {
      const w = this.regs[w0 + (i << 2)]!;
      if (w !== 0) return (i << 5) + 31 - Math.clz32(w);
    }
    return -1;
  }
  vectors(base: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < 8; i++) {
      const w = this.regs[(base >> 2) + (i << 2)]!;
      if (w === 0) continue;
      for (let b = 0; b < 32; b++) if ((w >>> b) & 1) out.push(i * 32 + b);
    }
    return out;
  }

  get vcpuId(): number {
    return this.owner.vcpuId;
  }
  get hwEnabled(): boolean {
    return (this.apicBase & APICBASE_ENABLE) !== 0;
  }
  get swEnabled(): boolean {
    return (this.getReg(APIC.SPIV) & SPIV_APIC_ENABLED) !== 0;
  }
  /** apic_enabled: hardware and software enabled. */
  get enabled(): boolean {
    return this.hwEnabled && this.swEnabled;
  }
  get x2apicMode(): boolean {
    return (this.apicBase & APICBASE_X2APIC) !== 0;
  }
  get xapicId(): number {
    return this.getReg(APIC.ID) >>> 24;
  }
  /** KVM hard-wires the x2APIC ID to the vCPU id. */
  get x2apicId(): number {
    return this.owner.vcpuId;
  }
  /** The physical APIC ID the APIC map uses. */
  get physicalId(): number {
    return this.x2apicMode ? this.getReg(APIC.ID) : this.xapicId;
  }
  get baseAddress(): number {
    // `& 0xfff` keeps the low 12 bits of any address below 2^53 (ToInt32 wraps modulo 2^32).
    return this.apicBase - (this.apicBase & 0xfff);
  }

  // ---- priority -----------------------------------------------------------------
  /** apic_find_highest_isr, with KVM's isr_count / highest_isr_cache shortcuts. */
  findHighestIsr(): number {
    if (this.isrCount === 0) return -1;
    if (this.highestIsrCache !== -1) return this.highestIsrCache;
    return this.findHighestVector(APIC.ISR);
  }
  /**
   * apic_find_highest_irr with KVM's `irr_pending` shortcut: once a search finds IRR empty, the
   * next searches answer -1 at once until a vector is set again (every IRR write goes through
   * setVector / setReg / setState / restoreRegisters, which raise the flag).
   */
  findHighestIrr(): number {
    if (!this.irrPending) return -1;
    const v = this.findHighestVector(APIC.IRR);
    if (v === -1) this.irrPending = false;
    return v;
  }
  /** apic_update_ppr; returns whether PPR went down. `request`: KVM's (not the CPU's virtual PPR update). */
  updatePpr(request = true): boolean {
    const old = this.getReg(APIC.PROCPRI);
    const tpr = this.getReg(APIC.TASKPRI);
    const isr = this.findHighestIsr();
    const isrv = isr !== -1 ? isr : 0;
    const ppr = (tpr & 0xf0) >= (isrv & 0xf0) ? tpr & 0xff : isrv & 0xf0;
    if (old !== ppr) this.setReg(APIC.PROCPRI, ppr);
    const lowered = ppr < old;
    if (request && lowered && this.hasInterruptForPpr(ppr) !== -1) this.owner.requestEvent();
    return lowered;
  }
  private hasInterruptForPpr(ppr: number): number {
    const v = this.findHighestIrr();
    return v !== -1 && (v & 0xf0) > ppr ? v : -1;
  }
  /**
   * kvm_apic_has_interrupt: the vector the CPU would take now, or -1. Like the kernel it first
   * recomputes PPR into the register (__apic_update_ppr: no event request), which is how a
   * PPR left stale by KVM_SET_LAPIC gets fixed at the vCPU's next entry.
   */
  hasInterrupt(): number {
    if (!this.hwEnabled) return -1;
    const tpr = this.getReg(APIC.TASKPRI);
    const isr = this.findHighestIsr();
    const isrv = isr !== -1 ? isr : 0;
    const ppr = (tpr & 0xf0) >= (isrv & 0xf0) ? tpr & 0xff : isrv & 0xf0;
    if (this.getReg(APIC.PROCPRI) !== ppr) this.setReg(APIC.PROCPRI, ppr);
    return this.hasInterruptForPpr(ppr);
  }
  private setIsr(vec: number): void {
    if (this.testVector(vec, APIC.ISR)) return;
    this.setVector(vec, APIC.ISR);
    this.isrCount++;
    this.highestIsrCache = vec;
  }
  private clearIsr(vec: number): void {
    if (!this.testVector(vec, APIC.ISR)) return;
    this.clearVector(vec, APIC.ISR);
    this.isrCount--;
    this.highestIsrCache = -1;
  }
  /** kvm_get_apic_interrupt: the CPU acknowledges `vector` (IRR → ISR, PPR update). */
  ackInterrupt(vector: number): void {
    this.clearVector(vector, APIC.IRR);
    this.setIsr(vector);
    this.updatePpr();
  }
  /**
   * The CPU's PIR → vIRR merge (posted-interrupt processing / sync_pir_to_irr): sets IRR
   * bits without KVM_REQ_EVENT and without a kick.
   */
  setIrr(vector: number): void {
    this.setVector(vector & 0xff, APIC.IRR);
  }
  /** kvm_apic_pending_eoi: the vector is in IRR or ISR. */
  pendingEoi(vector: number): boolean {
    return this.testVector(vector, APIC.ISR) || this.testVector(vector, APIC.IRR);
  }
  /** kvm_apic_accept_pic_intr: LVT0 unmasked ExtINT, or the LAPIC hardware-disabled. */
  acceptsPicInterrupts(): boolean {
    if (!this.hwEnabled) return true;
    const lvt0 = this.getReg(APIC.LVT0);
    return (lvt0 & LVT_MASKED) === 0 && ((lvt0 >> 8) & 7) === DM.EXTINT;
  }

  // ---- acceptance -----------------------------------------------------------------
  /** kvm_apic_local_deliver: an LVT entry's interrupt to this LAPIC when it is hardware-enabled and the entry unmasked. */
  localDeliver(lvt: number, caller: string): number {
    const reg = this.getReg(lvt);
    if (!this.hwEnabled || (reg & LVT_MASKED) !== 0) return 0;
    if (this.owner.bus.tracing) this.owner.bus.traceLapic('kvm_apic_local_deliver', caller, { vcpu: this.owner.vcpuId, lvt });
    return this.acceptIrq((reg >> 8) & 7, reg & 0xff, true, (reg & 0x8000) !== 0, undefined, 'kvm_apic_local_deliver');
  }

  /** kvm_apic_set_irq → __apic_accept_irq: 1 accepted, 0 discarded. */
  setIrq(irq: LapicIrq, destMap?: DestMap, caller = 'kvm_irq_delivery_to_apic_fast'): number {
    if (this.owner.bus.tracing) this.owner.bus.traceLapic('kvm_apic_set_irq', caller, { vcpu: this.owner.vcpuId, vector: irq.vector });
    return this.acceptIrq(irq.deliveryMode, irq.vector, irq.level, irq.levelTriggered, destMap);
  }

  acceptIrq(deliveryMode: number, vector: number, level: boolean, levelTriggered: boolean, destMap?: DestMap, caller = 'kvm_apic_set_irq'): number {
    const owner = this.owner;
    if (owner.bus.tracing) owner.bus.traceLapic('__apic_accept_irq', caller, { vcpu: owner.vcpuId, dm: deliveryMode, vector, level: levelTriggered });
    switch (deliveryMode) {
      case DM.LOWEST:
      case DM.FIXED: {
        if (deliveryMode === DM.LOWEST) this.arbPrio++;
        if (levelTriggered && !level) return 0;
        if (!this.enabled) return 0;
        if (destMap !== undefined) {
          destMap.vcpus.add(owner.vcpuId);
          destMap.vectors.set(owner.vcpuId, vector);
        }
        if (this.testVector(vector, APIC.TMR) !== levelTriggered) {
          if (levelTriggered) this.setVector(vector, APIC.TMR);
          else this.clearVector(vector, APIC.TMR);
        }
        this.accepted++;
        if (owner.apicvActive) {
          owner.deliverPosted(vector);
        } else {
          this.setVector(vector, APIC.IRR);
          owner.requestEvent();
          owner.kick();
        }
        return 1;
      }
      case DM.REMRD:
        owner.pvUnhalt();
        owner.requestEvent();
        owner.kick();
        return 1;
      case DM.SMI:
        if (owner.injectSmi() === 0) {
          owner.kick();
          return 1;
        }
        return 0;
      case DM.NMI:
        owner.queueNmi();
        owner.kick();
        return 1;
      case DM.INIT:
        if (!levelTriggered || level) {
          this.pendingEvents = KVM_APIC_INIT;
          owner.requestEvent();
          owner.kick();
          return 1;
        }
        return 0;
      case DM.STARTUP:
        this.sipiVector = vector;
        this.pendingEvents |= KVM_APIC_SIPI;
        owner.requestEvent();
        owner.kick();
        return 1;
      default:
        // ExtINT: the PIC path handles it (kvm_apic_accept_pic_intr).
        return 0;
    }
  }

  get latchedInit(): boolean {
    return (this.pendingEvents & KVM_APIC_INIT) !== 0;
  }
  /** kvm_apic_accept_events' bits: takes the pending INIT/SIPI. */
  takePendingEvents(): { init: boolean; sipi: boolean; sipiVector: number } {
    const ev = { init: (this.pendingEvents & KVM_APIC_INIT) !== 0, sipi: (this.pendingEvents & KVM_APIC_SIPI) !== 0, sipiVector: this.sipiVector };
    this.pendingEvents = 0;
    return ev;
  }

  /** apic_set_eoi: retire the highest in-service vector. Returns it, or -1. */
  /**
   * EOI virtualization (APICv, a vector outside the EOI-exit bitmap): the CPU clears the vISR
   * bit and re-evaluates the virtual PPR itself — no exit, so no KVM code runs (no apic_set_eoi,
   * no KVM_REQ_EVENT). Returns the vector, or -1.
   */
  virtualEoi(): number {
    const vector = this.findHighestIsr();
    if (vector === -1) return -1;
    this.clearIsr(vector);
    this.updatePpr(false);
    return vector;
  }

  setEoi(): number {
    const vector = this.findHighestIsr();
    if (this.owner.bus.tracing) this.owner.bus.traceLapic('apic_set_eoi', 'kvm_lapic_reg_write', { vcpu: this.owner.vcpuId, vector });
    if (vector === -1) return -1;
    this.clearIsr(vector);
    this.updatePpr();
    this.owner.bus.ioapicSendEoi(this, vector);
    this.owner.requestEvent();
    return vector;
  }

  // ---- register writes (kvm_lapic_reg_write) ---------------------------------------------
  private setSpiv(val: number): void {
    if (((this.getReg(APIC.SPIV) ^ val) & SPIV_APIC_ENABLED) !== 0) this.owner.bus.markApicMapDirty();
    this.setReg(APIC.SPIV, val);
  }
  setTpr(tpr: number): void {
    this.setReg(APIC.TASKPRI, tpr & 0xff);
    this.updatePpr();
  }

  /** kvm_lapic_reg_write; returns 1 for a register KVM refuses (the write is dropped). */
  regWrite(reg: number, val: number): number {
    val >>>= 0;
    let ret = 0;
    const bus = this.owner.bus;
    if (bus.tracing) bus.traceLapic('kvm_lapic_reg_write', 'apic_mmio_write', { vcpu: this.owner.vcpuId, reg, val });
    switch (reg) {
      case APIC.ID:
        if (this.x2apicMode) ret = 1;
        else {
          this.setReg(APIC.ID, (val >>> 24) << 24);
          bus.markApicMapDirty();
        }
        break;
      case APIC.TASKPRI:
        this.setTpr(val & 0xff);
        break;
      case APIC.EOI:
        this.setEoi();
        break;
      case APIC.LDR:
        if (this.x2apicMode) ret = 1;
        else {
          this.setReg(APIC.LDR, val & 0xff000000);
          bus.markApicMapDirty();
        }
        break;
      case APIC.DFR:
        if (this.x2apicMode) ret = 1;
        else {
          this.setReg(APIC.DFR, (val | 0x0fffffff) >>> 0);
          bus.markApicMapDirty();
        }
        break;
      case APIC.SPIV: {
        let mask = 0x3ff;
        if (this.getReg(APIC.LVR) & (1 << 24)) mask |= SPIV_DIRECTED_EOI;
        this.setSpiv(val & mask);
        if (!(val & SPIV_APIC_ENABLED)) {
          for (const off of LVT_OFFSETS) this.setReg(off, this.getReg(off) | LVT_MASKED);
          this.owner.timerPendingCleared?.();
        }
        break;
      }
      case APIC.ICR: {
        if (this.x2apicMode) {
          ret = 1;
          break;
        }
        const low = val & ~0x1000;
        this.sendIpi(low, this.getReg(APIC.ICR2));
        this.setReg(APIC.ICR, low);
        break;
      }
      case APIC.ICR2:
        if (this.x2apicMode) ret = 1;
        else this.setReg(APIC.ICR2, val & 0xff000000);
        break;
      case APIC.LVT0:
      case APIC.LVTTHMR:
      case APIC.LVTPC:
      case APIC.LVT1:
      case APIC.LVTERR: {
        let v = val;
        if (!this.swEnabled) v |= LVT_MASKED;
        this.setReg(reg, v & LVT_WRITE_MASK[reg]!);
        break;
      }
      case APIC.LVTT: {
        // timer_mode_mask comes from guest CPUID (TSC deadline: bits 18:17, else periodic bit 17).
        const c = this.owner.cpuid;
        const modeMask = c.tscDeadline ? 0x60000 : c.x2apic ? 0x20000 : 0;
        let v = val;
        if (!this.swEnabled) v |= LVT_MASKED;
        const oldMode = this.getReg(reg) & 0x60000;
        this.setReg(reg, v & ((LVT_WRITE_MASK[reg]! & ~0x60000) | modeMask));
        if ((this.getReg(reg) & 0x60000) !== oldMode) this.owner.lvttModeChanged?.();
        break;
      }
      case APIC.TMICT:
        this.setReg(APIC.TMICT, val);
        break;
      case APIC.TDCR:
        this.setReg(APIC.TDCR, val & 0xb);
        break;
      case APIC.ESR:
        if (this.x2apicMode && val !== 0) ret = 1;
        break;
      case APIC.SELF_IPI:
        if (!this.x2apicMode || (val & ~0xff) !== 0) ret = 1;
        else this.sendIpi((1 << 18) | val, 0);
        break;
      default:
        ret = 1;
        break;
    }
    bus.recalculateApicMap();
    return ret;
  }

  /** kvm_apic_send_ipi: ICR → kvm_irq_delivery_to_apic. */
  sendIpi(icrLow: number, icrHigh: number): number {
    const irq: LapicIrq = {
      vector: icrLow & 0xff,
      deliveryMode: (icrLow >> 8) & 7,
      logical: (icrLow & 0x800) !== 0,
      level: (icrLow & 0x4000) !== 0,
      levelTriggered: (icrLow & 0x8000) !== 0,
      shorthand: (icrLow >> 18) & 3,
      destId: this.x2apicMode ? icrHigh >>> 0 : icrHigh >>> 24,
      msiRedirHint: false,
    };
    if (this.owner.bus.tracing) this.owner.bus.traceLapic('apic_send_ipi', 'kvm_lapic_reg_write', { vcpu: this.owner.vcpuId, icr: icrLow, dest: irq.destId });
    return this.owner.bus.deliverToApic(this, irq);
  }

  /** kvm_lapic_reg_read (one aligned 32-bit register); undefined for unreadable registers. */
  regRead(off: number): number | undefined {
    if (off > 0x3f0 || !READABLE_XAPIC.has(off)) return undefined;
    switch (off) {
      case APIC.ARBPRI:
        return 0;
      case APIC.TMCCT:
        return 0;
      case APIC.PROCPRI:
        this.updatePpr();
        return this.getReg(off);
      default:
        return this.getReg(off);
    }
  }

  /** Whether `addr` is in this LAPIC's MMIO page. */
  mmioInRange(addr: number): boolean {
    const base = this.baseAddress;
    return addr >= base && addr < base + LAPIC_MMIO_LENGTH;
  }

  /** apic_mmio_write (a guest write that trapped: APIC_ACCESS). */
  mmioWrite(addr: number, len: number, val: number): void {
    if (!this.hwEnabled || this.x2apicMode) return; // KVM_X86_QUIRK_LAPIC_MMIO_HOLE
    const off = addr - this.baseAddress;
    if (len !== 4 || (off & 0xf) !== 0) return;
    this.regWrite(off & 0xff0, val);
  }

  /**
   * apic_mmio_read. When kvm_lapic_reg_read refuses the access (a write-only or reserved
   * offset, past 0x3f0, or an access crossing a 4-byte boundary) apic_mmio_read still reports
   * it handled but leaves the caller's buffer untouched: the instruction then receives what the
   * x86 emulator's read buffer held. On 6.18 that is the access's own address (recorded:
   * a 32-bit read of EOI at 0xfee000b0 yields 0xfee000b0), which `mmioRead` returns.
   */
  mmioRead(addr: number, len: number): number {
    return this.mmioReadIfReadable(addr, len) ?? LapicMmio.emulatorLeftover(addr, len);
  }

  /** apic_mmio_read's data, or undefined when kvm_lapic_reg_read left the buffer untouched. */
  mmioReadIfReadable(addr: number, len: number): number | undefined {
    if (!this.hwEnabled || this.x2apicMode) return len >= 4 ? 0xffffffff : (1 << (len * 8)) - 1;
    const off = addr - this.baseAddress;
    const align = off & 0xf;
    if (align + len > 4) return undefined;
    const v = this.regRead(off & ~0xf);
    if (v === undefined) return undefined;
    const shifted = v >>> (align * 8);
    return len >= 4 ? shifted >>> 0 : shifted & ((1 << (len * 8)) - 1);
  }

  /** x2APIC MSR write (0x800 + reg >> 4). Returns 1 when KVM refuses it (#GP). */
  msrWrite(msr: number, value: bigint): number {
    if (!this.x2apicMode) return 1;
    const reg = (msr - 0x800) << 4;
    if (reg === APIC.ICR) {
      // X2APIC_ICR_RESERVED_BITS: 31:20, 17:16, 13 → #GP
      if ((value & 0xfff3_2000n) !== 0n) return 1;
      const lo = Number(value & 0xffffffffn) & ~0x1000;
      const hi = Number((value >> 32n) & 0xffffffffn);
      this.sendIpi(lo, hi);
      this.setReg(APIC.ICR, lo);
      this.setReg(APIC.ICR2, hi);
      return 0;
    }
    if (reg === APIC.ID || reg === APIC.LDR || reg === APIC.DFR) return 1;
    if (reg === APIC.EOI && value !== 0n) return 1;
    return this.regWrite(reg, Number(value & 0xffffffffn));
  }

  // ---- reset / base / state ---------------------------------------------------------
  /** kvm_lapic_reset (init_event = false at creation, true for INIT). */
  reset(initEvent: boolean): void {
    // kvm_lapic_reset stops the timer (hrtimer_cancel; LVTT back to masked one-shot → apic_update_lvtt).
    this.owner.lvttModeChanged?.();
    if (!initEvent) {
      this.setBaseRaw((APIC_DEFAULT_PHYS_BASE | APICBASE_ENABLE | (this.owner.isBsp ? APICBASE_BSP : 0)) >>> 0);
      this.setReg(APIC.ID, (this.owner.vcpuId & 0xff) << 24);
      this.owner.bus.markApicMapDirty();
    }
    this.setReg(APIC.LVR, KVM_APIC_VERSION);
    for (const off of LVT_OFFSETS) this.setReg(off, LVT_MASKED);
    if (this.owner.isBsp) this.setReg(APIC.LVT0, DM.EXTINT << 8);
    this.setReg(APIC.DFR, APIC_DFR_FLAT);
    this.owner.bus.markApicMapDirty();
    this.setSpiv(0xff);
    this.setReg(APIC.TASKPRI, 0);
    if (!this.x2apicMode) this.setReg(APIC.LDR, 0);
    this.setReg(APIC.ESR, 0);
    this.setReg(APIC.ICR, 0);
    this.setReg(APIC.ICR2, 0);
    this.setReg(APIC.TDCR, 0);
    this.setReg(APIC.TMICT, 0);
    for (let i = 0; i < 8; i++) {
      this.setReg(APIC.IRR + 0x10 * i, 0);
      this.setReg(APIC.ISR + 0x10 * i, 0);
      this.setReg(APIC.TMR + 0x10 * i, 0);
    }
    this.isrCount = 0;
    this.highestIsrCache = -1;
    this.updatePpr();
    this.arbPrio = 0;
    this.owner.bus.recalculateApicMap();
  }

  private setBaseRaw(value: number): void {
    const old = this.apicBase;
    this.apicBase = value;
    if ((old ^ value) & APICBASE_ENABLE) {
      if (value & APICBASE_ENABLE) this.setReg(APIC.ID, (this.owner.vcpuId & 0xff) << 24);
      this.owner.bus.markApicMapDirty();
    }
    if ((old ^ value) & APICBASE_X2APIC) {
      if (value & APICBASE_X2APIC) {
        const id = this.owner.vcpuId;
        this.setReg(APIC.ID, id);
        this.setReg(APIC.LDR, (((id >> 4) << 16) | (1 << (id & 0xf))) >>> 0);
      } else if (value & APICBASE_ENABLE) {
        this.setReg(APIC.ID, (this.owner.vcpuId & 0xff) << 24);
      }
      this.owner.bus.markApicMapDirty();
    }
  }

  /** kvm_apic_set_base (IA32_APIC_BASE write). Returns 1 when refused. */
  setBase(value: number, hostInitiated: boolean): number {
    if (this.apicBase === value) return 0;
    const mode = (v: number): number => (v & (APICBASE_ENABLE | APICBASE_X2APIC)) / APICBASE_X2APIC;
    const newMode = mode(value);
    const oldMode = mode(this.apicBase);
    // reserved: bits 0–7 and 9, x2APIC enable without x2APIC in CPUID, and bits above MAXPHYADDR.
    const c = this.owner.cpuid;
    if ((value % 0x400) & 0x2ff || (!c.x2apic && value & APICBASE_X2APIC) || value >= 2 ** c.maxPhysAddr || newMode === 1) return 1;
    if (!hostInitiated) {
      if (oldMode === 3 && newMode === 2) return 1;
      if (oldMode === 0 && newMode === 3) return 1;
    }
    this.setBaseRaw(value);
    this.owner.bus.recalculateApicMap();
    return 0;
  }

  /** KVM's ISR bookkeeping (isr_count, highest_isr_cache), for snapshots. */
  get isrBookkeeping(): { isrCount: number; highestIsrCache: number } {
    return { isrCount: this.isrCount, highestIsrCache: this.highestIsrCache };
  }
  set isrBookkeeping(b: { isrCount: number; highestIsrCache: number }) {
    this.isrCount = b.isrCount;
    this.highestIsrCache = b.highestIsrCache;
  }

  /** KVM_GET_LAPIC decoded as the golden corpus records it. */
  toJson(): LapicStateJson {
    const r = (o: number): number => this.getReg(o);
    return {
      cpu: this.owner.vcpuId,
      apic_base_msr: this.apicBase,
      id: r(APIC.ID) >>> 24,
      id_reg: r(APIC.ID),
      version: r(APIC.LVR),
      tpr: r(APIC.TASKPRI),
      ppr: r(APIC.PROCPRI),
      ldr: r(APIC.LDR),
      dfr: r(APIC.DFR),
      spiv: r(APIC.SPIV),
      sw_enabled: this.swEnabled,
      irr: this.vectors(APIC.IRR),
      isr: this.vectors(APIC.ISR),
      tmr: this.vectors(APIC.TMR),
      esr: r(APIC.ESR),
      icr: r(APIC.ICR),
      icr2: r(APIC.ICR2),
      lvt0: r(APIC.LVT0),
      lvt1: r(APIC.LVT1),
      lvtt: r(APIC.LVTT),
      lvterr: r(APIC.LVTERR),
      hw_enabled: this.hwEnabled,
    };
  }

  /** KVM_GET_LAPIC: a copy of the register page. */
  getState(): Uint32Array {
    return this.regs.slice();
  }

  /**
   * KVM_SET_LAPIC (kvm_apic_set_state): copy the page, rebuild the APIC map, force the
   * version, update PPR (with the ISR bookkeeping of *before* the copy, as KVM does), then
   * recount ISR and restore RTC EOI tracking.
   */
  setState(page: Uint32Array): void {
    this.setSpiv(page[APIC.SPIV >> 2]!);
    this.regs.set(page.subarray(0, 256));
    this.irrPending = true;
    this.owner.bus.markApicMapDirty();
    this.owner.bus.recalculateApicMap();
    this.setReg(APIC.LVR, KVM_APIC_VERSION);
    this.updatePpr();
    let n = 0;
    for (let i = 0; i < 8; i++) {
      let w = this.regs[(APIC.ISR >> 2) + (i << 2)]!;
      while (w !== 0) {
        w &= w - 1;
        n++;
      }
    }
    this.isrCount = n;
    this.highestIsrCache = -1;
    this.owner.requestEvent();
    this.owner.bus.rtcEoiTrackingRestoreOne(this);
    this.arbPrio = 0;
  }
}
