import { type Actor, type GuestMemory, type MsiMessage, type MsiSink, type TraceArgs, VirqError, msiAddress } from '@virq/core';
import { GicErrorCode, GicGuestFault } from './errors.js';
import type { Gicv3 } from './gic.js';
import type { GicIrq } from './gic-irq.js';
import { ItsCommandWords, ItsError, ItsOpcode, itsErrorName, itsOpcodeName } from './its-command.js';
import {
  GITS_BASER, GITS_BASER_INDIRECT, GITS_BASER_TYPE_COLLECTION, GITS_BASER_TYPE_DEVICE, GITS_BASER_TYPE_VCPU, GITS_BASER_VALID,
  GITS_CBASER, GITS_CBASER_PA_MASK, GITS_CBASER_VALID, GITS_CMDQ_OFFSET_MASK, GITS_CREADR, GITS_CREADR_STALLED, GITS_CTLR,
  GITS_CTLR_ENABLED, GITS_CTLR_QUIESCENT, GITS_CWRITER, GITS_CWRITER_RETRY, GITS_IIDR, GITS_PIDR2, GITS_SGIR, GITS_TRANSLATER,
  GITS_TYPER, GITS_TYPER_PHYSICAL, GITS_TYPER_VIRTUAL, GITS_TYPER_VMOVP, GITS_TYPER_VSGI, ITS_CMD_SIZE, LPI_BASE_INTID,
} from './registers.js';

/**
 * 'kvm': the ITS KVM emulates for a guest (vgic-its.c): command errors are skipped, the V*
 * commands are not implemented (the guest sees a GICv3 ITS), RDbase is a vCPU index.
 * 'hardware': a host ITS as the architecture describes it, with the GICv4 commands when its
 * GIC is a v4/v4.1, and command errors either skipped or stalling the queue.
 */
export type ItsFlavor = 'kvm' | 'hardware';

export interface ItsOptions {
  flavor?: ItsFlavor;
  /** What a command error does ('hardware' only; KVM always skips). Default 'skip'. */
  onCommandError?: 'skip' | 'stall';
  /** DeviceID bits (GITS_TYPER.Devbits + 1). Default 16 (KVM's VITS_TYPER_DEVBITS). */
  deviceIdBits?: number;
  /** EventID bits (GITS_TYPER.IDbits + 1). Default 16. */
  eventIdBits?: number;
  /** Base of the ITS frames; GITS_TRANSLATER is at base + 0x10040. Default QEMU virt's 0x08080000. */
  baseAddress?: number;
  name?: string;
}

/** An interrupt translation entry. */
export interface Ite {
  readonly eventId: number;
  icid: number;
  /** pINTID (physical) or vINTID (virtual). */
  intid: number;
  virtual: boolean;
  vpeId: number;
  doorbell: number;
}

export interface ItsDevice {
  readonly id: number;
  readonly ittAddr: number;
  readonly eventIdBits: number;
  readonly ites: Map<number, Ite>;
}

/** KVM's hooks for LPIs forwarded to GICv4 hardware (vgic-its.c calls into vgic-v4.c). */
export interface ItsForwardingHooks {
  /** INT / MSI on a forwarded LPI: make it pending in hardware (irq_set_irqchip_state). */
  setPending(irq: GicIrq): void;
  clearPending(irq: GicIrq): void;
  /** INV (needsInv) / INVALL (no per-LPI INV): its_prop_update_vlpi. */
  propertiesChanged(irq: GicIrq, needsInv: boolean): void;
  /** INVALL on a collection whose vCPU has a vPE: its_invall_vpe (VINVALL). */
  invallVpe(vcpu: number): void;
  /** MOVI/MOVALL/MAPC retarget: re-map to the new vPE (VMOVI). */
  retargeted(irq: GicIrq): void;
  /** DISCARD/MAPD unmap: its_unmap_vlpi. */
  unmapped(irq: GicIrq): void;
}

/** Result of a translation (negative: dropped). */
export type TranslateResult = 'lpi' | 'vlpi-direct' | 'vlpi-doorbell' | 'vlpi-latched' | 'forwarded' | 'dropped';

const PAGE_64K = 0x10000;
/** An ITE whose collection was unmapped by MAPC V=0 (KVM: ite->collection = NULL). */
const NULL_COLLECTION = -1;

/** vgic-its.c's handler for each command (where a command error is returned). */
const KVM_ITS_HANDLER: Readonly<Record<number, string>> = {
  [ItsOpcode.MAPD]: 'vgic_its_cmd_handle_mapd',
  [ItsOpcode.MAPC]: 'vgic_its_cmd_handle_mapc',
  [ItsOpcode.MAPTI]: 'vgic_its_cmd_handle_mapi',
  [ItsOpcode.MAPI]: 'vgic_its_cmd_handle_mapi',
  [ItsOpcode.MOVI]: 'vgic_its_cmd_handle_movi',
  [ItsOpcode.DISCARD]: 'vgic_its_cmd_handle_discard',
  [ItsOpcode.CLEAR]: 'vgic_its_cmd_handle_clear',
  [ItsOpcode.MOVALL]: 'vgic_its_cmd_handle_movall',
  [ItsOpcode.INT]: 'vgic_its_cmd_handle_int',
  [ItsOpcode.INV]: 'vgic_its_cmd_handle_inv',
  [ItsOpcode.INVALL]: 'vgic_its_cmd_handle_invall',
};

