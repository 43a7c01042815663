import { type Actor, type GuestMemory, type MsiMessage, type SimContext, type TraceChannel, VirqError, msiAddress } from '@virq/core';
import { Msix, type PciAccess, PciCapId, PciCommand, PciReg } from '@virq/pci';
import { type VirtioRingEvent, type VirtqueueDriver, createVirtqueueDriver, packedRingLayout, splitRingLayout } from '@virq/virtio-ring';
import { VirtioPciErrorCode } from './errors.js';
import type { GuestPageAllocator } from './guest-page-allocator.js';
import { CommonCfg, LegacyReg, VIRTIO_NO_VECTOR, VirtioFeature, VirtioIsr, VirtioPciCapType, VirtioStatus, bit } from './virtio-constants.js';
import type { VirtioTraceEvent } from './virtio-trace.js';

/** How find_vqs may route interrupts (Linux vp_find_vqs tries them in this order). */
export type GuestIrqMode = 'msix-per-vq' | 'msix-shared' | 'intx';

export interface GuestVirtioPciInit {
  access: PciAccess;
  bdf: number;
  mem: GuestMemory;
  alloc: GuestPageAllocator;
  /** The vCPU the driver's code runs on (for traces). */
  vcpu?: Actor;
  /** 'modern' (virtio_pci_modern.c) or 'legacy' (virtio_pci_legacy.c over I/O BAR 0). */
  transport?: 'modern' | 'legacy';
  /**
   * The MSI message the guest's irq domain composes for MSI-X table entry `entry`
   * (x86 default: destination APIC 0, fixed, edge, vector 0x41 + entry).
   */
  composeMsi?: (entry: number) => MsiMessage;
}

export interface GuestVqInfo {
  name: string;
  /** vq->callback; a queue without one gets no MSI-X vector (as the ctrl vq). */
  callback?: () => void;
  /** Queue size to use (≤ the device's maximum). */
  size?: number;
}

interface Cap {
  bar: number;
  offset: number;
  length: number;
  at: number;
}

/**
 * The Linux virtio PCI driver (drivers/virtio/virtio_pci_{common,modern,legacy}.c) as a
 * model that talks to a device only through config cycles, MMIO / port I/O and ring memory:
 * probe (capability walk), the status handshake and feature negotiation, find_vqs with
 * per-queue or shared MSI-X vectors or INTx, vp_notify, and the interrupt handlers
 * vp_vring_interrupt / vp_config_changed / vp_interrupt.
 */
export class GuestVirtioPci {
  readonly access: PciAccess;
  readonly bdf: number;
  readonly mem: GuestMemory;
  readonly trace: TraceChannel<VirtioTraceEvent>;
  readonly ringTrace: TraceChannel<VirtioRingEvent>;
  readonly transport: 'modern' | 'legacy';
  readonly vqs: VirtqueueDriver<unknown>[] = [];
  readonly vqNames: string[] = [];
  private readonly alloc: GuestPageAllocator;
  private readonly composeMsi: (entry: number) => MsiMessage;
  private common = 0;
  private isr = 0;
  private deviceCfg = 0;
  private notifyBase = 0;
  private notifyMult = 0;
  private ioBase = 0;
  private msixCap = 0;
  private msixTable = 0;
  private readonly notifyAddr: number[] = [];
  private readonly callbacks: (((() => void) | undefined))[] = [];
  /** Features both sides agreed on. */
  features = 0n;
  irqMode: GuestIrqMode | undefined;
  /** MSI-X entry → what it serves ('config', a queue index, or 'queues' when shared). */
  readonly msixEntries: ('config' | 'queues' | number)[] = [];
  /** Per MSI-X entry, the message programmed. */
  readonly msixMessages: MsiMessage[] = [];
  configChanges = 0;
  /** Interrupts this function took that found nothing to do (IRQ_NONE). */
  spurious = 0;
  onConfigChanged: (() => void) | undefined;

