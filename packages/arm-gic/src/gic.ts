import { type GuestMemory, IrqLine, type IrqPin, type IrqPinProvider, type SimContext, type TraceArgs, type TraceChannel, VirqError } from '@virq/core';
import { GicCpuInterface } from './cpu-interface.js';
import { GicDistributor } from './distributor.js';
import { GicErrorCode } from './errors.js';
import { GicIrq } from './gic-irq.js';
import { GicRedistributor } from './redistributor.js';
import { LPI_BASE_INTID, LPI_PROP_ENABLED, LPI_PROP_PRIORITY_MASK, MAINTENANCE_PPI, PPI_BASE_INTID, SPI_BASE_INTID, peAffinityValue } from './registers.js';
import { Vpe } from './vpe.js';

export type GicVersion = 'v3' | 'v4' | 'v4.1';

export interface Gicv3Options {
  /** Number of PEs (CPU interfaces, redistributors). */
  numCpus: number;
  /** Number of SPIs (a multiple of 32, at most 988). Default 64. */
  numSpis?: number;
  /** GICv3, GICv4.0 or GICv4.1 (VLPI frames, vPEs, V* ITS commands). Default 'v3'. */
  version?: GicVersion;
  /** LPI INTID bits (GICD_TYPER.IDbits + 1); 0 = no LPIs. Default 16. */
  lpiIdBits?: number;
  /** Memory holding the LPI configuration/pending tables and the VPTs. */
  memory?: GuestMemory;
  /** Implemented priority bits (KVM: 5). Default 5. */
  priorityBits?: number;
  /** Reset group of SPIs/PPIs/SGIs (hardware: 0; KVM's GICv3 guests: 1). */
  defaultGroup?: 0 | 1;
  /** Trace channel name. Default 'arm-gic'. */
  name?: string;
}

/**
 * Where pending interrupts go: the physical CPU interfaces (hardware) or KVM's software
 * vGIC (ap_lists and list registers). Called whenever an interrupt's pending, enable,
 * active, priority, group or target may have changed.
 */
export interface GicDelivery {
  /** `caller`: the real function on this path (KVM's vGIC names its vgic_queue_irq_unlock caller with it). */
  irqChanged(irq: GicIrq, caller?: string): void;
}

/**
 * A GICv3/v4 interrupt controller: distributor, one redistributor and one CPU interface per
 * PE, LPIs (configured from memory) and, on GICv4, the vPE table. Used two ways:
 * as hardware (a host's GIC, its CPU interfaces signalling IRQs to host CPUs) and as the
 * state behind KVM's emulated vGIC (`setDelivery` hands pending interrupts to the vGIC).
 */
export class Gicv3 implements IrqPinProvider {
  readonly numCpus: number;
  readonly numSpis: number;
  readonly version: GicVersion;
  readonly lpiIdBits: number;
  readonly priorityBits: number;
  readonly priorityMask: number;
  readonly memory: GuestMemory | undefined;
  readonly distributor: GicDistributor;
  readonly redistributors: GicRedistributor[] = [];
  readonly cpuInterfaces: GicCpuInterface[] = [];
  readonly spis: GicIrq[] = [];
  readonly lpis = new Map<number, GicIrq>();
  readonly vpes = new Map<number, Vpe>();
  readonly channel: TraceChannel;
  private delivery: GicDelivery;
  private readonly pins = new Map<number, IrqPin>();
  private readonly deactivateHooks: Array<(irq: GicIrq, pe: number) => void> = [];
  /** Guest/driver faults seen (also emitted as 'gic.error' events). */
  faults = 0;
  lastFault: { code: string; message: string } | undefined;

