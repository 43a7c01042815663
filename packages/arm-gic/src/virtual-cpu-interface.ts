import { ActivePriorities } from './active-priorities.js';
import {
  ICH_HCR_EN, ICH_HCR_LRENPIE, ICH_HCR_NPIE, ICH_HCR_UIE, ICH_LR_ACTIVE_BIT, ICH_LR_EOI, ICH_LR_GROUP, ICH_LR_HW, ICH_LR_PENDING_BIT,
  ICH_LR_PINTID_MASK, ICH_LR_PINTID_SHIFT, ICH_LR_PRIORITY_SHIFT, ICH_LR_VINTID_MASK, ICH_MISR_EOI, ICH_MISR_LRENP, ICH_MISR_NP, ICH_MISR_U,
  ICH_VMCR_BPR1_SHIFT, ICH_VMCR_ENG0, ICH_VMCR_ENG1, ICH_VMCR_EOIM, ICH_VMCR_PMR_SHIFT, INTID_SPURIOUS, LPI_BASE_INTID,
} from './registers.js';
import type { Vpe } from './vpe.js';

/** LR State field values (bits 63:62). */
export const LR_INVALID = 0;
export const LR_PENDING = 1;
export const LR_ACTIVE = 2;
export const LR_PENDING_ACTIVE = 3;

/** One list register's fields (ICH_LR<n>_EL2, FACTS §14.1). */
export interface ListRegister {
  vintid: number;
  pintid: number;
  hw: boolean;
  eoi: boolean;
  group: 0 | 1;
  priority: number;
  state: number;
}

/** Encodes a list register as the 64-bit ICH_LR<n>_EL2 value. */
export function encodeListRegister(lr: ListRegister): bigint {
  let v = BigInt(lr.vintid >>> 0) & ICH_LR_VINTID_MASK;
  if (lr.hw) v |= (BigInt(lr.pintid) & ICH_LR_PINTID_MASK) << ICH_LR_PINTID_SHIFT;
  if (!lr.hw && lr.eoi) v |= ICH_LR_EOI;
  v |= BigInt(lr.priority & 0xff) << ICH_LR_PRIORITY_SHIFT;
  if (lr.group === 1) v |= ICH_LR_GROUP;
  if (lr.hw) v |= ICH_LR_HW;
  if ((lr.state & LR_PENDING) !== 0) v |= ICH_LR_PENDING_BIT;
  if ((lr.state & LR_ACTIVE) !== 0) v |= ICH_LR_ACTIVE_BIT;
  return v;
}

export function decodeListRegister(v: bigint): ListRegister {
  const hw = (v & ICH_LR_HW) !== 0n;
  return {
    vintid: Number(v & ICH_LR_VINTID_MASK),
    pintid: hw ? Number((v >> ICH_LR_PINTID_SHIFT) & ICH_LR_PINTID_MASK) : 0,
    hw,
    eoi: !hw && (v & ICH_LR_EOI) !== 0n,
    group: (v & ICH_LR_GROUP) !== 0n ? 1 : 0,
    priority: Number((v >> ICH_LR_PRIORITY_SHIFT) & 0xffn),
    state: ((v & ICH_LR_PENDING_BIT) !== 0n ? LR_PENDING : 0) | ((v & ICH_LR_ACTIVE_BIT) !== 0n ? LR_ACTIVE : 0),
  };
}

/**
 * The GICv3 virtual CPU interface of one physical CPU as the hardware implements it
 * (FACTS §14.1): list registers, ICH_HCR_EL2 (En, UIE, LRENPIE, NPIE), ICH_VMCR_EL2 (the
 * guest's PMR, BPR1, EOImode, group enables), the virtual active priorities and EOIcount;
 * what the guest's ICV_IAR1/EOIR1/DIR accesses do *without any exit*; ICH_MISR/EISR/ELRSR
 * and the maintenance interrupt; and, with GICv4, the vLPIs of the vPE resident on this
 * CPU's redistributor, which the guest acknowledges directly.
 */