  constructor(
    readonly ctx: SimContext,
    init: GuestVirtioPciInit,
  ) {
    this.access = init.access;
    this.bdf = init.bdf;
    this.mem = init.mem;
    this.alloc = init.alloc;
    this.transport = init.transport ?? 'modern';
    this.composeMsi = init.composeMsi ?? ((e) => ({ addressLo: 0xfee00000, addressHi: 0, data: 0x41 + e }));
    this.trace = ctx.trace.channel<VirtioTraceEvent>('virtio-guest');
    this.ringTrace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  }

  private cfg8(o: number): number {
    return this.access.configRead(this.bdf, o, 1);
  }

  private barAddress(bar: number): number {
    const lo = this.access.configRead(this.bdf, PciReg.BASE_ADDRESS_0 + 4 * bar, 4);
    if ((lo & 1) === 1) return (lo & 0xfffffffc) >>> 0;
    let a = (lo & 0xfffffff0) >>> 0;
    if ((lo & 0x6) === 0x4) a += this.access.configRead(this.bdf, PciReg.BASE_ADDRESS_0 + 4 * bar + 4, 4) * 2 ** 32;
    return a;
  }

  /** virtio_pci_find_capability: the first vendor cap of `cfgType` whose BAR is valid. */
  private findCap(cfgType: number): Cap | undefined {
    let p = this.cfg8(PciReg.CAPABILITY_LIST) & ~3;
    let guard = 0;
    while (p !== 0 && guard++ < 48) {
      if (this.cfg8(p) === PciCapId.VNDR && this.cfg8(p + 3) === cfgType) {
        const bar = this.cfg8(p + 4);
        if (bar <= 5) return { bar, offset: this.access.configRead(this.bdf, p + 8, 4), length: this.access.configRead(this.bdf, p + 12, 4), at: p };
      }
      p = this.cfg8(p + 1) & ~3;
    }
    return undefined;
  }

  private findMsixCap(): number {
    let p = this.cfg8(PciReg.CAPABILITY_LIST) & ~3;
    let guard = 0;
    while (p !== 0 && guard++ < 48) {
      if (this.cfg8(p) === PciCapId.MSIX) return p;
      p = this.cfg8(p + 1) & ~3;
    }
    return 0;
  }

  private emit(kind: VirtioTraceEvent['kind'], fn: string, caller: string, args: Record<string, number | string | boolean>): void {
    if (this.trace.on) this.trace.emit(kind, fn, caller, args);
  }

  // ---- register access -----------------------------------------------------------------

  private r8(o: number): number {
    return this.transport === 'modern' ? this.access.mmioRead(this.common + o, 1) : this.access.pioRead(this.ioBase + o, 1);
  }
  private r16(o: number): number {
    return this.transport === 'modern' ? this.access.mmioRead(this.common + o, 2) : this.access.pioRead(this.ioBase + o, 2);
  }
  private r32(o: number): number {
    return this.transport === 'modern' ? this.access.mmioRead(this.common + o, 4) : this.access.pioRead(this.ioBase + o, 4);
  }
  private w8(o: number, v: number): void {
    if (this.transport === 'modern') this.access.mmioWrite(this.common + o, 1, v);
    else this.access.pioWrite(this.ioBase + o, 1, v);
  }
  private w16(o: number, v: number): void {
    if (this.transport === 'modern') this.access.mmioWrite(this.common + o, 2, v);
    else this.access.pioWrite(this.ioBase + o, 2, v);
  }
  private w32(o: number, v: number): void {
    if (this.transport === 'modern') this.access.mmioWrite(this.common + o, 4, v);
    else this.access.pioWrite(this.ioBase + o, 4, v);
  }

  get status(): number {
    return this.r8(this.transport === 'modern' ? CommonCfg.STATUS : LegacyReg.STATUS);
  }

  setStatus(v: number): void {
    this.w8(this.transport === 'modern' ? CommonCfg.STATUS : LegacyReg.STATUS, v);
  }

  /** vp_reset: write 0, then read until the device reports 0. */
  reset(): void {
    this.setStatus(0);
    let guard = 0;
    while (this.status !== 0 && guard++ < 1000);
  }

