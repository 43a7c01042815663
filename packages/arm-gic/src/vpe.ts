import type { Gicv3 } from './gic.js';
import { INTID_SPURIOUS, LPI_BASE_INTID, LPI_PROP_ENABLED, LPI_PROP_PRIORITY_MASK } from './registers.js';

/** Told when a resident vPE gets a deliverable vLPI (the virtual CPU interface behind it). */
export interface VpeListener {
  vlpiPending(vpe: Vpe, vintid: number): void;
}

/** What happened to a vLPI that the ITS made pending (FACTS §13.3 step 5, §14.4). */
export type VlpiOutcome = 'direct' | 'doorbell' | 'latched';

/**
 * A GICv4 virtual PE (`struct its_vpe`): the vPE the host ITS maps with VMAPP, its virtual
 * pending table (VPT, 1 bit per vINTID in memory), the cached vLPI configuration (priority,
 * enable) from the VM's virtual property table, residency on a redistributor
 * (GICR_VPENDBASER.Valid) and the doorbell: a physical LPI raised for a non-resident vPE
 * (GICv4.0: per-vLPI doorbell INTID from VMAPTI; GICv4.1: one default doorbell, only when
 * the vPE was descheduled with VPENDBASER.DB = 1).
 */
export class Vpe {
  /** Redistributor the vPE is mapped to (VMAPP / VMOVP). */
  rd: number;
  /** Redistributor it is resident on, -1 when not resident. */
  residentRd = -1;
  /** GICv4.1 default doorbell armed (descheduled with DB = 1). */
  dbArmed = false;
  /** vINTIDs pending in the VPT. */
  readonly pending = new Set<number>();
  /** Cached configuration byte per vINTID (priority 7:2, enable 0); refreshed by INV/VINVALL. */
  readonly config = new Map<number, number>();
  listener: VpeListener | undefined;
  /** Virtual property table address (VMAPP 4.1 VCONF, or GICR_VPROPBASER on 4.0). */
  vpropAddr = 0;
  doorbellsRaised = 0;
  directDeliveries = 0;

  constructor(
    private readonly gic: Gicv3,
    readonly id: number,
    rd: number,
    public vptAddr: number,
    public vptIdBits: number,
    public defaultDoorbell: number,
  ) {
    this.rd = rd;
  }

  get resident(): boolean {
    return this.residentRd >= 0;
  }

  /** A vLPI's configuration byte (cached; read from the property table on first use). */
  configOf(vintid: number): number {
    let c = this.config.get(vintid);
    if (c === undefined) {
      c = this.readConfig(vintid);
      this.config.set(vintid, c);
    }
    return c;
  }

  /** INV / VINVALL / INVLPIR: drop cached configuration so it is re-read. */
  invalidate(vintid?: number): void {
    if (vintid === undefined) this.config.clear();
    else this.config.delete(vintid);
  }

  private readConfig(vintid: number): number {
    const mem = this.gic.memory;
    const addr = this.vpropAddr + (vintid - LPI_BASE_INTID);
    if (this.vpropAddr !== 0 && mem !== undefined && mem.isValid(addr, 1)) return mem.read8(addr);
    // No property table: KVM's its_map_vlpi passes the properties with the mapping.
    return 0xa0 | LPI_PROP_ENABLED;
  }

  priorityOf(vintid: number): number {
    return this.configOf(vintid) & LPI_PROP_PRIORITY_MASK & this.gic.priorityMask;
  }

  enabledOf(vintid: number): boolean {
    return (this.configOf(vintid) & LPI_PROP_ENABLED) !== 0;
  }

  /**
   * The ITS made `vintid` pending for this vPE. Resident: straight to the virtual CPU
   * interface. Not resident: the VPT bit is set and the doorbell raised (GICv4.0: the
   * ITE's doorbell unless 1023; GICv4.1: the default doorbell if armed, once).
   */
  setPending(vintid: number, doorbell: number): VlpiOutcome {
    this.pending.add(vintid);
    this.writeVptBit(vintid, true);
    if (this.resident) {
      this.directDeliveries++;
      this.listener?.vlpiPending(this, vintid);
      return 'direct';
    }
    let db = INTID_SPURIOUS;
    if (this.gic.version === 'v4.1') {
      if (this.dbArmed && this.enabledOf(vintid)) {
        db = this.defaultDoorbell;
        this.dbArmed = false;
      }
    } else if (this.enabledOf(vintid)) {
      db = doorbell;
    }
    if (db !== INTID_SPURIOUS && db >= LPI_BASE_INTID) {
      this.doorbellsRaised++;
      this.gic.setLpiPending(db, this.rd, 'doorbell');
      return 'doorbell';
    }
    return 'latched';
  }

