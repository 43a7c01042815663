import { ActivePriorities } from './active-priorities.js';
import type { Gicv3 } from './gic.js';
import type { GicIrq } from './gic-irq.js';
import { ICC_CTLR_EOIMODE, ICC_SGI1R_IRM, INTID_SPURIOUS, IccSysreg, type IccSysregName, LPI_BASE_INTID } from './registers.js';

/**
 * A PE's GICv3 CPU interface in system-register mode (ICC_*_EL1, FACTS §12.2/§12.5):
 * acknowledge (IAR1: the highest-priority pending Group-1 interrupt whose priority is below
 * PMR and whose group priority beats the running priority), priority drop (EOIR1) and
 * deactivation (DIR, or EOIR1 with EOImode = 0), PMR, BPR1, RPR, the AP1R bitmap, group
 * enable and SGI generation (SGI1R). This is the hardware behaviour (QEMU's TCG model plays
 * the same role); KVM's guests see the *virtual* CPU interface instead.
 */
export class GicCpuInterface {
  pmr = 0;
  bpr1: number;
  ctlr = 0;
  igrpen1 = 0;
  readonly ap1r: ActivePriorities;
  /** Interrupts pending at this PE (maintained by the GIC). */
  readonly pendingSet = new Set<GicIrq>();
  /** Whether the IRQ signal to the PE is asserted. */
  irqAsserted = false;
  /** Called when the IRQ signal changes (a host CPU taking the interrupt). */
  onIrqSignal: ((asserted: boolean) => void) | undefined;

  constructor(
    private readonly gic: Gicv3,
    readonly index: number,
  ) {
    this.ap1r = new ActivePriorities(gic.priorityBits);
    this.bpr1 = this.ap1r.minBpr1;
  }

  get eoiMode(): boolean {
    return (this.ctlr & ICC_CTLR_EOIMODE) !== 0;
  }

  get runningPriority(): number {
    return this.ap1r.runningPriority;
  }

  /** Whether `irq` could be acknowledged now, ignoring the others. */
  private eligible(irq: GicIrq): boolean {
    if (!irq.pending || !irq.enabled || irq.group !== 1 || (this.igrpen1 & 1) === 0) return false;
    if (irq.active && !irq.isLpi) return false; // active+pending: wait for deactivation
    if (irq.isLpi) {
      if (!this.gic.redistributors[this.index].lpisEnabled) return false;
    } else if (!this.gic.distributor.group1Enabled) return false;
    return irq.priority < this.pmr;
  }

  /** The interrupt IAR1 would return (no side effects), or undefined. */
  highestPending(): GicIrq | undefined {
    let best: GicIrq | undefined;
    for (const irq of this.pendingSet) {
      if (!this.eligible(irq)) continue;
      if (best === undefined || irq.priority < best.priority || (irq.priority === best.priority && irq.intid < best.intid)) best = irq;
    }
    if (best === undefined || !this.ap1r.canPreempt(best.priority, this.bpr1)) return undefined;
    return best;
  }

  /** ICC_HPPIR1_EL1. */
  hppir1(): number {
    return this.highestPending()?.intid ?? INTID_SPURIOUS;
  }

  /** ICC_IAR1_EL1: acknowledge. */
  iar1(): number {
    const irq = this.highestPending();
    if (irq === undefined) return INTID_SPURIOUS;
    this.ap1r.activate(this.ap1r.groupPriority(irq.priority, this.bpr1));
    if (irq.isLpi) {
      irq.pendingLatch = false; // LPIs have no active state
      this.gic.lpiAcknowledged(irq);
    } else {
      irq.pendingLatch = false; // an edge is consumed; a level line keeps the interrupt pending
      irq.active = true;
    }
    this.gic.irqChanged(irq);
    if (this.gic.traceOn) this.gic.channel.emit('gic.ack', 'gic_read_iar', 'gic_handle_irq', { cpu: this.index, intid: irq.intid }, undefined, this.gic.ctx.scheduler.current);
    return irq.intid;
  }

  /** ICC_EOIR1_EL1: priority drop, and deactivation when EOImode = 0. */
  eoir1(intid: number): void {
    intid &= 0xffffff;
    if (intid >= 1020 && intid < 1024) return;
    this.ap1r.drop();
    if (!this.eoiMode) this.deactivate(intid);
    this.updateSignal();
  }

  /** ICC_DIR_EL1: deactivation (meaningful with EOImode = 1). */
  dir(intid: number): void {
    this.deactivate(intid & 0xffffff);
  }