  /** Device config read (virtio_cread*). */
  readConfig(offset: number, size: 1 | 2 | 4): number {
    if (this.transport === 'modern') return this.access.mmioRead(this.deviceCfg + offset, size);
    const base = this.ioBase + (this.msixEnabled ? LegacyReg.CONFIG_MSIX : LegacyReg.CONFIG_NO_MSIX);
    return this.access.pioRead(base + offset, size);
  }

  get configGeneration(): number {
    return this.transport === 'modern' ? this.r8(CommonCfg.CFGGENERATION) : 0;
  }

  private get msixEnabled(): boolean {
    return this.msixCap !== 0 && (this.access.configRead(this.bdf, this.msixCap + Msix.FLAGS, 2) & Msix.FLAGS_ENABLE) !== 0;
  }

  // ---- probe ---------------------------------------------------------------------------

  /**
   * virtio_pci_probe + virtio_dev_probe up to FEATURES_OK: enable the function, find the
   * capabilities, reset, ACKNOWLEDGE, DRIVER, negotiate `wanted` features, FEATURES_OK and
   * check it stuck. Throws a VirqError (after setting FAILED) when the device refuses.
   */
  probe(wanted: bigint): bigint {
    const id = this.access.configRead(this.bdf, PciReg.VENDOR_ID, 4);
    this.emit('guest.probe', 'virtio_pci_probe', 'local_pci_probe', { bdf: this.bdf, id: `0x${id.toString(16)}` });
    if ((id & 0xffff) !== 0x1af4) throw new VirqError(VirtioPciErrorCode.DriverProbe, `no virtio device at ${this.bdf.toString(16)} (vendor 0x${(id & 0xffff).toString(16)})`, { errno: 'ENODEV' });
    // pci_enable_device + pci_set_master.
    const cmd = this.access.configRead(this.bdf, PciReg.COMMAND, 2);
    this.access.configWrite(this.bdf, PciReg.COMMAND, 2, cmd | PciCommand.IO | PciCommand.MEMORY | PciCommand.MASTER);
    this.msixCap = this.findMsixCap();
    if (this.msixCap !== 0) {
      const t = this.access.configRead(this.bdf, this.msixCap + Msix.TABLE, 4);
      this.msixTable = this.barAddress(t & Msix.BIR_MASK) + ((t & ~Msix.BIR_MASK) >>> 0);
    }
    if (this.transport === 'modern') {
      const common = this.findCap(VirtioPciCapType.COMMON_CFG);
      const notify = this.findCap(VirtioPciCapType.NOTIFY_CFG);
      const isr = this.findCap(VirtioPciCapType.ISR_CFG);
      const dev = this.findCap(VirtioPciCapType.DEVICE_CFG);
      if (common === undefined || notify === undefined || isr === undefined) {
        throw new VirqError(VirtioPciErrorCode.DriverProbe, 'virtio_pci_modern_probe: missing capabilities (leaving for legacy driver)', { errno: 'ENODEV' });
      }
      this.common = this.barAddress(common.bar) + common.offset;
      this.isr = this.barAddress(isr.bar) + isr.offset;
      this.deviceCfg = dev === undefined ? 0 : this.barAddress(dev.bar) + dev.offset;
      this.notifyBase = this.barAddress(notify.bar) + notify.offset;
      this.notifyMult = this.access.configRead(this.bdf, notify.at + 16, 4);
    } else {
      this.ioBase = this.barAddress(0);
    }
    this.reset();
    this.setStatus(VirtioStatus.ACKNOWLEDGE);
    this.setStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    let device: bigint;
    if (this.transport === 'modern') {
      this.w32(CommonCfg.DFSELECT, 0);
      const lo = this.r32(CommonCfg.DF);
      this.w32(CommonCfg.DFSELECT, 1);
      const hi = this.r32(CommonCfg.DF);
      device = BigInt(lo >>> 0) | (BigInt(hi >>> 0) << 32n);
      if ((device & bit(VirtioFeature.VERSION_1)) === 0n) {
        this.setStatus(this.status | VirtioStatus.FAILED);
        throw new VirqError(VirtioPciErrorCode.DriverProbe, 'device does not offer VIRTIO_F_VERSION_1 on the modern interface', { errno: 'ENODEV' });
      }
    } else {
      device = BigInt(this.r32(LegacyReg.HOST_FEATURES) >>> 0);
    }
    const driverSupports = this.transport === 'modern' ? wanted | bit(VirtioFeature.VERSION_1) : wanted & 0xffffffffn;
    this.features = device & driverSupports;
    if (this.transport === 'modern') {
      this.w32(CommonCfg.GFSELECT, 0);
      this.w32(CommonCfg.GF, Number(this.features & 0xffffffffn));
      this.w32(CommonCfg.GFSELECT, 1);
      this.w32(CommonCfg.GF, Number(this.features >> 32n));
      this.setStatus(this.status | VirtioStatus.FEATURES_OK);
      if ((this.status & VirtioStatus.FEATURES_OK) === 0) {
        this.setStatus(this.status | VirtioStatus.FAILED);
        throw new VirqError(VirtioPciErrorCode.DriverProbe, 'virtio: device refuses features (FEATURES_OK did not stick)', { errno: 'ENODEV' });
      }
    } else {
      this.w32(LegacyReg.GUEST_FEATURES, Number(this.features));
    }
    return this.features;
  }