  constructor(
    readonly ctx: SimContext,
    options: Gicv3Options,
  ) {
    const numSpis = options.numSpis ?? 64;
    if (!Number.isInteger(options.numCpus) || options.numCpus < 1 || options.numCpus > 4096) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `numCpus must be an integer in [1, 4096], got ${options.numCpus}`);
    }
    if (!Number.isInteger(numSpis) || numSpis < 0 || numSpis > 960 || numSpis % 32 !== 0) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `numSpis must be a multiple of 32 in [0, 960] (SPIs end at INTID 1019), got ${numSpis}`);
    }
    const lpiIdBits = options.lpiIdBits ?? 16;
    if (lpiIdBits !== 0 && (lpiIdBits < 14 || lpiIdBits > 24)) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `lpiIdBits must be 0 (no LPIs) or in [14, 24], got ${lpiIdBits}`);
    }
    const pri = options.priorityBits ?? 5;
    if (pri < 4 || pri > 5) throw new VirqError(GicErrorCode.ConfigInvalid, `priorityBits must be 4 or 5, got ${pri}`);
    this.numCpus = options.numCpus;
    this.numSpis = numSpis;
    this.version = options.version ?? 'v3';
    this.lpiIdBits = lpiIdBits;
    this.priorityBits = pri;
    this.priorityMask = (0xff << (8 - pri)) & 0xff;
    this.memory = options.memory;
    this.channel = ctx.trace.channel(options.name ?? 'arm-gic');
    const group = options.defaultGroup ?? 0;
    this.distributor = new GicDistributor(this);
    for (let i = 0; i < numSpis; i++) this.spis.push(new GicIrq(SPI_BASE_INTID + i, 'level', group, 0));
    for (let pe = 0; pe < this.numCpus; pe++) {
      const priv: GicIrq[] = [];
      for (let i = 0; i < 32; i++) priv.push(new GicIrq(i, i < PPI_BASE_INTID ? 'edge' : 'level', group, pe));
      this.redistributors.push(new GicRedistributor(this, pe, priv));
      this.cpuInterfaces.push(new GicCpuInterface(this, pe));
    }
    this.delivery = this.hardwareDelivery;
  }

  get traceOn(): boolean {
    return this.channel.on;
  }

  trace(kind: string, fn: string, caller: string | undefined, args: TraceArgs): void {
    if (this.channel.on) this.channel.emit(kind, fn, caller, args);
  }

  /** A guest/driver fault: counted and reported as an event, never thrown. */
  fault(code: string, message: string, details: TraceArgs = {}): void {
    this.faults++;
    this.lastFault = { code, message };
    if (this.channel.on) this.channel.emit('gic.error', code, undefined, { message, ...details });
  }

  /** Hands pending interrupts to KVM's vGIC instead of the CPU interfaces. */
  setDelivery(delivery: GicDelivery): void {
    this.delivery = delivery;
  }

  /** Called when an interrupt is deactivated at a CPU interface (HW-forwarding hook). */
  onDeactivate(fn: (irq: GicIrq, pe: number) => void): void {
    this.deactivateHooks.push(fn);
  }

  /** @internal from the CPU interfaces. */
  deactivated(irq: GicIrq, pe: number): void {
    for (const h of this.deactivateHooks) h(irq, pe);
  }

  /** An interrupt's state may have changed: tell whoever delivers. */
  irqChanged(irq: GicIrq, caller?: string): void {
    this.delivery.irqChanged(irq, caller);
  }

  /** GicDelivery of the hardware: keep each CPU interface's pending set and IRQ signal. */
  readonly hardwareDelivery: GicDelivery = {
    irqChanged: (irq: GicIrq): void => {
      const want = irq.pending && irq.targetPe >= 0 ? irq.targetPe : -1;
      const old = irq.vcpu;
      if (old !== want) {
        if (old >= 0) this.cpuInterfaces[old].pendingSet.delete(irq);
        if (want >= 0) this.cpuInterfaces[want].pendingSet.add(irq);
        irq.vcpu = want;
        if (old >= 0) this.cpuInterfaces[old].updateSignal();
      }
      if (want >= 0) this.cpuInterfaces[want].updateSignal();
    },
  };

  /** Group enables changed: every pending interrupt is re-evaluated. */
  groupEnablesChanged(): void {
    const why = 'vgic_mmio_write_v3_misc';
    for (const irq of this.spis) if (irq.pending || irq.active) this.irqChanged(irq, why);
    for (const rd of this.redistributors) for (const irq of rd.privateIrqs) if (irq.pending || irq.active) this.irqChanged(irq, why);
    for (const irq of this.lpis.values()) if (irq.pending) this.irqChanged(irq, why);
    for (const c of this.cpuInterfaces) c.updateSignal();
  }

  /** PE index whose affinity (Aff3.Aff2.Aff1.Aff0) is `aff`, or -1. */
  peByAffinity(aff: number): number {
    const a0 = aff & 0xff;
    if (a0 > 0xf) return -1;
    const idx = a0 | (((aff >>> 8) & 0xff) << 4) | (((aff >>> 16) & 0xff) << 12);
    return idx < this.numCpus && peAffinityValue(idx) === aff >>> 0 ? idx : -1;
  }

  /** A PE takes part in 1-of-N distribution: redistributor awake and Group 1 enabled at its CPU interface. */
  peParticipates(pe: number): boolean {
    return this.redistributors[pe].awake && (this.cpuInterfaces[pe].igrpen1 & 1) !== 0;
  }

  /** The record of `intid` as seen from PE `pe` (private interrupts are banked). */
  irqFor(intid: number, pe: number): GicIrq | undefined {
    if (intid < SPI_BASE_INTID) return pe >= 0 && pe < this.numCpus ? this.redistributors[pe].privateIrqs[intid] : undefined;
    if (intid < 1020) return this.spis[intid - SPI_BASE_INTID];
    if (intid >= LPI_BASE_INTID) return this.lpis.get(intid);
    return undefined;
  }

  /** Drives SPI `intid`'s input (level: line level; edge: a rising edge latches pending). */
  setSpiLevel(intid: number, level: boolean): boolean {
    const irq = this.spis[intid - SPI_BASE_INTID];
    if (irq === undefined) return false;
    return this.drive(irq, level);
  }

  /** Drives PPI `intid` of PE `pe`. */
  setPpiLevel(pe: number, intid: number, level: boolean): boolean {
    const irq = this.irqFor(intid, pe);
    if (irq === undefined || intid < PPI_BASE_INTID || intid >= SPI_BASE_INTID) return false;
    return this.drive(irq, level);
  }

  /** Applies an input level; returns whether the interrupt's state changed. */
  drive(irq: GicIrq, level: boolean): boolean {
    if (irq.trigger === 'level') {
      if (irq.lineLevel === level) return false;
      irq.lineLevel = level;
    } else {
      if (!level || irq.lineLevel) {
        irq.lineLevel = level;
        return false;
      }
      irq.lineLevel = true;
      irq.pendingLatch = true;
    }
    this.irqChanged(irq);
    return true;
  }

  /**
   * Wired SPI inputs: pin n is SPI INTID 32 + n (the GSI → SPI numbering of vgic-irqfd). Each
   * pin is an `IrqLine`: its level is the OR of its sources, as KVM keeps one bit per source.
   */
  pin(n: number): IrqPin {
    let p = this.pins.get(n);
    if (p === undefined) {
      if (!Number.isInteger(n) || n < 0 || n >= this.numSpis) {
        throw new VirqError(GicErrorCode.ConfigInvalid, `SPI pin ${n} does not exist: this GIC has ${this.numSpis} SPIs (pins 0–${this.numSpis - 1})`);
      }
      const line = new IrqLine(`SPI ${SPI_BASE_INTID + n}`);
      const intid = SPI_BASE_INTID + n;
      line.onChange((change) => {
        if (change.rose || change.fell) this.setSpiLevel(intid, change.level);
      });
      p = line;
      this.pins.set(n, p);
    }
    return p;
  }

  /** Makes SGI `intid` pending at PE `pe` (from ICC_SGI1R of `source`). */
  raiseSgi(pe: number, intid: number, source: number): void {
    const irq = this.redistributors[pe].privateIrqs[intid & 0xf];
    irq.pendingLatch = true;
    // Host: gic_ipi_send_mask → gic_send_sgi writes ICC_SGI1R_EL1. KVM: the trapped write was
    // traced as vgic_v3_dispatch_sgi, which latches the SGI and queues it (vgic_v3_queue_sgi).
    if (this.traceOn && this.delivery === this.hardwareDelivery) this.trace('gic.sgi', 'gic_send_sgi', 'gic_ipi_send_mask', { from: source, to: pe, intid });
    this.irqChanged(irq, 'vgic_v3_queue_sgi');
  }

  // ---- LPIs ----

  /** Largest LPI INTID + 1 that redistributor `pe`'s configuration table covers. */
  lpiLimit(pe: number): number {
    return this.redistributors[pe >= 0 ? pe : 0].lpiLimit;
  }

  /** The LPI record (created on first use, configuration read from the property table). */
  lpi(intid: number, pe = 0): GicIrq | undefined {
    let irq = this.lpis.get(intid);
    if (irq !== undefined) return irq;
    if (intid < LPI_BASE_INTID || intid >= 2 ** this.lpiIdBits) return undefined;
    irq = new GicIrq(intid, 'edge', 1, pe);
    this.lpis.set(intid, irq);
    this.readLpiConfig(irq);
    return irq;
  }

  /** Re-reads an LPI's configuration byte (INV, INVLPIR, INVALL). */
  readLpiConfig(irq: GicIrq): void {
    const mem = this.memory;
    const rd = this.redistributors[irq.targetPe >= 0 ? irq.targetPe : 0];
    if (mem === undefined || rd.propbaser === 0n) return;
    const addr = rd.propTable + (irq.intid - LPI_BASE_INTID);
    if (irq.intid >= rd.lpiLimit || !mem.isValid(addr, 1)) {
      this.fault('gic.lpi-table-fault', `LPI ${irq.intid}: configuration byte outside the property table or memory`, { intid: irq.intid, addr });
      return;
    }
    const b = mem.read8(addr);
    irq.priority = b & LPI_PROP_PRIORITY_MASK & this.priorityMask;
    irq.enabled = (b & LPI_PROP_ENABLED) !== 0;
  }

  /** Makes LPI `intid` pending at redistributor `pe`. Returns false when it was dropped. */
  setLpiPending(intid: number, pe: number, why: string): boolean {
    const rd = this.redistributors[pe];
    if (rd === undefined || !rd.lpisEnabled) {
      this.fault('gic.lpi-dropped', `LPI ${intid} for PE ${pe} dropped: LPIs not enabled (GICR_CTLR.EnableLPIs = 0)`, { intid, pe });
      return false;
    }
    if (intid >= rd.lpiLimit) {
      this.fault('gic.lpi-dropped', `LPI ${intid} beyond GICR_PROPBASER.IDbits`, { intid, pe });
      return false;
    }
    const irq = this.lpi(intid, pe);
    if (irq === undefined) return false;
    if (irq.targetPe !== pe) {
      irq.targetPe = pe;
    }
    irq.pendingLatch = true;
    rd.writePendingBit(intid, true);
    // Hardware: the redistributor sets the LPI's pending bit (no kernel function runs).
    if (this.traceOn && this.delivery === this.hardwareDelivery) this.trace('gic.lpi', 'hw:gicr_set_lpi_pending', undefined, { intid, pe, why });
    this.irqChanged(irq, why);
    return true;
  }

  clearLpiPending(intid: number): void {
    const irq = this.lpis.get(intid);
    if (irq === undefined || !irq.pendingLatch) return;
    irq.pendingLatch = false;
    this.redistributors[irq.targetPe >= 0 ? irq.targetPe : 0].writePendingBit(intid, false);
    this.irqChanged(irq);
  }

  /** @internal an LPI was acknowledged: clear its pending-table bit. */
  lpiAcknowledged(irq: GicIrq): void {
    this.redistributors[irq.targetPe >= 0 ? irq.targetPe : 0].writePendingBit(irq.intid, false);
  }

  invalidateLpi(intid: number): void {
    const irq = this.lpis.get(intid);
    if (irq === undefined) return;
    this.readLpiConfig(irq);
    this.irqChanged(irq, 'update_lpi_config');
  }

  invalidateAllLpis(pe: number): void {
    for (const irq of this.lpis.values()) {
      if (irq.targetPe !== pe) continue;
      this.readLpiConfig(irq);
      this.irqChanged(irq, 'update_lpi_config');
    }
  }

  /** EnableLPIs 0 → 1: the redistributor reads its pending table (unless PTZ). */
  lpisEnabled(rd: GicRedistributor): void {
    for (const intid of rd.scanPendingTable()) {
      const irq = this.lpi(intid, rd.index);
      if (irq === undefined) continue;
      irq.targetPe = rd.index;
      irq.pendingLatch = true;
      this.irqChanged(irq, 'its_sync_lpi_pending_table');
    }
  }

  // ---- GICv4 vPEs ----

  /** The vPE whose VPT is at `addr` (GICv4.0 residency names the VPT, not the vPE). */
  vpeByVpt(addr: number): Vpe | undefined {
    for (const v of this.vpes.values()) if (v.vptAddr === addr) return v;
    return undefined;
  }

  /** VMAPP V = 1: maps (or re-maps) a vPE. */
  mapVpe(id: number, rd: number, vptAddr: number, vptIdBits: number, defaultDoorbell: number): Vpe {
    let v = this.vpes.get(id);
    if (v === undefined) {
      v = new Vpe(this, id, rd, vptAddr, vptIdBits, defaultDoorbell);
      this.vpes.set(id, v);
    } else {
      v.rd = rd;
      v.vptAddr = vptAddr;
      v.vptIdBits = vptIdBits;
      v.defaultDoorbell = defaultDoorbell;
    }
    return v;
  }

  /** The maintenance PPI of PE `pe`. */
  maintenanceIrq(pe: number): GicIrq {
    return this.redistributors[pe].privateIrqs[MAINTENANCE_PPI];
  }
}
