/**
 * The active-priority registers (ICC_AP1R<n>_EL1 / ICH_AP1R<n>_EL2) and the group-priority
 * arithmetic of the CPU interface (FACTS §12.2, §12.5): acknowledging an interrupt sets the
 * bit of its group priority, a priority drop (EOIR) clears the highest-priority set bit,
 * and the running priority is the priority of the lowest set bit (0xFF when none).
 *
 * With `preemptionBits` = 5 (KVM's VGIC_PRI_BITS, ICH_VTR.PREbits + 1) there are 32
 * preemption levels and one 32-bit AP1R0 register; bit n stands for group priority n << 3.
 */
export class ActivePriorities {
  /** AP1R0 (32 preemption levels at most: 5 preemption bits). */
  bits = 0;
  private readonly shift: number;

  constructor(readonly preemptionBits = 5) {
    if (preemptionBits < 4 || preemptionBits > 5) throw new RangeError('preemption bits must be 4 or 5');
    this.shift = 8 - preemptionBits;
  }

  /** Lowest binary point for Group 1 (ICC_BPR1 minimum): all implemented bits are group priority. */
  get minBpr1(): number {
    return this.shift;
  }

  /**
   * The group-priority part of `priority` under ICC_BPR1 = `bpr1` (GICv3 Group-1 binary
   * point: the group priority field is bits [7:bpr1]).
   */
  groupPriority(priority: number, bpr1: number): number {
    const b = Math.max(bpr1, this.shift);
    return priority & ((0xff << b) & 0xff);
  }

  /** Running priority (ICC_RPR): 0xFF when nothing is active. */
  get runningPriority(): number {
    if (this.bits === 0) return 0xff;
    const lowest = 31 - Math.clz32(this.bits & -this.bits);
    return lowest << this.shift;
  }

  /** Records an acknowledged interrupt of group priority `gprio`. */
  activate(gprio: number): void {
    this.bits |= 1 << (gprio >>> this.shift);
  }

  /** Priority drop: clears the highest-priority (lowest-numbered) set bit. Returns false when none. */
  drop(): boolean {
    if (this.bits === 0) return false;
    this.bits &= this.bits - 1;
    return true;
  }

  /** Whether an interrupt of priority `priority` may preempt (group priority beats RPR). */
  canPreempt(priority: number, bpr1: number): boolean {
    return this.groupPriority(priority, bpr1) < this.runningPriority;
  }
}