  // ---- queues --------------------------------------------------------------------------

  /**
   * vp_find_vqs: tries `modes` in order (default per-vq MSI-X, shared MSI-X, INTx). For
   * MSI-X: enable with Function Mask, program every entry masked, clear Function Mask,
   * then set up each queue (queue_select, size, ring addresses, vector read back) and
   * unmask the vectors (request_irq); finally enable every queue.
   */
  findVqs(infos: readonly GuestVqInfo[], modes: readonly GuestIrqMode[] = ['msix-per-vq', 'msix-shared', 'intx']): GuestIrqMode {
    let lastErr: unknown;
    for (const mode of modes) {
      if (mode !== 'intx' && this.msixCap === 0) continue;
      try {
        this.setupVqs(infos, mode);
        this.irqMode = mode;
        this.emit('guest.find_vqs', 'vp_find_vqs', 'vp_modern_find_vqs', { mode, nvqs: infos.length });
        return mode;
      } catch (e) {
        lastErr = e;
        this.delVqs();
      }
    }
    throw new VirqError(VirtioPciErrorCode.DriverProbe, `vp_find_vqs failed in every interrupt mode (${modes.join(', ')}): ${(lastErr as Error | undefined)?.message ?? 'no mode allowed'}`, { errno: 'EBUSY' });
  }

  private delVqs(): void {
    this.vqs.length = 0;
    this.vqNames.length = 0;
    this.callbacks.length = 0;
    this.notifyAddr.length = 0;
    this.msixEntries.length = 0;
    this.msixMessages.length = 0;
    if (this.msixCap !== 0) this.access.configWrite(this.bdf, this.msixCap + Msix.FLAGS, 2, 0);
  }

