import { type IrqPin, type MsiMessage, type MsiSink, type SimContext, type Snapshot, type TraceChannel, VirqError, checkSnapshot, formatMsi } from '@virq/core';
import { PciErrorCode } from './errors.js';
import type { MmioRegion } from './mmio-region.js';
import { PCI_CONFIG_SPACE_SIZE, PciConfigSpace } from './pci-config-space.js';
import { PciBarFlag, PciCommand, PciReg, PciStatus } from './pci-regs.js';
import type { PciTraceEvent } from './pci-trace.js';

export interface PciDeviceInit {
  /** Name used in traces and errors (QEMU's device id, e.g. `virtio-net-pci.0`). */
  name: string;
  vendorId: number;
  deviceId: number;
  revision?: number;
  /** 24-bit class code: class << 16 | subclass << 8 | prog-if. */
  classCode: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** Interrupt pin: 0 none, 1 INTA … 4 INTD. Default 1. */
  interruptPin?: number;
  /** The wired line INTx drives (a PIC/IOAPIC pin, a GIC SPI). */
  intx?: IrqPin;
  /** Where MSI / MSI-X writes land (LAPIC bus, ITS). */
  msiSink?: MsiSink;
  /** 256 (conventional) or 4096 (PCIe). */
  configSize?: number;
}

/** One BAR as the device declares it (pci_register_bar). */
export interface PciBarInit {
  kind: 'mmio' | 'pio';
  /** Power of two; ≥ 16 for MMIO, ≥ 4 for I/O. */
  size: number;
  region: MmioRegion;
  is64?: boolean;
  prefetchable?: boolean;
}

export interface PciBar extends PciBarInit {
  readonly index: number;
  /** Where the BAR is mapped now (undefined: unmapped). */
  address: number | undefined;
}

export interface PciDeviceState {
  config: number[];
  irqState: boolean;
}

/** Called when a BAR is mapped, moved or unmapped (QEMU's memory listeners see this). */
export type BarMapListener = (bar: PciBar, oldAddress: number | undefined) => void;
/** Called after every guest config write (msi_write_config, msix_write_config, device hooks). */
export type ConfigWriteHook = (offset: number, size: number, value: number, oldCommand: number) => void;

/**
 * A PCI function: config space with header type 0, BARs, INTx through an `IrqPin`, and the
 * bus-master gate in front of MSI writes. Capabilities (MSI, MSI-X, vendor) are added by
 * their owners through `config.addCapability` and `addConfigWriteHook`.
 */
export class PciDevice {
  readonly name: string;
  readonly config: PciConfigSpace;
  readonly trace: TraceChannel<PciTraceEvent>;
  /** Bus number and devfn, set when attached to a bus. */
  bus = 0;
  devfn = 0;
  private readonly bars: (PciBar | undefined)[] = [];
  private readonly mapListeners: BarMapListener[] = [];
  private readonly writeHooks: ConfigWriteHook[] = [];
  private readonly intx: IrqPin | undefined;
  private msiSink: MsiSink | undefined;
  /** pci_set_irq's last level (irq_state). */
  private irqState = false;
  /** MSI writes dropped because bus mastering was off. */
  droppedMsis = 0;

  constructor(
    readonly ctx: SimContext,
    init: PciDeviceInit,
  ) {
    this.name = init.name;
    this.config = new PciConfigSpace(init.configSize ?? PCI_CONFIG_SPACE_SIZE);
    this.trace = ctx.trace.channel<PciTraceEvent>('pci');
    this.intx = init.intx;
    this.msiSink = init.msiSink;
    const c = this.config;
    c.set16(PciReg.VENDOR_ID, init.vendorId);
    c.set16(PciReg.DEVICE_ID, init.deviceId);
    c.set8(PciReg.REVISION_ID, init.revision ?? 0);
    c.set8(PciReg.CLASS_PROG, init.classCode & 0xff);
    c.set16(PciReg.CLASS_DEVICE, (init.classCode >>> 8) & 0xffff);
    c.set16(PciReg.SUBSYSTEM_VENDOR_ID, init.subsystemVendorId ?? 0);
    c.set16(PciReg.SUBSYSTEM_ID, init.subsystemId ?? 0);
    c.set8(PciReg.INTERRUPT_PIN, init.interruptPin ?? 1);
    // pci_init_wmask: command bits a guest may change, cache line, latency, interrupt line.
    c.setWmask16(PciReg.COMMAND, PciCommand.IO | PciCommand.MEMORY | PciCommand.MASTER | PciCommand.SERR | PciCommand.INTX_DISABLE);
    c.wmask[PciReg.CACHE_LINE_SIZE] = 0xff;
    c.wmask[PciReg.LATENCY_TIMER] = 0xff;
    c.wmask[PciReg.INTERRUPT_LINE] = 0xff;
  }

