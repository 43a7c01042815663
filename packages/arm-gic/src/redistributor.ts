import type { Gicv3 } from './gic.js';
import type { GicIrq } from './gic-irq.js';
import { VGIC_MMIO_WRITE_HANDLER, decodeIrqBank, readIrqBank, writeIrqBank } from './irq-bank-registers.js';
import {
  GICR_CLRLPIR, GICR_CTLR, GICR_CTLR_ENABLE_LPIS, GICR_IIDR, GICR_INVALLR, GICR_INVLPIR, GICR_PENDBASER, GICR_PENDBASER_PA_MASK,
  GICR_PENDBASER_PTZ, GICR_PIDR2, GICR_PROPBASER, GICR_PROPBASER_PA_MASK, GICR_SETLPIR, GICR_SGI_FRAME, GICR_SYNCR, GICR_TYPER,
  GICR_TYPER_LAST, GICR_TYPER_PLPIS, GICR_TYPER_VLPIS, GICR_VLPI_FRAME, GICR_VPENDBASER, GICR_VPENDBASER_4_1_VPEID_MASK,
  GICR_VPENDBASER_DIRTY, GICR_VPENDBASER_IDAI_DB, GICR_VPENDBASER_PA_MASK, GICR_VPENDBASER_PENDING_LAST, GICR_VPENDBASER_VALID,
  GICR_VPROPBASER, GICR_WAKER, GICR_WAKER_CHILDREN_ASLEEP, GICR_WAKER_PROCESSOR_SLEEP, LPI_BASE_INTID, SGI_BASE_INTID, peAffinityValue,
} from './registers.js';
import type { Vpe } from './vpe.js';

/**
 * One redistributor (GICR_*), per PE: the SGI/PPI bank (SGI_base frame), GICR_WAKER, LPI
 * enable with the LPI configuration (PROPBASER) and pending (PENDBASER) tables in memory,
 * direct LPI set/clear/invalidate, and on GICv4 the VLPI frame whose GICR_VPENDBASER makes a
 * vPE resident (Valid) or not (FACTS §12.4, §14.4).
 */
export class GicRedistributor {
  ctlr = 0;
  waker = GICR_WAKER_PROCESSOR_SLEEP | GICR_WAKER_CHILDREN_ASLEEP;
  propbaser = 0n;
  pendbaser = 0n;
  vpropbaser = 0n;
  private vpendbaser = 0n;
  /** The vPE resident here (VPENDBASER.Valid = 1), GICv4. */
  residentVpe: Vpe | undefined;
  /** Private interrupts: SGIs 0–15, PPIs 16–31. */
  readonly privateIrqs: GicIrq[];

  constructor(
    private readonly gic: Gicv3,
    readonly index: number,
    privateIrqs: GicIrq[],
  ) {
    this.privateIrqs = privateIrqs;
  }

  get lpisEnabled(): boolean {
    return (this.ctlr & GICR_CTLR_ENABLE_LPIS) !== 0;
  }

  get awake(): boolean {
    return (this.waker & GICR_WAKER_PROCESSOR_SLEEP) === 0;
  }

  /** Physical address of the LPI configuration table (cached from PROPBASER). */
  propTable = 0;
  /** Number of INTID bits the configuration table covers (PROPBASER.IDbits + 1, capped by the GIC). */
  idBits = 0;
  /** 2^idBits: first INTID beyond the configuration table. */
  lpiLimit = 0;
  /** Physical address of the pending table (cached from PENDBASER). */
  pendTable = 0;

  /** The pending table as bytes (resolved once, as hardware caches its PA), when in memory. */
  private pendView: Uint8Array | undefined;

  private decodeBases(): void {
    this.propTable = Number(this.propbaser & GICR_PROPBASER_PA_MASK);
    this.idBits = this.propbaser === 0n ? 0 : Math.min(Number(this.propbaser & 0x1fn) + 1, this.gic.lpiIdBits);
    this.lpiLimit = 2 ** this.idBits;
    this.pendTable = Number(this.pendbaser & GICR_PENDBASER_PA_MASK);
    const mem = this.gic.memory;
    const bytes = this.idBits > 0 ? (2 ** this.idBits) / 8 : 0;
    this.pendView = mem !== undefined && this.pendTable !== 0 && bytes > 0 && mem.find(this.pendTable, bytes) !== undefined ? mem.view(this.pendTable, bytes) : undefined;
  }

