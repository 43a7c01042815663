import { LPI_BASE_INTID, PPI_BASE_INTID, SPI_BASE_INTID } from './registers.js';

export type IrqTrigger = 'edge' | 'level';

/**
 * One interrupt's state, shaped like KVM's `struct vgic_irq` (FACTS §14.2) so the same
 * record serves the architectural model (distributor/redistributor registers, the physical
 * CPU interface) and KVM's software vGIC (ap_list, list registers).
 *
 * `pending` is derived: the software latch (edges, ISPENDR, ITS INT) or, for a
 * level-sensitive interrupt, the input line.
 */
export class GicIrq {
  trigger: IrqTrigger;
  enabled = false;
  /** Software pending state: an edge seen, an ISPENDR write, an ITS INT. */
  pendingLatch = false;
  /** Input level of a level-sensitive line. */
  lineLevel = false;
  active = false;
  /** 8-bit priority, unimplemented low bits already cleared. */
  priority = 0;
  /** 0 = Group 0, 1 = Group 1. */
  group: 0 | 1;
  /** PE (CPU interface / vCPU) index the interrupt is routed to; -1 when none. */
  targetPe: number;
  /** SPIs: the raw GICD_IROUTER value. */
  router = 0n;
  /** KVM: index of the vCPU whose ap_list holds it (irq->vcpu), -1 when on no list. */
  vcpu = -1;
  /** Mapped to a physical interrupt (HW bit in the LR) or forwarded as a vLPI (GICv4). */
  hw = false;
  /** Physical INTID behind a mapped interrupt (LR pINTID). */
  hwintid = 0;
  /** Host interrupt number behind a forwarded interrupt (-1 none). */
  hostIrq = -1;
  /** Level interrupt whose acknowledgement someone waits for (irqfd resampler). */
  resample = false;

  constructor(
    readonly intid: number,
    trigger: IrqTrigger,
    group: 0 | 1,
    targetPe: number,
  ) {
    this.trigger = trigger;
    this.group = group;
    this.targetPe = targetPe;
  }

  get pending(): boolean {
    return this.pendingLatch || (this.trigger === 'level' && this.lineLevel);
  }

  get isLpi(): boolean {
    return this.intid >= LPI_BASE_INTID;
  }

  get isPrivate(): boolean {
    return this.intid < SPI_BASE_INTID;
  }

  get isSpi(): boolean {
    return this.intid >= SPI_BASE_INTID && this.intid < 1020;
  }

  get isSgi(): boolean {
    return this.intid < PPI_BASE_INTID;
  }

  /** The architectural state name of §12.2. */
  get state(): 'inactive' | 'pending' | 'active' | 'active+pending' {
    const p = this.pending;
    if (this.active) return p ? 'active+pending' : 'active';
    return p ? 'pending' : 'inactive';
  }
}