  private setupVqs(infos: readonly GuestVqInfo[], mode: GuestIrqMode): void {
    const withCb = infos.filter((i) => i.callback !== undefined).length;
    const nvectors = mode === 'msix-per-vq' ? 1 + withCb : mode === 'msix-shared' ? 2 : 0;
    if (nvectors > 0) {
      const tableSize = (this.access.configRead(this.bdf, this.msixCap + Msix.FLAGS, 2) & Msix.FLAGS_QSIZE) + 1;
      if (nvectors > tableSize) throw new VirqError(VirtioPciErrorCode.DriverProbe, `needs ${nvectors} MSI-X vectors, device has ${tableSize}`, { errno: 'ENOSPC' });
      // msix_capability_init: Enable + Function Mask, entries masked and programmed, then unmask function.
      this.access.configWrite(this.bdf, this.msixCap + Msix.FLAGS, 2, Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL);
      for (let e = 0; e < nvectors; e++) {
        const msg = this.composeMsi(e);
        const base = this.msixTable + e * Msix.ENTRY_SIZE;
        this.access.mmioWrite(base + Msix.ENTRY_VECTOR_CTRL, 4, Msix.ENTRY_CTRL_MASKBIT);
        this.access.mmioWrite(base + Msix.ENTRY_LOWER_ADDR, 4, msg.addressLo);
        this.access.mmioWrite(base + Msix.ENTRY_UPPER_ADDR, 4, msg.addressHi);
        this.access.mmioWrite(base + Msix.ENTRY_DATA, 4, msg.data);
        this.msixMessages.push(msg);
      }
      this.access.configWrite(this.bdf, this.msixCap + Msix.FLAGS, 2, Msix.FLAGS_ENABLE);
      this.msixEntries.push('config');
      if (mode === 'msix-shared') this.msixEntries.push('queues');
      // Config vector (vp_modern_config_vector), read back.
      const cv = this.setConfigVector(0);
      if (cv === VIRTIO_NO_VECTOR) throw new VirqError(VirtioPciErrorCode.DriverProbe, 'config vector refused', { errno: 'EBUSY' });
    }
    let nextVec = 1;
    infos.forEach((info, i) => {
      let vector = VIRTIO_NO_VECTOR;
      if (mode === 'msix-per-vq' && info.callback !== undefined) {
        vector = nextVec++;
        this.msixEntries.push(i);
      } else if (mode === 'msix-shared' && info.callback !== undefined) {
        vector = 1;
      }
      this.setupVq(i, info, vector);
    });
    // request_irq → unmask every entry in use.
    for (let e = 0; e < nvectors; e++) this.access.mmioWrite(this.msixTable + e * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL, 4, 0);
    if (this.transport === 'modern') {
      // "Select and activate all queues. Has to be done last."
      for (let i = 0; i < infos.length; i++) {
        this.w16(CommonCfg.Q_SELECT, i);
        this.w16(CommonCfg.Q_ENABLE, 1);
      }
    }
  }

  private setConfigVector(v: number): number {
    if (this.transport === 'modern') {
      this.w16(CommonCfg.MSIX, v);
      return this.r16(CommonCfg.MSIX);
    }
    this.w16(LegacyReg.MSI_CONFIG_VECTOR, v);
    return this.r16(LegacyReg.MSI_CONFIG_VECTOR);
  }

  /** vp_setup_vq + setup_vq (modern or legacy). */
  private setupVq(index: number, info: GuestVqInfo, vector: number): void {
    const modern = this.transport === 'modern';
    this.w16(modern ? CommonCfg.Q_SELECT : LegacyReg.QUEUE_SEL, index);
    const max = this.r16(modern ? CommonCfg.Q_SIZE : LegacyReg.QUEUE_NUM);
    if (max === 0 || (modern && this.r16(CommonCfg.Q_ENABLE) !== 0)) throw new VirqError(VirtioPciErrorCode.DriverProbe, `queue ${index} is unavailable (size ${max})`, { errno: 'ENOENT' });
    const size = modern ? Math.min(max, info.size ?? max) : max;
    const align = modern ? 64 : LegacyReg.VRING_ALIGN;
    // vring_create_virtqueue: a packed ring when VIRTIO_F_RING_PACKED was negotiated.
    const packed = modern && (this.features & bit(VirtioFeature.RING_PACKED)) !== 0n;
    const probe = packed ? packedRingLayout(size, 0) : splitRingLayout(size, 0, align);
    const base = this.alloc.alloc(probe.totalBytes + align, Math.max(align, 4096));
    const layout = packed ? packedRingLayout(size, base) : splitRingLayout(size, base, align);
    if (modern) {
      this.w16(CommonCfg.Q_SIZE, size);
      this.w32(CommonCfg.Q_DESCLO, layout.desc % 2 ** 32);
      this.w32(CommonCfg.Q_DESCHI, Math.floor(layout.desc / 2 ** 32));
      this.w32(CommonCfg.Q_AVAILLO, layout.driver % 2 ** 32);
      this.w32(CommonCfg.Q_AVAILHI, Math.floor(layout.driver / 2 ** 32));
      this.w32(CommonCfg.Q_USEDLO, layout.device % 2 ** 32);
      this.w32(CommonCfg.Q_USEDHI, Math.floor(layout.device / 2 ** 32));
      const off = this.r16(CommonCfg.Q_NOFF);
      this.notifyAddr[index] = this.notifyBase + off * this.notifyMult;
    } else {
      this.w32(LegacyReg.QUEUE_PFN, layout.desc / 4096);
      this.notifyAddr[index] = this.ioBase + LegacyReg.QUEUE_NOTIFY;
    }
    if (vector !== VIRTIO_NO_VECTOR) {
      this.w16(modern ? CommonCfg.Q_MSIX : LegacyReg.MSI_QUEUE_VECTOR, vector);
      if (this.r16(modern ? CommonCfg.Q_MSIX : LegacyReg.MSI_QUEUE_VECTOR) === VIRTIO_NO_VECTOR) {
        throw new VirqError(VirtioPciErrorCode.DriverProbe, `queue ${index}: MSI-X vector ${vector} refused`, { errno: 'EBUSY' });
      }
    }
    const vq = createVirtqueueDriver<unknown>(this.mem, {
      desc: layout.desc,
      driver: layout.driver,
      device: layout.device,
      size,
      features: this.features,
      index,
      trace: this.ringTrace,
      notify: () => this.vpNotify(index),
      ...(info.callback === undefined ? {} : { callback: info.callback }),
    });
    this.vqs[index] = vq;
    this.vqNames[index] = info.name;
    this.callbacks[index] = info.callback;
  }