  /** 32-bit access at `offset` inside this redistributor's frames. */
  read32(offset: number): number {
    if (offset === GICR_TYPER || offset === GICR_TYPER + 4 || offset === GICR_PROPBASER || offset === GICR_PROPBASER + 4 ||
      offset === GICR_PENDBASER || offset === GICR_PENDBASER + 4 || offset === GICR_VLPI_FRAME + GICR_VPENDBASER ||
      offset === GICR_VLPI_FRAME + GICR_VPENDBASER + 4 || offset === GICR_VLPI_FRAME + GICR_VPROPBASER || offset === GICR_VLPI_FRAME + GICR_VPROPBASER + 4) {
      const v = this.read64(offset & ~7);
      return (offset & 4) === 0 ? Number(v & 0xffffffffn) : Number(v >> 32n);
    }
    switch (offset) {
      case GICR_CTLR: return this.ctlr;
      case GICR_IIDR: return 0x4b00343b;
      case GICR_WAKER: return this.waker;
      case GICR_SYNCR: return 0; // never busy: every operation completes synchronously
      case GICR_PIDR2: return this.gic.version === 'v3' ? 0x3b : 0x4b;
    }
    if (offset >= GICR_SGI_FRAME && offset < GICR_SGI_FRAME + 0x10000) {
      const bank = decodeIrqBank(offset - GICR_SGI_FRAME);
      if (bank !== undefined) return readIrqBank(bank, (i) => (i < 32 ? this.privateIrqs[i] : undefined));
    }
    return 0;
  }

  write32(offset: number, value: number): void {
    value >>>= 0;
    switch (offset) {
      case GICR_CTLR: {
        const was = this.lpisEnabled;
        this.ctlr = value & GICR_CTLR_ENABLE_LPIS;
        if (!was && this.lpisEnabled) this.gic.lpisEnabled(this);
        return;
      }
      case GICR_WAKER: {
        // ProcessorSleep 1; ChildrenAsleep follows it at once (nothing to quiesce in a model).
        const sleep = (value & GICR_WAKER_PROCESSOR_SLEEP) !== 0;
        this.waker = sleep ? GICR_WAKER_PROCESSOR_SLEEP | GICR_WAKER_CHILDREN_ASLEEP : 0;
        return;
      }
    }
    if (offset >= GICR_SGI_FRAME && offset < GICR_SGI_FRAME + 0x10000) {
      const bank = decodeIrqBank(offset - GICR_SGI_FRAME);
      if (bank !== undefined) {
        writeIrqBank(bank, value, (i) => (i < 32 ? this.privateIrqs[i] : undefined), (irq) => this.gic.irqChanged(irq, VGIC_MMIO_WRITE_HANDLER[bank.kind]), this.gic.priorityMask, (intid) => intid >= 16);
      }
      return;
    }
    // 32-bit halves of the 64-bit registers
    if ((offset & ~7) === GICR_PROPBASER || (offset & ~7) === GICR_PENDBASER || (offset & ~7) === GICR_SETLPIR ||
      (offset & ~7) === GICR_CLRLPIR || (offset & ~7) === GICR_INVLPIR || (offset & ~7) === GICR_INVALLR ||
      (offset & ~7) === GICR_VLPI_FRAME + GICR_VPENDBASER || (offset & ~7) === GICR_VLPI_FRAME + GICR_VPROPBASER) {
      const cur = this.read64(offset & ~7);
      const v = (offset & 4) === 0 ? (cur & 0xffff_ffff_0000_0000n) | BigInt(value) : (cur & 0xffff_ffffn) | (BigInt(value) << 32n);
      this.write64(offset & ~7, v);
    }
  }

  read64(offset: number): bigint {
    switch (offset) {
      case GICR_TYPER: {
        const g = this.gic;
        let v = GICR_TYPER_PLPIS | (BigInt(this.index & 0xffff) << 8n) | (BigInt(peAffinityValue(this.index)) << 32n);
        if (g.version !== 'v3') v |= GICR_TYPER_VLPIS;
        if (this.index === g.numCpus - 1) v |= GICR_TYPER_LAST;
        return v;
      }
      case GICR_PROPBASER: return this.propbaser;
      case GICR_PENDBASER: return this.pendbaser & ~GICR_PENDBASER_PTZ; // PTZ is write-only (reads 0)
      case GICR_VLPI_FRAME + GICR_VPROPBASER: return this.vpropbaser;
      case GICR_VLPI_FRAME + GICR_VPENDBASER: return this.vpendbaser & ~GICR_VPENDBASER_DIRTY; // parsing is instantaneous
    }
    return BigInt(this.read32(offset)) | (BigInt(this.read32(offset + 4)) << 32n);
  }