export class VirtualCpuInterface {
  readonly lrs: ListRegister[] = [];
  hcr = 0;
  vpmr = 0;
  vbpr1: number;
  veoim = false;
  veng0 = false;
  veng1 = false;
  readonly ap1r: ActivePriorities;
  /** ICH_HCR.EOIcount: EOIs whose vINTID was in no LR. */
  eoiCount = 0;
  /** The vPE resident on this CPU's redistributor (GICv4), whose vLPIs the guest sees directly. */
  vpe: Vpe | undefined;
  /** A guest deactivation of an LR with HW = 1: deactivate pINTID in the physical GIC. */
  onPhysicalDeactivate: ((pintid: number) => void) | undefined;
  /** Counters of guest operations (none of them exits). */
  readonly stats = { acks: 0, eois: 0, directVlpiAcks: 0, physicalDeactivations: 0 };

  constructor(
    readonly nrLr = 4,
    priorityBits = 5,
  ) {
    this.ap1r = new ActivePriorities(priorityBits);
    this.vbpr1 = this.ap1r.minBpr1;
    for (let i = 0; i < nrLr; i++) this.lrs.push({ vintid: 0, pintid: 0, hw: false, eoi: false, group: 0, priority: 0, state: LR_INVALID });
  }

  /** ICH_VTR_EL2: ListRegs 4:0 = nr_lr − 1, PREbits 28:26 and PRIbits 31:29 = 5 − 1. */
  get vtr(): number {
    return ((this.nrLr - 1) | (4 << 26) | (4 << 29)) >>> 0;
  }

  get vmcr(): number {
    return ((this.veng0 ? ICH_VMCR_ENG0 : 0) | (this.veng1 ? ICH_VMCR_ENG1 : 0) | (this.veoim ? ICH_VMCR_EOIM : 0) |
      (this.vbpr1 << ICH_VMCR_BPR1_SHIFT) | (this.vpmr << ICH_VMCR_PMR_SHIFT)) >>> 0;
  }

  set vmcr(v: number) {
    this.veng0 = (v & ICH_VMCR_ENG0) !== 0;
    this.veng1 = (v & ICH_VMCR_ENG1) !== 0;
    this.veoim = (v & ICH_VMCR_EOIM) !== 0;
    this.vbpr1 = Math.max((v >>> ICH_VMCR_BPR1_SHIFT) & 7, this.ap1r.minBpr1);
    this.vpmr = (v >>> ICH_VMCR_PMR_SHIFT) & 0xff;
  }

  readLr(n: number): bigint {
    return encodeListRegister(this.lrs[n]);
  }

  writeLr(n: number, v: bigint): void {
    Object.assign(this.lrs[n], decodeListRegister(v));
  }

  clearLr(n: number): void {
    const lr = this.lrs[n];
    lr.vintid = 0;
    lr.pintid = 0;
    lr.hw = false;
    lr.eoi = false;
    lr.group = 0;
    lr.priority = 0;
    lr.state = LR_INVALID;
  }

  /** Whether virtual group `group` is enabled in ICH_VMCR (VENG0/VENG1). */
  groupEnabled(group: 0 | 1): boolean {
    return group === 1 ? this.veng1 : this.veng0;
  }

  /** The LR index or direct vLPI the guest's IAR1 would return; -1 for none, or 1_000_000 + vINTID. */
  private pick(): number {
    let best = -1;
    let bestPri = 0x100;
    for (let n = 0; n < this.nrLr; n++) {
      const lr = this.lrs[n];
      if (lr.state !== LR_PENDING || !this.groupEnabled(lr.group)) continue;
      if (lr.priority < bestPri) {
        best = n;
        bestPri = lr.priority;
      }
    }
    const vpe = this.vpe;
    if (vpe !== undefined && vpe.resident && vpe.pending.size > 0 && this.veng1) {
      const v = vpe.highestPending();
      if (v !== INTID_SPURIOUS && vpe.priorityOf(v) < bestPri) {
        best = 1_000_000 + v;
        bestPri = vpe.priorityOf(v);
      }
    }
    if (best < 0 || bestPri >= this.vpmr || !this.ap1r.canPreempt(bestPri, this.vbpr1)) return -1;
    return best;
  }