  /** PCI requester id: bus << 8 | devfn (the ITS DeviceID, KVM's devid). */
  get requesterId(): number {
    return ((this.bus & 0xff) << 8) | (this.devfn & 0xff);
  }

  get command(): number {
    return this.config.get16(PciReg.COMMAND);
  }

  get busMasterEnabled(): boolean {
    return (this.command & PciCommand.MASTER) !== 0;
  }

  setMsiSink(sink: MsiSink): void {
    this.msiSink = sink;
  }

  /** pci_register_bar. */
  registerBar(index: number, init: PciBarInit): PciBar {
    const { size, kind } = init;
    const is64 = kind === 'mmio' && init.is64 === true;
    if (!Number.isInteger(index) || index < 0 || index > 5 || (is64 && index === 5)) {
      throw new VirqError(PciErrorCode.BarInvalid, `BAR index must be 0..5 (0..4 for a 64-bit BAR), got ${index}`);
    }
    if (this.bars[index] !== undefined || (index > 0 && this.bars[index - 1]?.is64 === true)) {
      throw new VirqError(PciErrorCode.BarInvalid, `BAR ${index} of ${this.name} is already in use`);
    }
    if (!Number.isInteger(size) || size <= 0 || (size & (size - 1)) !== 0 || size < (kind === 'mmio' ? 16 : 4)) {
      throw new VirqError(PciErrorCode.BarInvalid, `BAR ${index} size must be a power of two ≥ ${kind === 'mmio' ? 16 : 4}, got ${size}`);
    }
    const bar: PciBar = { ...init, is64, index, address: undefined };
    this.bars[index] = bar;
    const off = PciReg.BASE_ADDRESS_0 + 4 * index;
    const low = kind === 'pio' ? PciBarFlag.SPACE_IO : (is64 ? PciBarFlag.MEM_TYPE_64 : 0) | (init.prefetchable ? PciBarFlag.MEM_PREFETCH : 0);
    this.config.set32(off, low);
    // Writable address bits: everything above the size (BAR sizing reads back ~(size-1)).
    const mask = kind === 'pio' ? ~(size - 1) & 0xfffffffc : size >= 2 ** 32 ? 0 : ~(size - 1) & 0xfffffff0;
    this.config.setWmask32(off, mask >>> 0);
    if (is64) this.config.setWmask32(off + 4, size > 2 ** 32 ? ~(size / 2 ** 32 - 1) >>> 0 : 0xffffffff);
    return bar;
  }

  bar(index: number): PciBar | undefined {
    return this.bars[index];
  }

  allBars(): PciBar[] {
    return this.bars.filter((b): b is PciBar => b !== undefined);
  }

  onBarMapped(listener: BarMapListener): () => void {
    this.mapListeners.push(listener);
    return () => {
      const i = this.mapListeners.indexOf(listener);
      if (i >= 0) this.mapListeners.splice(i, 1);
    };
  }

  addConfigWriteHook(hook: ConfigWriteHook): void {
    this.writeHooks.push(hook);
  }

  /** Guest config read (pci_default_read_config). */
  configRead(offset: number, size: number): number {
    return this.config.read(offset, size);
  }

  /**
   * Guest config write (pci_default_write_config): masked store, then BAR mapping and
   * INTx-disable updates when COMMAND or a BAR changed, then the capability hooks.
   */
  configWrite(offset: number, size: number, value: number): void {
    const oldCommand = this.command;
    this.config.write(offset, size, value);
    if (this.trace.on) this.trace.emit('pci.config_write', 'pci_default_write_config', 'pci_host_config_write_common', { dev: this.name, offset, size, value });
    const end = offset + size;
    if ((offset < PciReg.BASE_ADDRESS_0 + 24 && end > PciReg.BASE_ADDRESS_0) || (offset < PciReg.COMMAND + 2 && end > PciReg.COMMAND)) {
      this.updateMappings();
    }
    if ((oldCommand ^ this.command) & PciCommand.INTX_DISABLE) this.updateIrqDisabled();
    for (const h of this.writeHooks) h(offset, size, value, oldCommand);
  }

  /**
   * pci_set_irq: INTx level from the device; the pin follows unless COMMAND.INTX_DISABLE.
   * (`fn`: pci_device_deassert_intx calls pci_irq_handler, the function pci_set_irq ends in.)
   */
  setIrq(level: boolean, caller = 'virtio_pci_notify', fn = 'pci_set_irq'): void {
    if (this.trace.on) this.trace.emit('pci.set_irq', fn, caller, { dev: this.name, level: level ? 1 : 0 });
    if (level === this.irqState) return;
    this.irqState = level;
    const st = this.config.get16(PciReg.STATUS);
    this.config.set16(PciReg.STATUS, level ? st | PciStatus.INTERRUPT : st & ~PciStatus.INTERRUPT);
    if ((this.command & PciCommand.INTX_DISABLE) !== 0) return;
    this.intx?.setLevel(level);
  }