  write64(offset: number, value: bigint): void {
    const g = this.gic;
    switch (offset) {
      case GICR_PROPBASER:
        if (!this.lpisEnabled) this.propbaser = value & (GICR_PROPBASER_PA_MASK | 0x1fn | (0x7n << 7n) | (0x3n << 10n) | (0x7n << 56n));
        this.decodeBases();
        return;
      case GICR_PENDBASER:
        if (!this.lpisEnabled) this.pendbaser = value & (GICR_PENDBASER_PA_MASK | GICR_PENDBASER_PTZ | (0x7n << 7n) | (0x3n << 10n) | (0x7n << 56n));
        this.decodeBases();
        return;
      case GICR_SETLPIR:
        if (this.lpisEnabled) g.setLpiPending(Number(value & 0xffffffffn), this.index, 'GICR_SETLPIR');
        return;
      case GICR_CLRLPIR:
        if (this.lpisEnabled) g.clearLpiPending(Number(value & 0xffffffffn));
        return;
      case GICR_INVLPIR:
        g.invalidateLpi(Number(value & 0xffffffffn));
        return;
      case GICR_INVALLR:
        g.invalidateAllLpis(this.index);
        return;
      case GICR_VLPI_FRAME + GICR_VPROPBASER:
        this.vpropbaser = value;
        return;
      case GICR_VLPI_FRAME + GICR_VPENDBASER:
        this.writeVpendbaser(value);
        return;
    }
    this.write32(offset, Number(value & 0xffffffffn));
    this.write32(offset + 4, Number(value >> 32n));
  }

  /**
   * GICR_VPENDBASER: Valid 0→1 makes a vPE resident here (GICv4.0 finds it by its VPT
   * address, GICv4.1 by VPEID 15:0); PendingLast = 1 asks for a scan of its VPT. Valid 1→0
   * makes it non-resident; PendingLast then reads back whether vLPIs are pending and, on
   * GICv4.1, DB = 1 arms the default doorbell.
   */
  private writeVpendbaser(value: bigint): void {
    const g = this.gic;
    if (g.version === 'v3') return;
    const valid = (value & GICR_VPENDBASER_VALID) !== 0n;
    if (valid) {
      const vpe = g.version === 'v4.1' ? g.vpes.get(Number(value & GICR_VPENDBASER_4_1_VPEID_MASK)) : g.vpeByVpt(Number(value & GICR_VPENDBASER_PA_MASK));
      if (vpe === undefined) {
        g.fault('gic.vpe-unknown', `VPENDBASER names no mapped vPE`, { redistributor: this.index });
        return;
      }
      if (this.residentVpe !== undefined && this.residentVpe !== vpe) this.residentVpe.makeNonResident(false);
      this.vpendbaser = value & ~GICR_VPENDBASER_DIRTY;
      this.residentVpe = vpe;
      vpe.makeResident(this.index, (value & GICR_VPENDBASER_PENDING_LAST) !== 0n);
      return;
    }
    const vpe = this.residentVpe;
    this.residentVpe = undefined;
    if (vpe === undefined) {
      this.vpendbaser = value & ~GICR_VPENDBASER_VALID;
      return;
    }
    const wantDb = g.version === 'v4.1' && (value & GICR_VPENDBASER_IDAI_DB) !== 0n;
    const pendingLast = vpe.makeNonResident(wantDb);
    this.vpendbaser = (value & ~(GICR_VPENDBASER_VALID | GICR_VPENDBASER_PENDING_LAST)) | (pendingLast ? GICR_VPENDBASER_PENDING_LAST : 0n);
  }

  /** Writes an LPI's bit of this redistributor's pending table (write-through; no-op without a table). */
  writePendingBit(intid: number, pending: boolean): void {
    const v = this.pendView;
    if (v !== undefined) {
      const i = intid >>> 3;
      if (i < v.length) v[i] = pending ? v[i] | (1 << (intid & 7)) : v[i] & ~(1 << (intid & 7));
      return;
    }
    const mem = this.gic.memory;
    if (mem === undefined || this.pendTable === 0) return;
    const addr = this.pendTable + (intid >>> 3);
    if (!mem.isValid(addr, 1)) return;
    const b = mem.read8(addr);
    const bit = 1 << (intid & 7);
    mem.write8(addr, pending ? b | bit : b & ~bit);
  }

  /** INTIDs found pending in the pending table (scanned when LPIs are enabled, unless PTZ). */
  scanPendingTable(): number[] {
    const mem = this.gic.memory;
    const out: number[] = [];
    if (mem === undefined || (this.pendbaser & GICR_PENDBASER_PTZ) !== 0n) return out;
    const bytes = (1 << this.idBits) >>> 3;
    const start = LPI_BASE_INTID >>> 3;
    if (!mem.isValid(this.pendTable, bytes)) {
      this.gic.fault('gic.lpi-table-fault', 'pending table outside memory', { redistributor: this.index, pendTable: this.pendTable });
      return out;
    }
    const view = mem.view(this.pendTable, bytes);
    for (let i = start; i < bytes; i++) {
      const b = view[i];
      if (b === 0) continue;
      for (let k = 0; k < 8; k++) if ((b & (1 << k)) !== 0) out.push(i * 8 + k);
    }
    return out;
  }

  /** The SGI/PPI record `intid` (0–31). */
  private32(intid: number): GicIrq {
    return this.privateIrqs[intid - SGI_BASE_INTID];
  }
}
