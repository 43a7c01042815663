import type { Gicv3 } from './gic.js';
import type { GicIrq } from './gic-irq.js';
import { VGIC_MMIO_WRITE_HANDLER, decodeIrqBank, readIrqBank, writeIrqBank } from './irq-bank-registers.js';
import {
  GICD_CLRSPI_NSR, GICD_CTLR, GICD_CTLR_ARE, GICD_CTLR_DS, GICD_CTLR_ENABLE_G0, GICD_CTLR_ENABLE_G1, GICD_CTLR_NASSGIREQ,
  GICD_IIDR, GICD_IROUTER, GICD_IROUTER_IRM, GICD_PIDR2, GICD_SETSPI_NSR, GICD_TYPER, GICD_TYPER2, GICD_TYPER2_NASSGICAP,
  GICD_TYPER_LPIS, SPI_BASE_INTID,
} from './registers.js';

/**
 * The distributor (GICD_*): SPIs' enable/pending/active/priority/config/group state,
 * GICD_CTLR's group enables and affinity routing through GICD_IROUTER (including the
 * 1-of-N mode, IRM = 1). Single security state (DS = 1), as KVM's emulated GICv3 presents
 * it; ARE is always 1. INTIDs < 32 are RES0 here (the redistributors own them).
 */
export class GicDistributor {
  /** GICD_CTLR group enables (bits 0–1) and nASSGIreq (bit 8, GICv4.1). */
  ctlr = 0;
  private rr = 0;

  constructor(private readonly gic: Gicv3) {}

  get group0Enabled(): boolean {
    return (this.ctlr & GICD_CTLR_ENABLE_G0) !== 0;
  }

  get group1Enabled(): boolean {
    return (this.ctlr & GICD_CTLR_ENABLE_G1) !== 0;
  }

  groupEnabled(group: 0 | 1): boolean {
    return group === 1 ? this.group1Enabled : this.group0Enabled;
  }

  read32(offset: number): number {
    const g = this.gic;
    switch (offset) {
      case GICD_CTLR:
        return (this.ctlr | GICD_CTLR_ARE | GICD_CTLR_DS) >>> 0;
      case GICD_TYPER: {
        const itLines = g.numSpis / 32; // SPIs = 32·(N+1) INTIDs in all, the first 32 private
        return (itLines | (g.lpiIdBits > 0 ? GICD_TYPER_LPIS : 0) | ((g.lpiIdBits - 1) << 19)) >>> 0;
      }
      case GICD_TYPER2:
        return g.version === 'v4.1' ? GICD_TYPER2_NASSGICAP : 0;
      case GICD_IIDR:
        return 0x4b00343b; // KVM: ProductID 0x4b, revision 3, implementer ARM (0x43b)
      case GICD_PIDR2:
        return g.version === 'v3' ? 0x3b : 0x4b;
    }
    if (offset >= GICD_IROUTER && offset < GICD_IROUTER + 8 * 1024) {
      const n = (offset - GICD_IROUTER) >>> 3;
      const irq = this.spi(n);
      if (irq === undefined) return 0;
      return (offset & 4) === 0 ? Number(irq.router & 0xffffffffn) : Number(irq.router >> 32n);
    }
    const bank = decodeIrqBank(offset);
    if (bank !== undefined) return readIrqBank(bank, (i) => this.spi(i));
    return 0; // reserved / unimplemented: RAZ
  }

  write32(offset: number, value: number): void {
    const g = this.gic;
    value >>>= 0;
    switch (offset) {
      case GICD_CTLR: {
        let mask = GICD_CTLR_ENABLE_G0 | GICD_CTLR_ENABLE_G1;
        if (g.version === 'v4.1') mask |= GICD_CTLR_NASSGIREQ;
        const before = this.ctlr;
        this.ctlr = value & mask;
        if (before !== this.ctlr) {
          g.trace('gicd.ctlr', 'vgic_mmio_write_v3_misc', 'dispatch_mmio_write', { ctlr: this.ctlr });
          g.groupEnablesChanged();
        }
        return;
      }
      case GICD_SETSPI_NSR:
      case GICD_CLRSPI_NSR: {
        const irq = this.spi(value & 0x3ff);
        if (irq === undefined) return;
        irq.pendingLatch = offset === GICD_SETSPI_NSR;
        g.irqChanged(irq);
        return;
      }
    }
    if (offset >= GICD_IROUTER && offset < GICD_IROUTER + 8 * 1024) {
      const n = (offset - GICD_IROUTER) >>> 3;
      const irq = this.spi(n);
      if (irq === undefined) return;
      const lo = (offset & 4) === 0;
      const r = lo ? (irq.router & 0xffff_ffff_0000_0000n) | BigInt(value) : (irq.router & 0xffff_ffffn) | (BigInt(value) << 32n);
      this.writeRouter(irq, r);
      return;
    }
    const bank = decodeIrqBank(offset);
    if (bank !== undefined) {
      writeIrqBank(bank, value, (i) => this.spi(i), (irq) => g.irqChanged(irq, VGIC_MMIO_WRITE_HANDLER[bank.kind]), g.priorityMask, () => true);
    }
  }

  read64(offset: number): bigint {
    return BigInt(this.read32(offset)) | (BigInt(this.read32(offset + 4)) << 32n);
  }

  write64(offset: number, value: bigint): void {
    if (offset >= GICD_IROUTER && offset < GICD_IROUTER + 8 * 1024) {
      const irq = this.spi((offset - GICD_IROUTER) >>> 3);
      if (irq !== undefined) this.writeRouter(irq, value);
      return;
    }
    this.write32(offset, Number(value & 0xffffffffn));
    this.write32(offset + 4, Number(value >> 32n));
  }

  /** SPI record for INTID `intid`, or undefined outside the implemented SPI range. */
  spi(intid: number): GicIrq | undefined {
    return intid >= SPI_BASE_INTID ? this.gic.spis[intid - SPI_BASE_INTID] : undefined;
  }

  private writeRouter(irq: GicIrq, value: bigint): void {
    // Aff0 7:0, Aff1 15:8, Aff2 23:16, IRM 31, Aff3 39:32; everything else RES0.
    irq.router = value & 0x00ff_80ff_ffffn;
    irq.targetPe = this.route(irq);
    this.gic.irqChanged(irq);
  }

  /**
   * Resolves an IROUTER value to a PE index: the PE whose affinity matches, or with IRM = 1
   * any participating PE (awake redistributor, Group-1 enabled at its CPU interface) chosen
   * round-robin — the architecture leaves the choice to the implementation. -1 = no PE.
   */
  route(irq: GicIrq): number {
    const g = this.gic;
    if ((irq.router & GICD_IROUTER_IRM) !== 0n) {
      for (let k = 0; k < g.numCpus; k++) {
        const pe = (this.rr + k) % g.numCpus;
        if (g.peParticipates(pe)) {
          this.rr = (pe + 1) % g.numCpus;
          return pe;
        }
      }
      return -1;
    }
    const r = irq.router;
    const aff = Number((r & 0xffffffn) | ((r >> 8n) & 0xff000000n));
    return g.peByAffinity(aff);
  }
}