/**
 * An ITS (FACTS §13): control registers, the command queue in memory (32-byte commands read
 * at CREADR up to CWRITER), the device/collection (and vPE) tables located by GITS_BASER<n>,
 * ITTs, a translation cache, and GITS_TRANSLATER — registered as the ARM `MsiSink`
 * (DeviceID = the MSI's requester id, EventID = its data).
 *
 * Tables are kept as in KVM: the entries live in the ITS model, but a DeviceID/ICID must be
 * storable in the table the guest described (flat or two-level, in visible memory) and an
 * EventID's ITT slot must be in visible memory, or the command fails with the
 * architectural error.
 */
export class Its implements MsiSink {
  readonly flavor: ItsFlavor;
  readonly deviceIdBits: number;
  readonly eventIdBits: number;
  readonly baseAddress: number;
  private ctlr = 0;
  private cbaser = 0n;
  private cwriter = 0;
  private creadr = 0;
  private stalled = false;
  private readonly baser: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
  readonly devices = new Map<number, ItsDevice>();
  /** ICID → target PE (-1: allocated by MAPTI but not mapped). */
  readonly collections = new Map<number, number>();
  /** Translation cache: DeviceID → EventID → ITE (KVM's per-ITS cache keyed by DeviceID/EventID). */
  private readonly cache = new Map<number, Map<number, Ite>>();
  private readonly errorPolicy: 'skip' | 'stall';
  hooks: ItsForwardingHooks | undefined;
  /** Counters. */
  readonly stats = { commands: 0, commandErrors: 0, translations: 0, dropped: 0, cacheHits: 0 };