  /** The function's INTx output (irq_state), regardless of INTX_DISABLE. */
  get irqLevel(): boolean {
    return this.irqState;
  }

  /** pci_device_deassert_intx. */
  deassertIntx(caller = 'pci_device_deassert_intx'): void {
    this.setIrq(false, caller, 'pci_irq_handler');
  }

  /**
   * msi_send_message: a DWORD write of `data` to `address` by this function as bus master.
   * Dropped (as the bus-master address space is disabled) when COMMAND.MASTER is clear.
   */
  sendMsi(msg: MsiMessage, caller = 'msix_notify'): number {
    const m: MsiMessage = msg.requesterId === undefined ? { ...msg, requesterId: this.requesterId } : msg;
    if (!this.busMasterEnabled || this.msiSink === undefined) {
      this.droppedMsis++;
      if (this.trace.on) this.trace.emit('pci.msi_dropped', 'msi_send_message', caller, { dev: this.name, msg: formatMsi(m), reason: this.msiSink === undefined ? 'no-sink' : 'bus-master-off' });
      return -1;
    }
    if (this.trace.on) this.trace.emit('pci.msi_send', 'msi_send_message', caller, { dev: this.name, msg: formatMsi(m) });
    return this.msiSink.deliverMsi(m, this.ctx.scheduler.current);
  }

  /** Device reset (pci_do_device_reset): command cleared, BARs unmapped, INTx low. */
  resetConfig(): void {
    this.setIrq(false);
    this.config.set16(PciReg.COMMAND, 0);
    for (const b of this.allBars()) {
      const off = PciReg.BASE_ADDRESS_0 + 4 * b.index;
      this.config.set32(off, this.config.get32(off) & ~this.config.get32Wmask(off));
      if (b.is64) this.config.set32(off + 4, 0);
    }
    this.updateMappings();
  }

  /** Config space and INTx state as a versioned record (QEMU's vmstate_pci_device). */
  snapshot(): Snapshot<PciDeviceState> {
    return { type: 'pci.device', version: 1, state: { config: [...this.config.bytes], irqState: this.irqState } };
  }

  /** Puts config space back and re-derives BAR mappings and the INTx pin. */
  restore(s: Snapshot<PciDeviceState>): void {
    const st = checkSnapshot(s, 'pci.device', 1);
    if (st.config.length !== this.config.size) {
      throw new VirqError(PciErrorCode.SnapshotInvalid, `config space snapshot has ${st.config.length} bytes; ${this.name} has ${this.config.size}`);
    }
    this.config.bytes.set(st.config);
    this.irqState = st.irqState;
    this.updateMappings();
    this.updateIrqDisabled();
  }

  private updateIrqDisabled(): void {
    const disabled = (this.command & PciCommand.INTX_DISABLE) !== 0;
    this.intx?.setLevel(disabled ? false : this.irqState);
  }

  /** pci_bar_address: where the BAR decodes now, or undefined. */
  private barAddress(bar: PciBar): number | undefined {
    const off = PciReg.BASE_ADDRESS_0 + 4 * bar.index;
    const cmd = this.command;
    if (bar.kind === 'pio') {
      if ((cmd & PciCommand.IO) === 0) return undefined;
      const a = this.config.get32(off) & ~(bar.size - 1) & 0xfffffffc;
      return a === 0 || a + bar.size > 0x10000 ? undefined : a;
    }
    if ((cmd & PciCommand.MEMORY) === 0) return undefined;
    let a = (this.config.get32(off) & 0xfffffff0) >>> 0;
    if (bar.is64) a += this.config.get32(off + 4) * 2 ** 32;
    a -= a % bar.size;
    if (a === 0 || a + bar.size > (bar.is64 ? 2 ** 52 : 2 ** 32)) return undefined;
    return a;
  }

  /** pci_update_mappings. */
  private updateMappings(): void {
    for (const bar of this.allBars()) {
      const next = this.barAddress(bar);
      if (next === bar.address) continue;
      const old = bar.address;
      bar.address = next;
      if (this.trace.on) this.trace.emit('pci.bar_map', 'pci_update_mappings', 'pci_default_write_config', { dev: this.name, bar: bar.index, addr: next ?? -1, old: old ?? -1 });
      for (const l of this.mapListeners) l(bar, old);
    }
  }
}
