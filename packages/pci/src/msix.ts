import { type MsiMessage, type Snapshot, VirqError, checkSnapshot, formatMsi, msiMessage } from '@virq/core';
import { PciErrorCode } from './errors.js';
import type { AccessSize, MmioRegion } from './mmio-region.js';
import type { PciDevice } from './pci-device.js';
import { Msix, PciCapId } from './pci-regs.js';

/**
 * QEMU's MSI-X vector notifiers (`msix_set_vector_notifiers`): how a device owner (virtio-pci,
 * VFIO) learns that a vector became usable or stopped being usable, so it can move the
 * vector's delivery between an irqfd and a userspace path.
 */
export interface MsixVectorNotifiers {
  /** The vector is now unmasked, with this message. Returns 0, or a negative errno on failure. */
  use(vector: number, msg: MsiMessage): number;
  /** The vector is now masked. */
  release(vector: number): void;
  /**
   * Before the guest reads PBA bits for vectors [start, end): set the pending bit (via
   * `setPending`) of every masked vector whose source fired while it was masked.
   */
  poll?(start: number, end: number): void;
}

export interface MsixInit {
  /** Number of vectors (table entries), 1..2048. */
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
  /** Capability offset in config space (first free when omitted). */
  capOffset?: number;
}

export interface MsixState {
  table: number[];
  pba: number[];
  used: number[];
  control: number;
}

const SNAPSHOT_TYPE = 'pci.msix';
const SNAPSHOT_VERSION = 1;

/**
 * MSI-X for one PCI function, as hw/pci/msix.c emulates it (FACTS §4.1, §4.3): the
 * capability (Table Size, Function Mask, Enable, table/PBA BIR+offset), the vector table and
 * the pending-bit array as guest-visible MMIO with their exact layouts, per-vector use
 * counts, and the three vector notifiers fired on every effective mask transition.
 */
export class MsixTable {
  readonly vectors: number;
  readonly capOffset: number;
  readonly table: Uint8Array;
  readonly pba: Uint8Array;
  /** The table and PBA as MMIO regions; put them in the BARs the capability names. */
  readonly tableRegion: MmioRegion;
  readonly pbaRegion: MmioRegion;
  private readonly tableView: DataView;
  private readonly used: Uint32Array;
  private functionMasked = true;
  private notifiers: MsixVectorNotifiers | undefined;
  /** Messages sent (delivered or not) and interrupts recorded as pending, for metrics. */
  sent = 0;
  pended = 0;

  constructor(
    readonly dev: PciDevice,
    init: MsixInit,
  ) {
    const n = init.vectors;
    if (!Number.isInteger(n) || n < 1 || n > Msix.MAX_VECTORS) {
      throw new VirqError(PciErrorCode.MsixInvalid, `MSI-X needs 1..${Msix.MAX_VECTORS} vectors, got ${n}`);
    }
    if (init.tableOffset % 8 !== 0 || init.pbaOffset % 8 !== 0 || init.tableBar < 0 || init.tableBar > 5 || init.pbaBar < 0 || init.pbaBar > 5) {
      throw new VirqError(PciErrorCode.MsixInvalid, `MSI-X table/PBA offsets must be 8-byte aligned and BIRs 0..5 (table BAR ${init.tableBar} @0x${init.tableOffset.toString(16)}, PBA BAR ${init.pbaBar} @0x${init.pbaOffset.toString(16)})`);
    }
    this.vectors = n;
    this.table = new Uint8Array(n * Msix.ENTRY_SIZE);
    this.tableView = new DataView(this.table.buffer);
    // QEMU sizes the PBA as round_up(N, 64) / 8 bytes.
    this.pba = new Uint8Array(Math.ceil(n / 64) * 8);
    this.used = new Uint32Array(n);
    const pbaEnd = init.pbaOffset + this.pba.length;
    if (init.tableBar === init.pbaBar && init.tableOffset < pbaEnd && init.pbaOffset < init.tableOffset + this.table.length) {
      throw new VirqError(PciErrorCode.MsixInvalid, `MSI-X table [0x${init.tableOffset.toString(16)}, +${this.table.length}) and PBA [0x${init.pbaOffset.toString(16)}, +${this.pba.length}) overlap in BAR ${init.tableBar}`);
    }
    const c = dev.config;
    this.capOffset = c.addCapability(PciCapId.MSIX, Msix.CAP_SIZE, init.capOffset);
    const cap = this.capOffset;
    c.set16(cap + Msix.FLAGS, n - 1);
    c.set32(cap + Msix.TABLE, (init.tableOffset | init.tableBar) >>> 0);
    c.set32(cap + Msix.PBA, (init.pbaOffset | init.pbaBar) >>> 0);
    c.wmask[cap + Msix.CONTROL_OFFSET] = c.wmask[cap + Msix.CONTROL_OFFSET]! | Msix.ENABLE_MASK | Msix.MASKALL_MASK;
    this.maskAllEntries();
    this.updateFunctionMasked();
    dev.addConfigWriteHook((offset, size) => this.writeConfig(offset, size));
    this.tableRegion = new MsixTableRegion(this, this.table.length);
    this.pbaRegion = new MsixPbaRegion(this, this.pba.length);
  }