  constructor(
    readonly gic: Gicv3,
    readonly memory: GuestMemory,
    options: ItsOptions = {},
  ) {
    this.flavor = options.flavor ?? 'kvm';
    this.errorPolicy = this.flavor === 'kvm' ? 'skip' : (options.onCommandError ?? 'skip');
    this.deviceIdBits = options.deviceIdBits ?? 16;
    this.eventIdBits = options.eventIdBits ?? 16;
    if (this.deviceIdBits < 1 || this.deviceIdBits > 32 || this.eventIdBits < 1 || this.eventIdBits > 32) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `ITS DeviceID/EventID bits must be in [1, 32], got ${this.deviceIdBits}/${this.eventIdBits}`);
    }
    this.baseAddress = options.baseAddress ?? 0x0808_0000;
    // BASER0 = devices, BASER1 = collections, 8-byte entries, 64 KiB pages (KVM's layout);
    // a GICv4 hardware ITS adds BASER2 = vPEs.
    this.baser[0] = (BigInt(GITS_BASER_TYPE_DEVICE) << 56n) | (7n << 48n) | (2n << 8n);
    this.baser[1] = (BigInt(GITS_BASER_TYPE_COLLECTION) << 56n) | (7n << 48n) | (2n << 8n);
    if (this.virtualSupported) this.baser[2] = (BigInt(GITS_BASER_TYPE_VCPU) << 56n) | (7n << 48n) | (2n << 8n);
  }

  /** Whether this ITS implements the GICv4 commands. */
  get virtualSupported(): boolean {
    return this.flavor === 'hardware' && this.gic.version !== 'v3';
  }

  get enabled(): boolean {
    return (this.ctlr & GITS_CTLR_ENABLED) !== 0;
  }

  /** The doorbell address devices write (GITS_TRANSLATER). */
  get translaterAddress(): number {
    return this.baseAddress + GITS_TRANSLATER;
  }

  get queueSize(): number {
    return (Number(this.cbaser & 0xffn) + 1) * 4096;
  }

  get queueBase(): number {
    return Number(this.cbaser & GITS_CBASER_PA_MASK);
  }

  get isStalled(): boolean {
    return this.stalled;
  }

  /**
   * A guest/driver fault: counted and traced. `fn`/`caller` are the real vgic-its.c
   * functions on the KVM ITS; a hardware ITS has no kernel function there, so its events
   * are `hw:`-prefixed.
   */
  private fault(kind: string, message: string, fn: string, caller: string | undefined, args: TraceArgs): void {
    this.gic.faults++;
    this.gic.lastFault = { code: kind, message };
    const ch = this.gic.channel;
    if (ch.on) ch.emit(kind, fn, caller, { what: message, ...args });
  }

  private get kvm(): boolean {
    return this.flavor === 'kvm';
  }

  // ---- registers ----

  read32(offset: number): number {
    switch (offset) {
      case GITS_CTLR:
        return (this.ctlr | (this.creadr === this.cwriter && !this.stalled ? GITS_CTLR_QUIESCENT : 0)) >>> 0;
      case GITS_IIDR:
        return 0x4b00043b;
      case GITS_PIDR2:
        return this.gic.version === 'v3' || this.flavor === 'kvm' ? 0x3b : 0x4b;
    }
    if (offset >= GITS_TYPER && offset < GITS_BASER + 64) {
      const v = this.read64(offset & ~7);
      return (offset & 4) === 0 ? Number(v & 0xffffffffn) : Number(v >> 32n);
    }
    return 0;
  }

  read64(offset: number): bigint {
    switch (offset) {
      case GITS_TYPER: {
        let v = GITS_TYPER_PHYSICAL | (7n << 4n) | (BigInt(this.eventIdBits - 1) << 8n) | (BigInt(this.deviceIdBits - 1) << 13n);
        if (this.virtualSupported) v |= GITS_TYPER_VIRTUAL;
        if (this.virtualSupported && this.gic.version === 'v4.1') v |= GITS_TYPER_VMOVP | GITS_TYPER_VSGI;
        return v;
      }
      case GITS_CBASER: return this.cbaser;
      case GITS_CWRITER: return BigInt(this.cwriter);
      case GITS_CREADR: return BigInt(this.creadr | (this.stalled ? GITS_CREADR_STALLED : 0));
    }
    if (offset >= GITS_BASER && offset < GITS_BASER + 64 && (offset & 7) === 0) return this.baser[(offset - GITS_BASER) >>> 3];
    return BigInt(this.read32(offset)) | (BigInt(this.read32(offset + 4)) << 32n);
  }

  write32(offset: number, value: number): void {
    value >>>= 0;
    if (offset === GITS_CTLR) {
      const was = this.enabled;
      // vgic_mmio_write_its_ctlr: enabling with CBASER or the device/collection BASER
      // invalid is UNPREDICTABLE; KVM ignores the write.
      if (this.kvm && !was && (value & GITS_CTLR_ENABLED) !== 0 &&
        ((this.cbaser & GITS_CBASER_VALID) === 0n || (this.baser[0] & GITS_BASER_VALID) === 0n || (this.baser[1] & GITS_BASER_VALID) === 0n)) {
        return;
      }
      this.ctlr = value & GITS_CTLR_ENABLED;
      if (was !== this.enabled) {
        this.cache.clear();
        if (this.enabled) this.processCommands();
      }
      return;
    }
    if (offset === GITS_TRANSLATER) {
      this.translate(0, value);
      return;
    }
    if (offset >= GITS_CBASER && offset < GITS_BASER + 64) {
      const cur = this.read64(offset & ~7);
      const v = (offset & 4) === 0 ? (cur & 0xffff_ffff_0000_0000n) | BigInt(value) : (cur & 0xffff_ffffn) | (BigInt(value) << 32n);
      this.write64(offset & ~7, v);
    }
  }

  write64(offset: number, value: bigint): void {
    switch (offset) {
      case GITS_CBASER:
        if (this.enabled) return; // ignored while enabled
        this.cbaser = value & (GITS_CBASER_VALID | GITS_CBASER_PA_MASK | 0xffn | (0x3n << 10n) | (0x7n << 53n) | (0x7n << 59n));
        this.creadr = 0;
        this.cwriter = 0;
        this.stalled = false;
        return;
      case GITS_CWRITER: {
        const off = Number(value & BigInt(GITS_CMDQ_OFFSET_MASK));
        if (off >= this.queueSize) {
          this.fault(GicGuestFault.ItsCwriterOutOfRange, 'CWRITER offset beyond the command queue', this.kvm ? 'vgic_mmio_write_its_cwriter' : 'hw:its_cwriter_write',
            this.kvm ? 'dispatch_mmio_write' : undefined, { offset: off, queueSize: this.queueSize });
          return; // KVM ignores the write
        }
        this.cwriter = off;
        if (this.stalled && (value & BigInt(GITS_CWRITER_RETRY)) !== 0n) this.stalled = false;
        this.processCommands();
        return;
      }
      case GITS_CREADR:
        return; // read-only (KVM: its_mmio_write_wi; only userspace restore may set it)
    }
    if (offset >= GITS_BASER && offset < GITS_BASER + 64 && (offset & 7) === 0) {
      this.writeBaser((offset - GITS_BASER) >>> 3, value);
      return;
    }
    if (offset === GITS_SGIR && this.virtualSupported && this.gic.version === 'v4.1') {
      const vpe = this.gic.vpes.get(Number((value >> 32n) & 0xffffn));
      if (vpe !== undefined) vpe.setPending(Number(value & 0xfn), 1023);
      return;
    }
    this.write32(offset, Number(value & 0xffffffffn));
    this.write32(offset + 4, Number(value >> 32n));
  }

  private writeBaser(n: number, value: bigint): void {
    const cur = this.baser[n];
    const type = Number((cur >> 56n) & 7n);
    if (type === 0 || this.enabled) return; // RAZ/WI, or ignored while enabled
    // Writable: Valid, Indirect (device/vPE tables only), PA 47:12, Size 7:0, cacheability/shareability.
    let wmask = GITS_BASER_VALID | 0x0000_ffff_ffff_f000n | 0xffn | (0x3n << 10n) | (0x7n << 53n) | (0x7n << 59n);
    if (type !== GITS_BASER_TYPE_COLLECTION) wmask |= GITS_BASER_INDIRECT;
    const next = (cur & ~wmask) | (value & wmask);
    this.baser[n] = next;
    if ((cur & GITS_BASER_VALID) !== 0n && (next & GITS_BASER_VALID) === 0n) {
      // Clearing Valid frees every device (BASER0) or collection (BASER1).
      if (type === GITS_BASER_TYPE_DEVICE) for (const id of [...this.devices.keys()]) this.freeDevice(id);
      if (type === GITS_BASER_TYPE_COLLECTION) for (const icid of [...this.collections.keys()]) this.freeCollection(icid);
      this.cache.clear();
    }
  }

  /**
   * Whether `id` can be stored in the table of type `type` (KVM's vgic_its_check_id): the
   * table is valid, the entry lies inside it (via a valid level-1 entry when Indirect) and
   * in visible memory.
   */
  private checkId(type: number, id: number): boolean {
    const n = this.baser.findIndex((b) => Number((b >> 56n) & 7n) === type);
    if (n < 0) return false;
    const b = this.baser[n];
    if ((b & GITS_BASER_VALID) === 0n) return false;
    const esz = Number((b >> 48n) & 0x1fn) + 1;
    const size = (Number(b & 0xffn) + 1) * PAGE_64K;
    const base = Number(b & 0x0000_ffff_ffff_0000n);
    const mem = this.memory;
    if ((b & GITS_BASER_INDIRECT) === 0n) {
      if (id * esz >= size) return false;
      return mem.isValid(base + id * esz, esz);
    }
    const perPage = PAGE_64K / esz;
    const l1 = Math.floor(id / perPage);
    if (l1 * 8 >= size || !mem.isValid(base + l1 * 8, 8)) return false;
    const entry = mem.read64(base + l1 * 8);
    if ((entry & (1n << 63n)) === 0n) return false;
    const l2 = Number(entry & 0x000f_ffff_ffff_0000n);
    return mem.isValid(l2 + (id % perPage) * esz, esz);
  }

  // ---- the command queue ----

  /** Consumes commands from CREADR up to CWRITER (synchronously, as KVM does). */
  processCommands(): void {
    if (!this.enabled || this.stalled || (this.cbaser & GITS_CBASER_VALID) === 0n) return;
    const size = this.queueSize;
    const base = this.queueBase;
    // At most size/32 commands: CREADR only moves forward, so the loop always ends.
    for (let n = 0; this.creadr !== this.cwriter && n <= size / ITS_CMD_SIZE; n++) {
      const addr = base + this.creadr;
      if (!this.memory.isValid(addr, ITS_CMD_SIZE)) {
        // kvm_read_guest failed: the command is skipped (GICv3 spec 6.3.2).
        this.fault(GicGuestFault.ItsCommandReadFault, 'command outside guest memory', this.kvm ? 'vgic_its_process_commands' : 'hw:its_command_read',
          this.kvm ? 'vgic_mmio_write_its_cwriter' : undefined, { addr, creadr: this.creadr });
      } else {
        const cmd = ItsCommandWords.fromBytes(this.memory.view(addr, ITS_CMD_SIZE));
        this.stats.commands++;
        const err = this.handleCommand(cmd);
        if (err !== 0) {
          this.stats.commandErrors++;
          const name = itsErrorName(err) ?? `error 0x${err.toString(16)}`;
          this.fault(GicGuestFault.ItsCommandError, name, this.kvm ? KVM_ITS_HANDLER[cmd.opcode] ?? 'vgic_its_handle_command' : 'hw:its_command_error',
            this.kvm ? 'vgic_its_handle_command' : undefined, {
            error: name,
            code: err,
            command: itsOpcodeName(cmd.opcode) ?? `0x${cmd.opcode.toString(16)}`,
            deviceId: cmd.deviceId,
            eventId: cmd.eventId,
            action: this.errorPolicy === 'stall' ? 'stalled' : 'skipped',
          });
          if (this.errorPolicy === 'stall') {
            this.stalled = true;
            return;
          }
        }
      }
      this.creadr = (this.creadr + ITS_CMD_SIZE) % size;
    }
  }

  /** Handles one command; returns 0 or an ItsError code. */
  private handleCommand(c: ItsCommandWords): number {
    const op = c.opcode;
    const g = this.gic;
    if (g.traceOn) {
      g.trace('its.command', this.kvm ? 'vgic_its_handle_command' : 'hw:its_process_command', this.kvm ? 'vgic_its_process_commands' : undefined,
        { cmd: itsOpcodeName(op) ?? op, devid: c.deviceId, eventid: c.eventId });
    }
    switch (op) {
      case ItsOpcode.MAPD: return this.cmdMapd(c);
      case ItsOpcode.MAPC: return this.cmdMapc(c);
      case ItsOpcode.MAPTI: return this.cmdMapti(c, c.physicalId);
      case ItsOpcode.MAPI: return this.cmdMapti(c, c.eventId);
      case ItsOpcode.MOVI: return this.cmdMovi(c);
      case ItsOpcode.DISCARD: return this.cmdDiscard(c);
      case ItsOpcode.INT: return this.translate(c.deviceId, c.eventId, 'int') === 'dropped' ? ItsError.INT_UNMAPPED_INTERRUPT : 0;
      case ItsOpcode.CLEAR: return this.cmdClear(c);
      case ItsOpcode.INV: return this.cmdInv(c);
      case ItsOpcode.INVALL: return this.cmdInvall(c);
      case ItsOpcode.MOVALL: return this.cmdMovall(c);
      case ItsOpcode.SYNC: return 0; // everything is synchronous
    }
    if (!this.virtualSupported) {
      // KVM: vgic_its_handle_command's switch has no case → -ENODEV, swallowed by the queue.
      this.fault(GicGuestFault.ItsCommandUnsupported, itsOpcodeName(op) ?? `opcode 0x${op.toString(16)}`, this.kvm ? 'vgic_its_handle_command' : 'hw:its_command_error',
        this.kvm ? 'vgic_its_process_commands' : undefined, { opcode: op });
      return 0;
    }
    switch (op) {
      case ItsOpcode.VMAPP: return this.cmdVmapp(c);
      case ItsOpcode.VMAPTI: return this.cmdVmapti(c, c.virtualId);
      case ItsOpcode.VMAPI: return this.cmdVmapti(c, c.eventId);
      case ItsOpcode.VMOVI: return this.cmdVmovi(c);
      case ItsOpcode.VMOVP: {
        const vpe = g.vpes.get(c.vpeId);
        if (vpe === undefined || c.rdbase >= g.numCpus) return 0x012200 | 0x01;
        vpe.rd = c.rdbase;
        if (g.version === 'v4.1' && c.valid) vpe.defaultDoorbell = c.w[6];
        return 0;
      }
      case ItsOpcode.VSYNC: return 0;
      case ItsOpcode.VINVALL: {
        g.vpes.get(c.vpeId)?.invalidate();
        return 0;
      }
      case ItsOpcode.INVDB: return 0;
      case ItsOpcode.VSGI: {
        const vpe = g.vpes.get(c.vpeId);
        if (vpe === undefined) return 0x012300 | 0x01;
        const cfg = ((c.w[0] >>> 20) & 0xf) << 4 | ((c.w[0] & 0x100) !== 0 ? 1 : 0);
        vpe.config.set(c.vsgiId, cfg);
        if ((c.w[0] & 0x200) !== 0) vpe.clearPending(c.vsgiId);
        return 0;
      }
    }
    this.fault(GicGuestFault.ItsCommandUnsupported, `opcode 0x${op.toString(16)}`, 'hw:its_command_error', undefined, { opcode: op });
    return 0;
  }

  private freeDevice(id: number): void {
    const dev = this.devices.get(id);
    if (dev === undefined) return;
    for (const ite of dev.ites.values()) this.freeIte(ite);
    this.devices.delete(id);
    this.cache.clear();
  }

  private freeIte(ite: Ite): void {
    if (ite.virtual) {
      this.gic.vpes.get(ite.vpeId)?.clearPending(ite.intid);
      return;
    }
    const irq = this.gic.lpis.get(ite.intid);
    if (irq === undefined) return;
    if (irq.hw) this.hooks?.unmapped(irq);
    if (irq.pendingLatch) this.gic.clearLpiPending(irq.intid);
  }

  private cmdMapd(c: ItsCommandWords): number {
    const id = c.deviceId;
    if (id >= 2 ** this.deviceIdBits || !this.checkId(GITS_BASER_TYPE_DEVICE, id)) return ItsError.MAPD_DEVICE_OOR;
    if (c.valid && c.size + 1 > this.eventIdBits) return ItsError.MAPD_ITTSIZE_OOR;
    this.freeDevice(id);
    if (!c.valid) return 0;
    this.devices.set(id, { id, ittAddr: c.ittAddr, eventIdBits: c.size + 1, ites: new Map() });
    return 0;
  }

  private cmdMapc(c: ItsCommandWords): number {
    const target = c.rdbase;
    if (target >= this.gic.numCpus) return ItsError.MAPC_PROCNUM_OOR;
    const icid = c.icid;
    if (!c.valid) {
      this.freeCollection(icid);
      this.cache.clear();
      return 0;
    }
    if (this.collections.has(icid)) {
      this.collections.set(icid, target);
      this.retargetCollection(icid, target);
      return 0;
    }
    if (!this.checkId(GITS_BASER_TYPE_COLLECTION, icid)) return ItsError.MAPC_COLLECTION_OOR;
    this.collections.set(icid, target);
    this.retargetCollection(icid, target);
    return 0;
  }

  /**
   * vgic_its_free_collection: the collection goes and every ITE that used it keeps a NULL
   * collection (ICID -1) — re-mapping the same ICID later does not bring them back.
   */
  private freeCollection(icid: number): void {
    if (!this.collections.delete(icid)) return;
    for (const dev of this.devices.values()) for (const ite of dev.ites.values()) if (!ite.virtual && ite.icid === icid) ite.icid = NULL_COLLECTION;
  }

  private retargetCollection(icid: number, target: number): void {
    this.cache.clear();
    for (const dev of this.devices.values()) {
      for (const ite of dev.ites.values()) {
        if (ite.virtual || ite.icid !== icid) continue;
        this.retargetLpi(ite.intid, target);
      }
    }
  }

  private retargetLpi(intid: number, target: number): void {
    const irq = this.gic.lpis.get(intid);
    if (irq === undefined || irq.targetPe === target) return;
    irq.targetPe = target;
    if (irq.hw) this.hooks?.retargeted(irq);
    this.gic.irqChanged(irq, 'update_affinity');
  }

  /** The ITT slot of `eventId` is in visible memory (8-byte entries). */
  private ittVisible(dev: ItsDevice, eventId: number): boolean {
    return this.memory.isValid(dev.ittAddr + eventId * 8, 8);
  }

  private cmdMapti(c: ItsCommandWords, pintid: number): number {
    const dev = this.devices.get(c.deviceId);
    if (dev === undefined) return ItsError.MAPTI_UNMAPPED_DEVICE;
    const ev = c.eventId;
    if (ev >= 2 ** dev.eventIdBits || !this.ittVisible(dev, ev)) return ItsError.MAPTI_ID_OOR;
    const icid = c.icid;
    const target = this.collections.get(icid);
    const limit = this.gic.lpiLimit(target !== undefined && target >= 0 ? target : 0);
    if (pintid < LPI_BASE_INTID || pintid >= limit) return ItsError.MAPTI_PHYSICALID_OOR;
    if (dev.ites.has(ev)) return 0; // UNPREDICTABLE: KVM silently ignores
    if (target === undefined) {
      if (!this.checkId(GITS_BASER_TYPE_COLLECTION, icid)) return ItsError.MAPC_COLLECTION_OOR;
      this.collections.set(icid, -1);
    }
    dev.ites.set(ev, { eventId: ev, icid, intid: pintid, virtual: false, vpeId: 0, doorbell: 1023 });
    const irq = this.gic.lpi(pintid, target !== undefined && target >= 0 ? target : 0);
    if (irq !== undefined && target !== undefined && target >= 0) irq.targetPe = target;
    return 0;
  }

  private ite(c: ItsCommandWords): Ite | undefined {
    return this.devices.get(c.deviceId)?.ites.get(c.eventId);
  }

  private cmdMovi(c: ItsCommandWords): number {
    const ite = this.ite(c);
    if (ite === undefined) return ItsError.MOVI_UNMAPPED_INTERRUPT;
    const now = this.collections.get(ite.icid);
    const next = this.collections.get(c.icid);
    if (now === undefined || now < 0 || next === undefined || next < 0) return ItsError.MOVI_UNMAPPED_COLLECTION;
    ite.icid = c.icid;
    this.cache.clear();
    if (!ite.virtual) this.retargetLpi(ite.intid, next);
    return 0;
  }

  private cmdDiscard(c: ItsCommandWords): number {
    const dev = this.devices.get(c.deviceId);
    const ite = dev?.ites.get(c.eventId);
    if (dev === undefined || ite === undefined) return ItsError.DISCARD_UNMAPPED_INTERRUPT;
    if (!ite.virtual) {
      const coll = this.collections.get(ite.icid);
      if (coll === undefined || coll < 0) return ItsError.DISCARD_UNMAPPED_INTERRUPT;
    }
    this.cache.clear();
    this.freeIte(ite);
    dev.ites.delete(c.eventId);
    return 0;
  }

  private cmdClear(c: ItsCommandWords): number {
    const ite = this.ite(c);
    if (ite === undefined) return ItsError.CLEAR_UNMAPPED_INTERRUPT;
    if (ite.virtual) {
      this.gic.vpes.get(ite.vpeId)?.clearPending(ite.intid);
      return 0;
    }
    const irq = this.gic.lpis.get(ite.intid);
    if (irq?.hw === true && this.hooks !== undefined) this.hooks.clearPending(irq);
    else this.gic.clearLpiPending(ite.intid);
    return 0;
  }

  private cmdInv(c: ItsCommandWords): number {
    const ite = this.ite(c);
    if (ite === undefined) return ItsError.INV_UNMAPPED_INTERRUPT;
    if (ite.virtual) {
      this.gic.vpes.get(ite.vpeId)?.invalidate(ite.intid);
      return 0;
    }
    this.gic.invalidateLpi(ite.intid);
    const irq = this.gic.lpis.get(ite.intid);
    if (irq?.hw === true) this.hooks?.propertiesChanged(irq, true);
    return 0;
  }

  private cmdInvall(c: ItsCommandWords): number {
    const target = this.collections.get(c.icid);
    if (target === undefined || target < 0) return ItsError.INVALL_UNMAPPED_COLLECTION;
    this.gic.invalidateAllLpis(target);
    // update_lpi_config(…, needs_inv = false) per LPI, then one its_invall_vpe for the vCPU's vPE.
    if (this.hooks !== undefined) {
      for (const irq of this.gic.lpis.values()) if (irq.hw && irq.targetPe === target) this.hooks.propertiesChanged(irq, false);
      this.hooks.invallVpe(target);
    }
    return 0;
  }

  private cmdMovall(c: ItsCommandWords): number {
    const from = c.rdbase;
    const to = c.rdbase2;
    if (from >= this.gic.numCpus || to >= this.gic.numCpus) return ItsError.MOVALL_PROCNUM_OOR;
    if (from === to) return 0;
    this.cache.clear();
    for (const irq of this.gic.lpis.values()) if (irq.targetPe === from) this.retargetLpi(irq.intid, to);
    return 0;
  }

  private cmdVmapp(c: ItsCommandWords): number {
    const g = this.gic;
    if (!c.valid) {
      g.vpes.delete(c.vpeId);
      return 0;
    }
    if (c.rdbase >= g.numCpus || !this.checkId(GITS_BASER_TYPE_VCPU, c.vpeId)) return 0x012901;
    const db = g.version === 'v4.1' ? c.defaultDoorbellVmapp : 1023;
    const vpe = g.mapVpe(c.vpeId, c.rdbase, c.vptAddr, c.vptSize + 1, db);
    if (g.version === 'v4.1' && c.vconfAddr !== 0) vpe.vpropAddr = c.vconfAddr;
    return 0;
  }

  private cmdVmapti(c: ItsCommandWords, vintid: number): number {
    const dev = this.devices.get(c.deviceId);
    if (dev === undefined) return 0x012a04;
    const ev = c.eventId;
    if (ev >= 2 ** dev.eventIdBits || !this.ittVisible(dev, ev)) return 0x012a05;
    if (!this.gic.vpes.has(c.vpeId)) return 0x012a01;
    if (vintid < LPI_BASE_INTID || vintid >= 2 ** this.gic.lpiIdBits) return 0x012a06;
    dev.ites.set(ev, { eventId: ev, icid: 0, intid: vintid, virtual: true, vpeId: c.vpeId, doorbell: c.doorbell });
    this.cache.clear();
    return 0;
  }

  private cmdVmovi(c: ItsCommandWords): number {
    const ite = this.ite(c);
    if (ite === undefined || !ite.virtual) return 0x012107;
    if (!this.gic.vpes.has(c.vpeId)) return 0x012101;
    const old = this.gic.vpes.get(ite.vpeId);
    const wasPending = old?.pending.has(ite.intid) ?? false;
    old?.clearPending(ite.intid);
    ite.vpeId = c.vpeId;
    if ((c.w[4] & 1) !== 0) ite.doorbell = c.doorbell;
    this.cache.clear();
    if (wasPending) this.gic.vpes.get(ite.vpeId)?.setPending(ite.intid, ite.doorbell);
    return 0;
  }

  // ---- translation ----

  /**
   * Translates (DeviceID, EventID) and makes the interrupt pending (FACTS §13.3): the
   * GITS_TRANSLATER write, the INT command and KVM's MSI injection all come here.
   *
   * `via` says which KVM path runs (vgic-its.c): 'msi' = vgic_its_inject_msi (the translation
   * cache first, else vgic_its_trigger_msi → vgic_its_resolve_lpi under the ITS lock),
   * 'int' = the INT command (vgic_its_cmd_handle_int → vgic_its_trigger_msi), 'cached' =
   * the irqfd fast path after a cache hit (vgic_its_inject_cached_translation). A hardware
   * ITS translates with no kernel function running: one `hw:its_translate` event.
   */
  translate(deviceId: number, eventId: number, via: 'msi' | 'int' | 'cached' = 'msi'): TranslateResult {
    const g = this.gic;
    this.stats.translations++;
    const kvm = this.kvm;
    let ite = this.cache.get(deviceId)?.get(eventId);
    if (!this.enabled) ite = undefined;
    if (kvm && ite !== undefined && via !== 'int') {
      this.stats.cacheHits++;
      const target = this.collections.get(ite.icid) ?? -1;
      const caller = via === 'cached' ? 'kvm_arch_set_irq_inatomic' : 'vgic_its_inject_msi';
      if (g.traceOn) g.trace('its.cached', 'vgic_its_inject_cached_translation', caller, { devid: deviceId, eventid: eventId, intid: ite.intid, vcpu: target });
      return g.setLpiPending(ite.intid, target, 'vgic_its_inject_cached_translation') ? 'lpi' : 'dropped';
    }
    if (kvm && g.traceOn) g.trace('its.trigger', 'vgic_its_trigger_msi', via === 'int' ? 'vgic_its_cmd_handle_int' : 'vgic_its_inject_msi', { devid: deviceId, eventid: eventId });
    if (!this.enabled) return this.drop('its-disabled', deviceId, eventId);
    const dev = this.devices.get(deviceId);
    if (dev === undefined) return this.drop('unmapped-device', deviceId, eventId);
    if (eventId >= 2 ** dev.eventIdBits) return this.drop('event-out-of-range', deviceId, eventId);
    ite = dev.ites.get(eventId);
    if (ite === undefined) return this.drop('unmapped-interrupt', deviceId, eventId);
    if (ite.virtual) {
      const vpe = g.vpes.get(ite.vpeId);
      if (vpe === undefined) return this.drop('unmapped-vpe', deviceId, eventId);
      const r = vpe.setPending(ite.intid, ite.doorbell);
      if (g.traceOn) g.trace('its.translate', 'hw:its_translate', undefined, { devid: deviceId, eventid: eventId, virtual: true, vpe: vpe.id, vintid: ite.intid, outcome: r });
      return r === 'direct' ? 'vlpi-direct' : r === 'doorbell' ? 'vlpi-doorbell' : 'vlpi-latched';
    }
    const target = this.collections.get(ite.icid);
    if (target === undefined || target < 0) return this.drop('unmapped-collection', deviceId, eventId);
    if (!g.redistributors[target].lpisEnabled) return this.drop('lpis-disabled', deviceId, eventId);
    const irq = g.lpis.get(ite.intid);
    // vgic_its_cache_translation: a directly injected (forwarded) LPI is never cached.
    if (irq?.hw !== true) this.cacheInsert(deviceId, eventId, ite);
    if (g.traceOn) {
      if (kvm) g.trace('its.resolve', 'vgic_its_resolve_lpi', 'vgic_its_trigger_msi', { devid: deviceId, eventid: eventId, intid: ite.intid, vcpu: target, int: via === 'int' });
      else g.trace('its.translate', 'hw:its_translate', undefined, { devid: deviceId, eventid: eventId, virtual: false, intid: ite.intid, pe: target, outcome: 'lpi' });
    }
    if (irq !== undefined && irq.hw && this.hooks !== undefined) {
      this.hooks.setPending(irq); // irq_set_irqchip_state(host_irq, PENDING, true)
      return 'forwarded';
    }
    return g.setLpiPending(ite.intid, target, kvm ? 'vgic_its_trigger_msi' : 'hw:its_translate') ? 'lpi' : 'dropped';
  }

  private cacheInsert(deviceId: number, eventId: number, ite: Ite): void {
    let m = this.cache.get(deviceId);
    if (m === undefined) {
      m = new Map();
      this.cache.set(deviceId, m);
    }
    m.set(eventId, ite);
  }

  /** KVM's translation-cache lookup (vgic_its_check_cache): the ITE if cached, else undefined. */
  cached(deviceId: number, eventId: number): Ite | undefined {
    return this.cache.get(deviceId)?.get(eventId);
  }

  /** The GicIrq behind (DeviceID, EventID) (vgic_its_resolve_lpi without injecting). */
  resolve(deviceId: number, eventId: number): GicIrq | undefined {
    if (!this.enabled) return undefined;
    const ite = this.devices.get(deviceId)?.ites.get(eventId);
    if (ite === undefined || ite.virtual) return undefined;
    const target = this.collections.get(ite.icid);
    if (target === undefined || target < 0) return undefined;
    return this.gic.lpis.get(ite.intid);
  }

  private drop(reason: string, deviceId: number, eventId: number): 'dropped' {
    this.stats.dropped++;
    this.fault(GicGuestFault.ItsTranslationDropped, reason, this.kvm ? 'vgic_its_resolve_lpi' : 'hw:its_translate', this.kvm ? 'vgic_its_trigger_msi' : undefined,
      { devid: deviceId, eventid: eventId, outcome: 'dropped' });
    return 'dropped';
  }

  /**
   * MsiSink: a device's write of `data` (EventID) to GITS_TRANSLATER with its requester id
   * as DeviceID. Returns 1 when an interrupt was made pending, -1 when dropped.
   */
  deliverMsi(msg: MsiMessage, _by?: Actor): number {
    if (msiAddress(msg) !== BigInt(this.translaterAddress)) {
      this.fault(GicGuestFault.ItsTranslationDropped, 'not-the-its-doorbell', 'hw:its_translate', undefined, { addr: `0x${msiAddress(msg).toString(16)}` });
      return -1;
    }
    if (msg.requesterId === undefined) {
      this.fault(GicGuestFault.ItsTranslationDropped, 'no-device-id', 'hw:its_translate', undefined, {});
      return -1;
    }
    return this.translate(msg.requesterId, msg.data) === 'dropped' ? -1 : 1;
  }
}