  private deactivate(intid: number): void {
    if (intid >= LPI_BASE_INTID) return;
    const irq = this.gic.irqFor(intid, this.index);
    if (irq === undefined || !irq.active) return;
    irq.active = false;
    this.gic.irqChanged(irq);
    this.gic.deactivated(irq, this.index);
  }

  /**
   * ICC_SGI1R_EL1: TargetList 15:0, Aff1 23:16, INTID 27:24, Aff2 39:32, IRM 40
   * (all PEs but self), RS 47:44, Aff3 55:48.
   */
  sgi1r(value: bigint): void {
    const intid = Number((value >> 24n) & 0xfn);
    const g = this.gic;
    if ((value & ICC_SGI1R_IRM) !== 0n) {
      for (let pe = 0; pe < g.numCpus; pe++) if (pe !== this.index) g.raiseSgi(pe, intid, this.index);
      return;
    }
    const targets = Number(value & 0xffffn);
    const aff1 = Number((value >> 16n) & 0xffn);
    const aff2 = Number((value >> 32n) & 0xffn);
    const aff3 = Number((value >> 48n) & 0xffn);
    const rs = Number((value >> 44n) & 0xfn);
    for (let bit = 0; bit < 16; bit++) {
      if ((targets & (1 << bit)) === 0) continue;
      const aff0 = rs * 16 + bit;
      if (aff0 > 0xff) continue;
      const pe = g.peByAffinity(((aff3 << 24) | (aff2 << 16) | (aff1 << 8) | aff0) >>> 0);
      if (pe >= 0) g.raiseSgi(pe, intid, this.index);
    }
  }

  /** Re-evaluates the IRQ signal to the PE. */
  updateSignal(): void {
    const asserted = this.highestPending() !== undefined;
    if (asserted !== this.irqAsserted) {
      this.irqAsserted = asserted;
      this.onIrqSignal?.(asserted);
    }
  }

  /** System-register read by name or by op0_op1_CRn_CRm_op2 encoding. */
  readSysreg(reg: IccSysregName | string): bigint {
    switch (sysregName(reg)) {
      case 'ICC_IAR1_EL1': return BigInt(this.iar1());
      case 'ICC_HPPIR1_EL1': return BigInt(this.hppir1());
      case 'ICC_BPR1_EL1': return BigInt(this.bpr1);
      case 'ICC_CTLR_EL1':
        // PRIbits 10:8 = bits-1, IDbits 13:11 = 0 (16 bits) or 1 (24 bits), A3V 15 = 0.
        return BigInt((this.ctlr & ICC_CTLR_EOIMODE) | ((this.gic.priorityBits - 1) << 8) | (1 << 11));
      case 'ICC_SRE_EL1': return 0x7n;
      case 'ICC_IGRPEN1_EL1': return BigInt(this.igrpen1);
      case 'ICC_PMR_EL1': return BigInt(this.pmr);
      case 'ICC_RPR_EL1': return BigInt(this.runningPriority);
      case 'ICC_AP1R0_EL1': return BigInt(this.ap1r.bits >>> 0);
      default: return 0n;
    }
  }

  writeSysreg(reg: IccSysregName | string, value: bigint | number): void {
    const v = BigInt(value);
    const n = Number(v & 0xffffffffn);
    switch (sysregName(reg)) {
      case 'ICC_EOIR1_EL1': this.eoir1(n); return;
      case 'ICC_DIR_EL1': this.dir(n); return;
      case 'ICC_BPR1_EL1': this.bpr1 = Math.max(n & 7, this.ap1r.minBpr1); break;
      case 'ICC_CTLR_EL1': this.ctlr = n & ICC_CTLR_EOIMODE; return;
      case 'ICC_IGRPEN1_EL1': this.igrpen1 = n & 1; break;
      case 'ICC_PMR_EL1': this.pmr = n & this.gic.priorityMask; break;
      case 'ICC_SGI1R_EL1': this.sgi1r(v); return;
      case 'ICC_AP1R0_EL1': this.ap1r.bits = n | 0; break;
      default: return;
    }
    this.updateSignal();
  }
}

function sysregName(reg: string): IccSysregName | undefined {
  if (reg in IccSysreg) return reg as IccSysregName;
  for (const [k, enc] of Object.entries(IccSysreg)) if (enc === reg) return k as IccSysregName;
  return undefined;
}