  /**
   * msix_init_exclusive_bar: a BAR of its own holding the table at 0 and the PBA at 2 KiB
   * (or right after the table when it is larger), sized to a power of two ≥ 4 KiB.
   */
  static exclusiveBar(dev: PciDevice, vectors: number, barIndex: number): MsixTable {
    const tableSize = vectors * Msix.ENTRY_SIZE;
    const pbaSize = Math.ceil(vectors / 64) * 8;
    let pbaOffset = 2048;
    if (tableSize > pbaOffset) pbaOffset = tableSize;
    let barSize = 4096;
    while (barSize < pbaOffset + pbaSize) barSize *= 2;
    const msix = new MsixTable(dev, { vectors, tableBar: barIndex, tableOffset: 0, pbaBar: barIndex, pbaOffset });
    const region = new MsixBarRegion(`${dev.name}-msix`, barSize, msix, pbaOffset);
    dev.registerBar(barIndex, { kind: 'mmio', size: barSize, region });
    return msix;
  }

  // ---- state ---------------------------------------------------------------------------

  private get control(): number {
    return this.dev.config.get8(this.capOffset + Msix.CONTROL_OFFSET);
  }

  /** msix_enabled: MSI-X Enable set in Message Control. */
  get enabled(): boolean {
    return (this.control & Msix.ENABLE_MASK) !== 0;
  }

  /** msix_function_masked = !enabled || Function Mask. */
  get isFunctionMasked(): boolean {
    return this.functionMasked;
  }

  /** Vector Control mask bit of one entry. */
  entryMasked(vector: number): boolean {
    return (this.table[vector * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL]! & Msix.ENTRY_CTRL_MASKBIT) !== 0;
  }

  /** msix_vector_masked(dev, vector, fmask). */
  private vectorMasked(vector: number, fmask: boolean): boolean {
    return fmask || this.entryMasked(vector);
  }

  /** msix_is_masked: effectively masked (disabled, function-masked or entry-masked). */
  isMasked(vector: number): boolean {
    return this.vectorMasked(vector, this.functionMasked);
  }

  isPending(vector: number): boolean {
    return (this.pba[vector >>> 3]! & (1 << (vector & 7))) !== 0;
  }

  /** msix_set_pending. */
  setPending(vector: number): void {
    if (vector < 0 || vector >= this.vectors) return;
    this.pba[vector >>> 3] = this.pba[vector >>> 3]! | (1 << (vector & 7));
    this.pended++;
    const t = this.dev.trace;
    if (t.on) t.emit('msix.set_pending', 'msix_set_pending', 'msix_notify', { dev: this.dev.name, vector });
  }

  /** msix_clr_pending. */
  clearPending(vector: number, caller = 'msix_handle_mask_update'): void {
    this.pba[vector >>> 3] = this.pba[vector >>> 3]! & ~(1 << (vector & 7));
    const t = this.dev.trace;
    if (t.on) t.emit('msix.clr_pending', 'msix_clr_pending', caller, { dev: this.dev.name, vector });
  }

  /** msix_get_message: the entry's address/data, with this function's requester id. */
  getMessage(vector: number): MsiMessage {
    const o = vector * Msix.ENTRY_SIZE;
    const v = this.tableView;
    return {
      addressLo: v.getUint32(o + Msix.ENTRY_LOWER_ADDR, true),
      addressHi: v.getUint32(o + Msix.ENTRY_UPPER_ADDR, true),
      data: v.getUint32(o + Msix.ENTRY_DATA, true),
      requesterId: this.dev.requesterId,
    };
  }