  /** Whether the virtual IRQ line to the guest is asserted (something it would acknowledge). */
  get virtualIrqPending(): boolean {
    return this.pick() >= 0;
  }

  /** ICV_HPPIR1_EL1. */
  hppir1(): number {
    const p = this.pick();
    if (p < 0) return INTID_SPURIOUS;
    return p >= 1_000_000 ? p - 1_000_000 : this.lrs[p].vintid;
  }

  /** ICV_IAR1_EL1: pending → active in the LR (or a direct vLPI consumed from the VPT). */
  iar1(): number {
    const p = this.pick();
    if (p < 0) return INTID_SPURIOUS;
    this.stats.acks++;
    if (p >= 1_000_000) {
      const vintid = p - 1_000_000;
      const vpe = this.vpe!;
      this.ap1r.activate(this.ap1r.groupPriority(vpe.priorityOf(vintid), this.vbpr1));
      vpe.clearPending(vintid);
      this.stats.directVlpiAcks++;
      return vintid;
    }
    const lr = this.lrs[p];
    this.ap1r.activate(this.ap1r.groupPriority(lr.priority, this.vbpr1));
    lr.state = LR_ACTIVE;
    return lr.vintid;
  }

  /** ICV_EOIR1_EL1: priority drop; with VEOIM = 0 also deactivation. */
  eoir1(intid: number): void {
    intid &= 0xffffff;
    if (intid >= 1020 && intid < 1024) return;
    this.stats.eois++;
    this.ap1r.drop();
    if (!this.veoim) this.deactivate(intid);
  }

  /** ICV_DIR_EL1. */
  dir(intid: number): void {
    this.deactivate(intid & 0xffffff);
  }

  private deactivate(intid: number): void {
    for (let n = 0; n < this.nrLr; n++) {
      const lr = this.lrs[n];
      if (lr.vintid !== intid || (lr.state & LR_ACTIVE) === 0) continue;
      lr.state &= ~LR_ACTIVE;
      if (lr.hw) {
        this.stats.physicalDeactivations++;
        this.onPhysicalDeactivate?.(lr.pintid);
      }
      return;
    }
    // Not in any LR: EOIcount++ (but never for an LPI, which has no active state to lose).
    if (intid < LPI_BASE_INTID) this.eoiCount++;
  }

  /** ICH_EISR_EL2: LRs that are invalid, HW = 0 and EOI = 1 (EOI maintenance due). */
  get eisr(): number {
    let v = 0;
    for (let n = 0; n < this.nrLr; n++) {
      const lr = this.lrs[n];
      if (lr.state === LR_INVALID && !lr.hw && lr.eoi) v |= 1 << n;
    }
    return v;
  }

  /** ICH_ELRSR_EL2: LRs that are empty (invalid and no EOI maintenance due). */
  get elrsr(): number {
    let v = 0;
    for (let n = 0; n < this.nrLr; n++) {
      const lr = this.lrs[n];
      if (lr.state === LR_INVALID && (lr.hw || !lr.eoi)) v |= 1 << n;
    }
    return v;
  }

  /** ICH_MISR_EL2. */
  get misr(): number {
    let v = 0;
    if (this.eisr !== 0) v |= ICH_MISR_EOI;
    let valid = 0;
    let pending = 0;
    for (const lr of this.lrs) {
      if (lr.state !== LR_INVALID) valid++;
      if (lr.state === LR_PENDING) pending++;
    }
    if ((this.hcr & ICH_HCR_UIE) !== 0 && valid <= 1) v |= ICH_MISR_U;
    if ((this.hcr & ICH_HCR_LRENPIE) !== 0 && this.eoiCount !== 0) v |= ICH_MISR_LRENP;
    if ((this.hcr & ICH_HCR_NPIE) !== 0 && pending === 0) v |= ICH_MISR_NP;
    return v;
  }

  /** The maintenance interrupt (PPI 25) is asserted. */
  get maintenance(): boolean {
    return (this.hcr & ICH_HCR_EN) !== 0 && this.misr !== 0;
  }
}