  /** Clears a vLPI's pending state (acknowledge through the virtual CPU interface, ITS CLEAR). */
  clearPending(vintid: number): void {
    if (this.pending.delete(vintid)) this.writeVptBit(vintid, false);
  }

  /** GICR_VPENDBASER.Valid = 1 on redistributor `rd`. */
  makeResident(rd: number, pendingLast: boolean): void {
    this.residentRd = rd;
    this.dbArmed = false;
    if (pendingLast) this.scanVpt();
    // its_make_vpe_resident → irq_set_vcpu_affinity → its_vpe[_4_1]_set_vcpu_affinity → its_vpe[_4_1]_schedule
    if (this.gic.traceOn) {
      const v41 = this.gic.version === 'v4.1';
      this.gic.trace('vpe.resident', v41 ? 'its_vpe_4_1_schedule' : 'its_vpe_schedule', v41 ? 'its_vpe_4_1_set_vcpu_affinity' : 'its_vpe_set_vcpu_affinity', { vpe: this.id, rd, pending: this.pending.size });
    }
    if (this.pending.size > 0 && this.listener !== undefined) for (const v of this.pending) this.listener.vlpiPending(this, v);
  }

  /** GICR_VPENDBASER.Valid = 0; returns PendingLast. */
  makeNonResident(wantDoorbell: boolean): boolean {
    const rd = this.residentRd;
    this.residentRd = -1;
    this.dbArmed = wantDoorbell;
    if (this.gic.traceOn) {
      const v41 = this.gic.version === 'v4.1';
      this.gic.trace('vpe.non-resident', v41 ? 'its_vpe_4_1_deschedule' : 'its_vpe_deschedule', v41 ? 'its_vpe_4_1_set_vcpu_affinity' : 'its_vpe_set_vcpu_affinity', { vpe: this.id, rd, db: wantDoorbell });
    }
    for (const v of this.pending) if (this.enabledOf(v)) return true;
    return false;
  }

  /** Highest-priority enabled pending vLPI (lowest priority value, then lowest INTID). */
  highestPending(): number {
    let best = INTID_SPURIOUS;
    let bestPri = 0x100;
    for (const v of this.pending) {
      if (!this.enabledOf(v)) continue;
      const p = this.priorityOf(v);
      if (p < bestPri || (p === bestPri && v < best)) {
        best = v;
        bestPri = p;
      }
    }
    return best;
  }

  private vptView: Uint8Array | undefined;
  private vptViewAddr = -1;

  private writeVptBit(vintid: number, pending: boolean): void {
    if (this.vptViewAddr !== this.vptAddr) {
      const mem = this.gic.memory;
      const bytes = (2 ** this.vptIdBits) / 8;
      this.vptViewAddr = this.vptAddr;
      this.vptView = mem !== undefined && this.vptAddr !== 0 && mem.find(this.vptAddr, bytes) !== undefined ? mem.view(this.vptAddr, bytes) : undefined;
    }
    const v = this.vptView;
    if (v === undefined) return;
    const i = vintid >>> 3;
    if (i < v.length) v[i] = pending ? v[i] | (1 << (vintid & 7)) : v[i] & ~(1 << (vintid & 7));
  }

  private scanVpt(): void {
    const mem = this.gic.memory;
    if (mem === undefined || this.vptAddr === 0) return;
    const bytes = (1 << this.vptIdBits) >>> 3;
    if (!mem.isValid(this.vptAddr, bytes)) return;
    const view = mem.view(this.vptAddr, bytes);
    for (let i = LPI_BASE_INTID >>> 3; i < bytes; i++) {
      const b = view[i];
      if (b !== 0) for (let k = 0; k < 8; k++) if ((b & (1 << k)) !== 0) this.pending.add(i * 8 + k);
    }
  }
}