  /** Use count of a vector (msix_entry_used). */
  useCount(vector: number): number {
    return this.used[vector] ?? 0;
  }

  /** msix_vector_use: returns 0, or -EINVAL (-22) for a vector past the table. */
  vectorUse(vector: number): number {
    if (!Number.isInteger(vector) || vector < 0 || vector >= this.vectors) return -22;
    this.used[vector]!++;
    return 0;
  }

  /** msix_vector_unuse: the last user gone clears the pending bit. */
  vectorUnuse(vector: number): void {
    if (vector < 0 || vector >= this.vectors || this.used[vector] === 0) return;
    if (--this.used[vector]! > 0) return;
    this.clearPending(vector, 'msix_vector_unuse');
  }

  /** msix_unuse_all_vectors. */
  unuseAll(): void {
    for (let v = 0; v < this.vectors; v++) {
      this.used[v] = 0;
      this.pba[v >>> 3] = this.pba[v >>> 3]! & ~(1 << (v & 7));
    }
  }

  // ---- delivery ------------------------------------------------------------------------

  /**
   * msix_notify: ignored for an unused or out-of-range vector; a masked vector gets its PBA
   * bit set; otherwise the message is sent. Returns the sink's answer (-1 when not sent).
   */
  notify(vector: number, caller = 'virtio_pci_notify'): number {
    const t = this.dev.trace;
    if (t.on) t.emit('msix.notify', 'msix_notify', caller, { dev: this.dev.name, vector });
    if (vector < 0 || vector >= this.vectors || this.used[vector] === 0) return -1;
    if (this.isMasked(vector)) {
      this.setPending(vector);
      return -1;
    }
    this.sent++;
    return this.dev.sendMsi(this.getMessage(vector), 'msix_notify');
  }

  // ---- mask transitions ----------------------------------------------------------------

  /** msix_fire_vector_notifier. */
  private fireNotifier(vector: number, isMasked: boolean): void {
    const n = this.notifiers;
    if (n === undefined) return;
    const t = this.dev.trace;
    if (t.on) t.emit('msix.fire_notifier', 'msix_fire_vector_notifier', 'msix_handle_mask_update', { dev: this.dev.name, vector, masked: isMasked ? 1 : 0 });
    if (isMasked) {
      n.release(vector);
      return;
    }
    const r = n.use(vector, this.getMessage(vector));
    // QEMU asserts here; the model reports it and goes on.
    if (r < 0 && t.on) t.emit('msix.notifier_error', 'msix_fire_vector_notifier', 'msix_handle_mask_update', { dev: this.dev.name, vector, ret: r });
  }

  /**
   * msix_handle_mask_update: on an effective mask change fire the notifier (release when
   * masked, use when unmasked); when unmasked with the pending bit set, clear it and
   * deliver the interrupt once.
   */
  handleMaskUpdate(vector: number, wasMasked: boolean): void {
    const isMasked = this.isMasked(vector);
    if (isMasked === wasMasked) return;
    const t = this.dev.trace;
    if (t.on) t.emit('msix.mask_update', 'msix_handle_mask_update', 'msix_table_mmio_write', { dev: this.dev.name, vector, masked: isMasked ? 1 : 0 });
    this.fireNotifier(vector, isMasked);
    if (!isMasked && this.isPending(vector)) {
      this.clearPending(vector);
      this.notify(vector, 'msix_handle_mask_update');
    }
  }

  private updateFunctionMasked(): void {
    const c = this.control;
    this.functionMasked = (c & Msix.ENABLE_MASK) === 0 || (c & Msix.MASKALL_MASK) !== 0;
  }

  /** msix_write_config: runs after every config write. */
  private writeConfig(offset: number, size: number): void {
    const ctl = this.capOffset + Msix.CONTROL_OFFSET;
    if (offset > ctl || offset + size <= ctl) return;
    const wasMasked = this.functionMasked;
    this.updateFunctionMasked();
    const t = this.dev.trace;
    if (t.on) t.emit('msix.write_config', 'msix_write_config', 'pci_default_write_config', { dev: this.dev.name, enabled: this.enabled ? 1 : 0, maskall: (this.control & Msix.MASKALL_MASK) !== 0 ? 1 : 0 });
    if (!this.enabled) return;
    this.dev.deassertIntx();
    if (this.functionMasked === wasMasked) return;
    for (let v = 0; v < this.vectors; v++) this.handleMaskUpdate(v, this.vectorMasked(v, wasMasked));
  }