  /** virtio_device_ready: DRIVER_OK. */
  ready(): void {
    this.setStatus(this.status | VirtioStatus.DRIVER_OK);
  }

  /** vp_notify: a 16-bit write of the queue index to its notify address. */
  vpNotify(index: number): boolean {
    const a = this.notifyAddr[index]!;
    this.emit('guest.notify', 'vp_notify', 'virtqueue_notify', { queue: index, addr: a });
    if (this.transport === 'modern') this.access.mmioWrite(a, 2, index);
    else this.access.pioWrite(a, 2, index);
    return true;
  }

  // ---- interrupts ----------------------------------------------------------------------

  /** The MSI-X entry whose programmed message has this address/data, if any. */
  entryForMessage(msg: MsiMessage): number | undefined {
    const i = this.msixMessages.findIndex((m) => m.data === msg.data && msiAddress(m) === msiAddress(msg));
    return i < 0 ? undefined : i;
  }

  /** The guest took MSI-X entry `entry`'s interrupt. Returns IRQ_HANDLED (true) / IRQ_NONE. */
  msixInterrupt(entry: number): boolean {
    const what = this.msixEntries[entry];
    // A per-queue vector's handler is vring_interrupt itself (the ring traces it).
    if (typeof what !== 'number') this.emit('guest.interrupt', what === 'config' ? 'vp_config_changed' : 'vp_vring_interrupt', '__handle_irq_event_percpu', { entry });
    if (what === 'config') {
      this.configChanged();
      return true;
    }
    if (what === 'queues') return this.vringInterruptAll();
    if (typeof what === 'number') {
      const r = this.vqs[what]!.interrupt();
      if (!r) this.spurious++;
      return r;
    }
    this.spurious++;
    return false;
  }

  /** vp_interrupt (INTx): read ISR (clears it and deasserts the line), then config / queues. */
  intxInterrupt(): boolean {
    this.emit('guest.interrupt', 'vp_interrupt', '__handle_irq_event_percpu', { bdf: this.bdf });
    const isr = this.transport === 'modern' ? this.access.mmioRead(this.isr, 1) : this.access.pioRead(this.ioBase + LegacyReg.ISR, 1);
    if (isr === 0) {
      this.spurious++;
      return false;
    }
    if ((isr & VirtioIsr.CONFIG) !== 0) this.configChanged();
    return this.vringInterruptAll() || (isr & VirtioIsr.CONFIG) !== 0;
  }

  /** vp_vring_interrupt: every queue's vring_interrupt. */
  private vringInterruptAll(): boolean {
    let handled = false;
    for (const vq of this.vqs) if (vq.interrupt()) handled = true;
    if (!handled) this.spurious++;
    return handled;
  }

  private configChanged(): void {
    this.configChanges++;
    this.emit('guest.config_changed', 'virtio_config_changed', 'vp_config_changed', { generation: this.configGeneration });
    this.onConfigChanged?.();
  }
}