  /** msix_table_mmio_write (4-byte accesses only). */
  tableWrite(offset: number, size: AccessSize, value: number): void {
    if (size !== 4 || offset % 4 !== 0 || offset >= this.table.length) return;
    const vector = (offset / Msix.ENTRY_SIZE) | 0;
    const wasMasked = this.isMasked(vector);
    const t = this.dev.trace;
    if (t.on) t.emit('msix.table_write', 'msix_table_mmio_write', 'memory_region_write_accessor', { dev: this.dev.name, vector, offset, value });
    this.tableView.setUint32(offset, value >>> 0, true);
    this.handleMaskUpdate(vector, wasMasked);
  }

  tableRead(offset: number, size: AccessSize): number {
    if (size !== 4 || offset % 4 !== 0 || offset >= this.table.length) return 0;
    return this.tableView.getUint32(offset, true);
  }

  /** msix_pba_mmio_read: poll the owner for the vectors this dword covers, then read. */
  pbaRead(offset: number, size: AccessSize): number {
    if (size !== 4 || offset % 4 !== 0 || offset >= this.pba.length) return 0;
    const n = this.notifiers;
    if (n?.poll !== undefined) {
      const start = offset * 8;
      const end = Math.min(start + size * 8, this.vectors);
      if (start < end) n.poll(start, end);
    }
    const v = (this.pba[offset]! | (this.pba[offset + 1]! << 8) | (this.pba[offset + 2]! << 16) | (this.pba[offset + 3]! << 24)) >>> 0;
    const t = this.dev.trace;
    if (t.on) t.emit('msix.pba_read', 'msix_pba_mmio_read', 'memory_region_read_accessor', { dev: this.dev.name, offset, value: v });
    return v;
  }

  // ---- notifiers -----------------------------------------------------------------------

  get hasNotifiers(): boolean {
    return this.notifiers !== undefined;
  }

  /**
   * msix_set_vector_notifiers: installs use/release/poll; when MSI-X is enabled and not
   * function-masked, calls `use` for every unmasked vector (undoing on failure); then
   * `poll(0, N)`. Throws a VirqError when `use` fails (nothing stays installed).
   */
  setVectorNotifiers(notifiers: MsixVectorNotifiers): void {
    if (this.notifiers !== undefined) {
      throw new VirqError(PciErrorCode.MsixNotifiersInstalled, `${this.dev.name} already has MSI-X vector notifiers; unset them first`);
    }
    this.notifiers = notifiers;
    const t0 = this.dev.trace;
    if (t0.on) t0.emit('msix.fire_notifier', 'msix_set_vector_notifiers', 'virtio_pci_set_guest_notifiers', { dev: this.dev.name, enabled: this.enabled ? 1 : 0 });
    if ((this.control & (Msix.ENABLE_MASK | Msix.MASKALL_MASK)) === Msix.ENABLE_MASK) {
      for (let v = 0; v < this.vectors; v++) {
        if (this.isMasked(v)) continue;
        const t = this.dev.trace;
        if (t.on) t.emit('msix.fire_notifier', 'msix_set_notifier_for_vector', 'msix_set_vector_notifiers', { dev: this.dev.name, vector: v, masked: 0 });
        const r = notifiers.use(v, this.getMessage(v));
        if (r < 0) {
          for (let u = v - 1; u >= 0; u--) if (!this.isMasked(u)) notifiers.release(u);
          this.notifiers = undefined;
          throw new VirqError(PciErrorCode.MsixNotifierFailed, `${this.dev.name}: the use notifier failed for MSI-X vector ${v} (errno ${-r}); nothing was installed`, { details: { vector: v, ret: r } });
        }
      }
    }
    notifiers.poll?.(0, this.vectors);
  }

  /** msix_unset_vector_notifiers: `release` for every unmasked vector, then removes them. */
  unsetVectorNotifiers(): void {
    const n = this.notifiers;
    if (n === undefined) return;
    if ((this.control & (Msix.ENABLE_MASK | Msix.MASKALL_MASK)) === Msix.ENABLE_MASK) {
      for (let v = 0; v < this.vectors; v++) if (!this.isMasked(v)) n.release(v);
    }
    this.notifiers = undefined;
  }

  // ---- reset / snapshot ----------------------------------------------------------------

  private maskAllEntries(): void {
    for (let v = 0; v < this.vectors; v++) {
      const wasMasked = this.isMasked(v);
      const o = v * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL;
      this.table[o] = this.table[o]! | Msix.ENTRY_CTRL_MASKBIT;
      this.handleMaskUpdate(v, wasMasked);
    }
  }

  /** msix_reset: clear the vectors' use, Enable/MaskAll, table and PBA, then mask every entry. */
  reset(): void {
    this.unuseAll();
    const c = this.dev.config;
    const ctl = this.capOffset + Msix.CONTROL_OFFSET;
    c.set8(ctl, c.get8(ctl) & ~(Msix.ENABLE_MASK | Msix.MASKALL_MASK));
    this.table.fill(0);
    this.pba.fill(0);
    this.updateFunctionMasked();
    this.maskAllEntries();
  }

  /** A message to program into a table entry, for tests and guest models. */
  static entryOf(address: bigint | number, data: number): MsiMessage {
    return msiMessage(address, data);
  }

  describe(vector: number): string {
    return `vector ${vector}: ${formatMsi(this.getMessage(vector))} ${this.entryMasked(vector) ? 'masked' : 'unmasked'}${this.isPending(vector) ? ' pending' : ''}`;
  }

  snapshot(): Snapshot<MsixState> {
    return { type: SNAPSHOT_TYPE, version: SNAPSHOT_VERSION, state: { table: [...this.table], pba: [...this.pba], used: [...this.used], control: this.control } };
  }

  /** Restores state; notifiers are not fired (the owner re-wires after a restore, like post_load). */
  restore(s: Snapshot<MsixState>): void {
    const st = checkSnapshot(s, SNAPSHOT_TYPE, SNAPSHOT_VERSION);
    if (st.table.length !== this.table.length || st.pba.length !== this.pba.length || st.used.length !== this.vectors) {
      throw new VirqError(PciErrorCode.SnapshotInvalid, `MSI-X snapshot is for a different table size (${st.used.length} vectors; this function has ${this.vectors})`);
    }
    this.table.set(st.table);
    this.pba.set(st.pba);
    this.used.set(st.used);
    const ctl = this.capOffset + Msix.CONTROL_OFFSET;
    this.dev.config.set8(ctl, st.control & (Msix.ENABLE_MASK | Msix.MASKALL_MASK) | (this.dev.config.get8(ctl) & ~(Msix.ENABLE_MASK | Msix.MASKALL_MASK)));
    this.updateFunctionMasked();
  }
}

class MsixTableRegion implements MmioRegion {
  readonly name: string;
  constructor(
    private readonly msix: MsixTable,
    readonly size: number,
  ) {
    this.name = `${msix.dev.name}-msix-table`;
  }
  read(offset: number, size: AccessSize): number {
    return this.msix.tableRead(offset, size);
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.msix.tableWrite(offset, size, value);
  }
}

class MsixPbaRegion implements MmioRegion {
  readonly name: string;
  constructor(
    private readonly msix: MsixTable,
    readonly size: number,
  ) {
    this.name = `${msix.dev.name}-msix-pba`;
  }
  read(offset: number, size: AccessSize): number {
    return this.msix.pbaRead(offset, size);
  }
  /** The PBA is read-only. */
  write(): void {}
}

class MsixBarRegion implements MmioRegion {
  constructor(
    readonly name: string,
    readonly size: number,
    private readonly msix: MsixTable,
    private readonly pbaOffset: number,
  ) {}
  read(offset: number, size: AccessSize): number {
    if (offset < this.msix.table.length) return this.msix.tableRead(offset, size);
    if (offset >= this.pbaOffset && offset < this.pbaOffset + this.msix.pba.length) return this.msix.pbaRead(offset - this.pbaOffset, size);
    return 0;
  }
  write(offset: number, size: AccessSize, value: number): void {
    if (offset < this.msix.table.length) this.msix.tableWrite(offset, size, value);
  }
}
