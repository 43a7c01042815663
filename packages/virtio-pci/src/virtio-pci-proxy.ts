import { EventFd, type IrqPin, type KvmRoutingTable, type MsiMessage, type MsiSink, type SimContext, type Snapshot, type TraceChannel, type VmInterruptApi, VirqError, checkSnapshot, formatMsi } from '@virq/core';
import { type AccessSize, CompositeRegion, type MmioRegion, type MsixState, MsixTable, type PciBar, PciCapId, PciCommand, PciDevice, type PciDeviceState, PciReg } from '@virq/pci';
import { VirtioPciErrorCode } from './errors.js';
import {
  CommonCfg,
  LegacyReg,
  ModernBarLayout,
  VIRTIO_NO_VECTOR,
  VIRTIO_PCI_VENDOR_ID,
  VIRTIO_QUEUE_MAX,
  VirtioDeviceId,
  VirtioFeature,
  VirtioPciCapType,
  VirtioStatus,
  bit,
} from './virtio-constants.js';
import type { VirtioBusTransport, VirtioDevice, VirtioDeviceState } from './virtio-device.js';
import type { VirtioTraceEvent } from './virtio-trace.js';
import type { VirtQueue } from './virtqueue.js';

export interface VirtioPciProxyInit {
  device: VirtioDevice;
  /** The VM's interrupt ioctls; omit for a VM without KVM (TCG): no ioeventfd, no irqfd. */
  vm?: VmInterruptApi;
  /** QEMU's GSI routing bookkeeping (needed for irqfd on MSI routes). */
  routes?: KvmRoutingTable;
  msiSink?: MsiSink;
  intx?: IrqPin;
  /** MSI-X vectors (QEMU's `vectors`; default queues + 1). 0 disables MSI-X. */
  vectors?: number;
  /** Modern (virtio 1.x) interface in BAR 4 (default true). */
  modern?: boolean;
  /** Legacy I/O interface in BAR 0 (transitional device; default false). */
  legacy?: boolean;
  /** QEMU's `ioeventfd` property (default true): use ioeventfds when the VM has them. */
  ioeventfd?: boolean;
  /** KVM_CAP_IOEVENTFD_ANY_LENGTH ("fast MMIO"): len-0 ioeventfds without datamatch (default true). */
  fastMmio?: boolean;
  /** notify_off_multiplier (default 4, QEMU's virtio_pci_queue_mem_mult). */
  notifyOffMultiplier?: number;
}

/** QEMU's VirtIOIRQFD: one MSI route per vector shared by the queues that use it. */
interface VectorIrqfd {
  msg: MsiMessage | undefined;
  virq: number;
  users: number;
}

/** VirtIOPCIProxy's vmstate: PCI function, MSI-X, the device, and the feature-select windows. */
export interface VirtioPciProxyState {
  pci: Snapshot<PciDeviceState>;
  msix: Snapshot<MsixState> | null;
  device: Snapshot<VirtioDeviceState>;
  dfselect: number;
  gfselect: number;
  guestFeatures: [number, number];
}

const NOTIFY_CAP_LEN = 20;
const VIRTIO_CAP_LEN = 16;

/**
 * The virtio PCI proxy (QEMU's VirtIOPCIProxy): a PCI function that exposes a VirtioDevice
 * through the modern vendor capabilities (common / notify / ISR / device config in BAR 4),
 * optionally the legacy I/O BAR 0, and MSI-X in BAR 1 — and that wires QEMU's notifiers:
 * host notifiers as ioeventfds on the notify addresses, guest notifiers as irqfds on MSI
 * routes (or read by the main loop), with the MSI-X vector notifiers that move them.
 */
export class VirtioPciProxy implements VirtioBusTransport {
  readonly pci: PciDevice;
  readonly device: VirtioDevice;
  readonly msix: MsixTable | undefined;
  readonly trace: TraceChannel<VirtioTraceEvent>;
  readonly notifyOffMultiplier: number;
  readonly modern: boolean;
  readonly legacy: boolean;
  private readonly vm: VmInterruptApi | undefined;
  private readonly routes: KvmRoutingTable | undefined;
  private readonly useIoeventfd: boolean;
  private readonly fastMmio: boolean;
  private readonly bar4: CompositeRegion | undefined;
  private readonly notifyRegion: MmioRegion | undefined;
  private dfselect = 0;
  private gfselect = 0;
  private readonly guestFeaturesWin = [0, 0];
  private ioeventfdOn = false;
  /** virtio_device_grab_ioeventfd count (backends holding the host notifiers). */
  private grabbed = 0;
  /** Where each queue's ioeventfd is registered now. */
  private readonly ioeventfdAt = new Map<number, { addr: number; len: 0 | 1 | 2 | 4 | 8; datamatch?: number; space: 'pio' | 'mmio' }>();
  private vectorIrqfd: VectorIrqfd[] | undefined;
  /** Queues with guest notifiers (nvqs_with_notifiers). */
  nvqsWithNotifiers = 0;
  /** Whether the guest notifiers are currently consumed by irqfds. */
  guestNotifiersWithIrqfd = false;
  /** Queues whose host notifiers a backend (vhost) owns. */
  private readonly handedOver = new Set<number>();

  constructor(
    readonly ctx: SimContext,
    init: VirtioPciProxyInit,
  ) {
    const dev = init.device;
    this.device = dev;
    this.vm = init.vm;
    this.routes = init.routes;
    this.modern = init.modern ?? true;
    this.legacy = init.legacy ?? false;
    if (!this.modern && !this.legacy) {
      throw new VirqError(VirtioPciErrorCode.BadConfig, `${dev.name}: a virtio PCI device needs the modern or the legacy interface (set modern or legacy to true)`);
    }
    this.useIoeventfd = init.ioeventfd ?? true;
    this.fastMmio = init.fastMmio ?? true;
    this.notifyOffMultiplier = init.notifyOffMultiplier ?? 4;
    this.trace = ctx.trace.channel<VirtioTraceEvent>('virtio-pci');
    const classCode = dev.deviceId === VirtioDeviceId.NET ? 0x020000 : dev.deviceId === VirtioDeviceId.BLOCK ? 0x010000 : 0xff0000;
    const transitionalIds: Record<number, number> = { 1: 0x1000, 2: 0x1001 };
    const deviceIdPci = this.legacy ? (transitionalIds[dev.deviceId] ?? 0x1000 + dev.deviceId) : 0x1040 + dev.deviceId;
    this.pci = new PciDevice(ctx, {
      name: `${dev.name}-pci`,
      vendorId: VIRTIO_PCI_VENDOR_ID,
      deviceId: deviceIdPci,
      revision: this.legacy ? 0 : 1,
      classCode,
      subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
      subsystemId: this.legacy ? dev.deviceId : 0x1100,
      interruptPin: 1,
      ...(init.intx === undefined ? {} : { intx: init.intx }),
      ...(init.msiSink === undefined ? {} : { msiSink: init.msiSink }),
    });
    if (this.modern) {
      dev.hostFeatures |= bit(VirtioFeature.VERSION_1);
      const bar4 = new CompositeRegion(`${dev.name}-modern`, 0x4000);
      bar4.add(ModernBarLayout.COMMON, region('virtio-pci-common', ModernBarLayout.REGION_SIZE, (o, s) => this.commonRead(o, s), (o, s, v) => this.commonWrite(o, s, v)));
      bar4.add(ModernBarLayout.ISR, region('virtio-pci-isr', ModernBarLayout.REGION_SIZE, () => this.isrRead(), () => undefined));
      bar4.add(ModernBarLayout.DEVICE, region('virtio-pci-device', ModernBarLayout.REGION_SIZE, (o, s) => dev.readConfig(o, s), (o, s, v) => dev.writeConfig(o, s, v)));
      this.notifyRegion = region('virtio-pci-notify', ModernBarLayout.REGION_SIZE, () => 0, (o, s, v) => this.notifyWrite(o, s, v));
      bar4.add(ModernBarLayout.NOTIFY, this.notifyRegion);
      this.bar4 = bar4;
      this.pci.registerBar(4, { kind: 'mmio', size: 0x4000, is64: true, prefetchable: true, region: bar4 });
      this.addVirtioCap(VirtioPciCapType.COMMON_CFG, ModernBarLayout.COMMON, ModernBarLayout.REGION_SIZE);
      this.addVirtioCap(VirtioPciCapType.ISR_CFG, ModernBarLayout.ISR, ModernBarLayout.REGION_SIZE);
      this.addVirtioCap(VirtioPciCapType.DEVICE_CFG, ModernBarLayout.DEVICE, ModernBarLayout.REGION_SIZE);
      const n = this.addVirtioCap(VirtioPciCapType.NOTIFY_CFG, ModernBarLayout.NOTIFY, ModernBarLayout.REGION_SIZE, NOTIFY_CAP_LEN);
      this.pci.config.set32(n + 16, this.notifyOffMultiplier);
    }
    if (this.legacy) {
      let size = 32;
      while (size < LegacyReg.CONFIG_MSIX + dev.config.length) size *= 2;
      this.pci.registerBar(0, { kind: 'pio', size, region: region('virtio-pci', size, (o, s) => this.legacyRead(o, s), (o, s, v) => this.legacyWrite(o, s, v)) });
    }
    const vectors = init.vectors ?? dev.queues.length + 1;
    this.msix = vectors > 0 ? MsixTable.exclusiveBar(this.pci, vectors, 1) : undefined;
    this.pci.onBarMapped((bar, old) => this.barMoved(bar, old));
    dev.transport = this;
  }

  /** virtio_pci_add_mem_cap: a struct virtio_pci_cap in config space. */
  private addVirtioCap(cfgType: number, offset: number, length: number, capLen = VIRTIO_CAP_LEN): number {
    const c = this.pci.config;
    const at = c.addCapability(PciCapId.VNDR, capLen);
    c.set8(at + 2, capLen);
    c.set8(at + 3, cfgType);
    c.set8(at + 4, 4);
    c.set8(at + 5, 0);
    c.set32(at + 8, offset);
    c.set32(at + 12, length);
    return at;
  }

  get msixEnabled(): boolean {
    return this.msix?.enabled ?? false;
  }

  // ---- common configuration (virtio_pci_common_read / _write) ---------------------------

  private get vq(): VirtQueue | undefined {
    return this.device.queues[this.device.queueSel];
  }

  private commonRead(offset: number, _size: AccessSize): number {
    const d = this.device;
    const q = this.vq;
    switch (offset) {
      case CommonCfg.DFSELECT:
        return this.dfselect;
      case CommonCfg.DF:
        return this.dfselect <= 1 ? Number((d.hostFeatures >> BigInt(32 * this.dfselect)) & 0xffffffffn) : 0;
      case CommonCfg.GFSELECT:
        return this.gfselect;
      case CommonCfg.GF:
        return this.gfselect <= 1 ? this.guestFeaturesWin[this.gfselect]! : 0;
      case CommonCfg.MSIX:
        return d.configVector;
      case CommonCfg.NUMQ: {
        let n = 0;
        d.queues.forEach((vq, i) => {
          if (vq.numDefault !== 0) n = i + 1;
        });
        return n;
      }
      case CommonCfg.STATUS:
        return d.status;
      case CommonCfg.CFGGENERATION:
        return d.generation;
      case CommonCfg.Q_SELECT:
        return d.queueSel;
      case CommonCfg.Q_SIZE:
        return q?.num ?? 0;
      case CommonCfg.Q_MSIX:
        return q?.vector ?? VIRTIO_NO_VECTOR;
      case CommonCfg.Q_ENABLE:
        return q?.enabled ? 1 : 0;
      case CommonCfg.Q_NOFF:
        return d.queueSel;
      case CommonCfg.Q_DESCLO:
        return (q?.desc ?? 0) % 2 ** 32;
      case CommonCfg.Q_DESCHI:
        return Math.floor((q?.desc ?? 0) / 2 ** 32);
      case CommonCfg.Q_AVAILLO:
        return (q?.driver ?? 0) % 2 ** 32;
      case CommonCfg.Q_AVAILHI:
        return Math.floor((q?.driver ?? 0) / 2 ** 32);
      case CommonCfg.Q_USEDLO:
        return (q?.device ?? 0) % 2 ** 32;
      case CommonCfg.Q_USEDHI:
        return Math.floor((q?.device ?? 0) / 2 ** 32);
      default:
        return 0;
    }
  }

  private commonWrite(offset: number, _size: AccessSize, val: number): void {
    const d = this.device;
    const q = this.vq;
    switch (offset) {
      case CommonCfg.DFSELECT:
        this.dfselect = val;
        break;
      case CommonCfg.GFSELECT:
        this.gfselect = val;
        break;
      case CommonCfg.GF:
        if (this.gfselect <= 1) {
          this.guestFeaturesWin[this.gfselect] = val >>> 0;
          d.setFeatures(BigInt(this.guestFeaturesWin[0]!) | (BigInt(this.guestFeaturesWin[1]!) << 32n));
        }
        break;
      case CommonCfg.MSIX:
        d.configVector = this.setVector(d.configVector, val);
        break;
      case CommonCfg.STATUS:
        this.writeStatus(val & 0xff, 'virtio_pci_common_write');
        break;
      case CommonCfg.Q_SELECT:
        if (val < VIRTIO_QUEUE_MAX) d.queueSel = val;
        break;
      case CommonCfg.Q_SIZE:
        if (q !== undefined && q.numDefault !== 0) q.num = val;
        break;
      case CommonCfg.Q_MSIX:
        if (q !== undefined) this.setQueueVector(q, val);
        break;
      case CommonCfg.Q_ENABLE:
        if (q === undefined) break;
        if (val === 1) {
          q.enabled = true;
          d.mapRing(q);
        } else {
          d.virtioError(VirtioPciErrorCode.QueueEnableValue, `wrong value for queue_enable ${val.toString(16)}`, { queue: q.index });
        }
        break;
      case CommonCfg.Q_DESCLO:
        if (q) q.desc = setLo(q.desc, val);
        break;
      case CommonCfg.Q_DESCHI:
        if (q) q.desc = setHi(q.desc, val);
        break;
      case CommonCfg.Q_AVAILLO:
        if (q) q.driver = setLo(q.driver, val);
        break;
      case CommonCfg.Q_AVAILHI:
        if (q) q.driver = setHi(q.driver, val);
        break;
      case CommonCfg.Q_USEDLO:
        if (q) q.device = setLo(q.device, val);
        break;
      case CommonCfg.Q_USEDHI:
        if (q) q.device = setHi(q.device, val);
        break;
      default:
        break;
    }
  }

  /**
   * The status write of both interfaces: ioeventfds stop before a status without
   * DRIVER_OK and start after one with it; status 0 resets the proxy.
   */
  private writeStatus(val: number, caller: string): void {
    const d = this.device;
    if ((val & VirtioStatus.DRIVER_OK) === 0) this.stopIoeventfd();
    d.setStatus(val, caller);
    if ((val & VirtioStatus.DRIVER_OK) !== 0) this.startIoeventfd();
    if (d.status === 0) this.reset();
  }

  /** msix_vector_unuse(old); msix_vector_use(new) or NO_VECTOR — the read-back tells the driver. */
  private setVector(old: number, val: number): number {
    const m = this.msix;
    if (old !== VIRTIO_NO_VECTOR) m?.vectorUnuse(old);
    if (m === undefined || m.vectorUse(val) < 0) return VIRTIO_NO_VECTOR;
    return val;
  }

  /** virtio_pci_set_vector for a queue: re-wires its irqfd when guest notifiers use irqfd. */
  private setQueueVector(q: VirtQueue, val: number): void {
    if (val === q.vector) return;
    const rewire = this.vectorIrqfd !== undefined && q.index < this.nvqsWithNotifiers;
    if (rewire && q.vector !== VIRTIO_NO_VECTOR) this.vectorReleaseOne(q);
    q.vector = this.setVector(q.vector, val);
    if (rewire && q.vector !== VIRTIO_NO_VECTOR) this.vectorUseOne(q);
  }

  /** virtio_pci_reset. */
  reset(): void {
    this.stopIoeventfd();
    this.device.reset();
    this.msix?.unuseAll();
    this.dfselect = 0;
    this.gfselect = 0;
    this.guestFeaturesWin[0] = 0;
    this.guestFeaturesWin[1] = 0;
  }

  // ---- snapshot ------------------------------------------------------------------------

  snapshot(): Snapshot<VirtioPciProxyState> {
    return {
      type: 'virtio.pci-proxy',
      version: 1,
      state: {
        pci: this.pci.snapshot(),
        msix: this.msix?.snapshot() ?? null,
        device: this.device.snapshot(),
        dfselect: this.dfselect,
        gfselect: this.gfselect,
        guestFeatures: [this.guestFeaturesWin[0]!, this.guestFeaturesWin[1]!],
      },
    };
  }

  /**
   * Restores a stopped proxy (virtio_pci_load_config + virtio_load): QEMU's own ioeventfds
   * are dropped and set up again from the restored status. A device with a vhost back end
   * re-runs its status handling afterwards (the VM state change in QEMU).
   */
  restore(snap: Snapshot<VirtioPciProxyState>): void {
    const st = checkSnapshot(snap, 'virtio.pci-proxy', 1);
    if ((st.msix === null) !== (this.msix === undefined)) {
      throw new VirqError(VirtioPciErrorCode.SnapshotInvalid, `${this.device.name}: snapshot ${st.msix === null ? 'has no' : 'has'} MSI-X but this proxy ${this.msix === undefined ? 'has none' : 'has it'}`);
    }
    this.stopIoeventfd();
    this.pci.restore(st.pci);
    if (st.msix !== null) this.msix!.restore(st.msix);
    this.device.restore(st.device);
    this.dfselect = st.dfselect;
    this.gfselect = st.gfselect;
    this.guestFeaturesWin[0] = st.guestFeatures[0];
    this.guestFeaturesWin[1] = st.guestFeatures[1];
    if ((this.device.status & VirtioStatus.DRIVER_OK) !== 0) this.startIoeventfd();
  }

  // ---- ISR, notify ---------------------------------------------------------------------

  /** ISR read: returns and clears the byte, and deasserts INTx. */
  private isrRead(): number {
    const v = this.device.isr;
    this.device.isr = 0;
    if (this.trace.on) this.trace.emit('virtio.isr_read', 'virtio_pci_isr_read', 'memory_region_read_accessor', { dev: this.device.name, isr: v });
    this.pci.setIrq(false, 'pci_irq_deassert');
    return v;
  }

  /** virtio_pci_notify_write: the queue is the address / multiplier (the value is not used). */
  private notifyWrite(offset: number, size: AccessSize, val: number): void {
    const mult = this.notifyOffMultiplier;
    const queue = mult === 0 ? 0 : Math.floor(offset / mult);
    if (this.trace.on) this.trace.emit('virtio.notify_write', 'virtio_pci_notify_write', 'memory_region_write_accessor', { dev: this.device.name, addr: offset, val, size });
    if (queue < VIRTIO_QUEUE_MAX) this.device.queueNotify(queue, 'virtio_pci_notify_write');
  }

  /** virtio_pci_notify: MSI-X when enabled, else INTx at ISR bit 0. */
  notify(vector: number, caller: string): void {
    if (this.trace.on) this.trace.emit('virtio.pci_notify', 'virtio_pci_notify', caller, { dev: this.device.name, vector, msix: this.msixEnabled });
    if (this.msixEnabled) {
      if (vector !== VIRTIO_NO_VECTOR) this.msix!.notify(vector, 'virtio_pci_notify');
    } else {
      this.pci.setIrq((this.device.isr & 1) !== 0);
    }
  }

  queryGuestNotifiers(): boolean {
    return this.msixEnabled;
  }

  /** The guest-physical (or port) address a driver writes to kick queue `n` (modern MMIO). */
  notifyAddress(n: number): number | undefined {
    const a = this.pci.bar(4)?.address;
    return a === undefined ? undefined : a + ModernBarLayout.NOTIFY + n * this.notifyOffMultiplier;
  }

  // ---- legacy I/O (virtio_pci_config_read / _write → virtio_ioport_*) -------------------

  private get legacyConfigOffset(): number {
    return this.msixEnabled ? LegacyReg.CONFIG_MSIX : LegacyReg.CONFIG_NO_MSIX;
  }

  private legacyRead(offset: number, size: AccessSize): number {
    const cfg = this.legacyConfigOffset;
    if (offset >= cfg) return this.device.readConfig(offset - cfg, size);
    const d = this.device;
    const q = this.vq;
    switch (offset) {
      case LegacyReg.HOST_FEATURES:
        return Number(d.hostFeatures & 0xffffffffn);
      case LegacyReg.GUEST_FEATURES:
        return Number(d.guestFeatures & 0xffffffffn);
      case LegacyReg.QUEUE_PFN:
        return Math.floor((q?.desc ?? 0) / 2 ** LegacyReg.QUEUE_ADDR_SHIFT);
      case LegacyReg.QUEUE_NUM:
        return q?.num ?? 0;
      case LegacyReg.QUEUE_SEL:
        return d.queueSel;
      case LegacyReg.STATUS:
        return d.status;
      case LegacyReg.ISR:
        return this.isrRead();
      case LegacyReg.MSI_CONFIG_VECTOR:
        return d.configVector;
      case LegacyReg.MSI_QUEUE_VECTOR:
        return q?.vector ?? VIRTIO_NO_VECTOR;
      default:
        return 0;
    }
  }

  private legacyWrite(offset: number, size: AccessSize, val: number): void {
    const cfg = this.legacyConfigOffset;
    if (offset >= cfg) {
      this.device.writeConfig(offset - cfg, size, val);
      return;
    }
    if (this.trace.on) this.trace.emit('virtio.notify_write', 'virtio_ioport_write', 'virtio_pci_config_write', { dev: this.device.name, addr: offset, val, size });
    const d = this.device;
    const q = this.vq;
    switch (offset) {
      case LegacyReg.GUEST_FEATURES:
        d.setFeatures(BigInt(val >>> 0) & ~bit(VirtioFeature.BAD_FEATURE));
        break;
      case LegacyReg.QUEUE_PFN: {
        if (val === 0) {
          this.reset();
          break;
        }
        if (q === undefined) break;
        const pa = val * 2 ** LegacyReg.QUEUE_ADDR_SHIFT;
        // virtio_queue_update_rings with the legacy 4096 alignment.
        q.desc = pa;
        q.driver = pa + 16 * q.num;
        q.device = Math.ceil((q.driver + 4 + 2 * q.num) / LegacyReg.VRING_ALIGN) * LegacyReg.VRING_ALIGN;
        d.mapRing(q);
        break;
      }
      case LegacyReg.QUEUE_SEL:
        if (val < VIRTIO_QUEUE_MAX) d.queueSel = val;
        break;
      case LegacyReg.QUEUE_NOTIFY:
        if (val < VIRTIO_QUEUE_MAX) d.queueNotify(val, 'virtio_ioport_write');
        break;
      case LegacyReg.STATUS:
        this.writeStatus(val & 0xff, 'virtio_ioport_write');
        // Linux before 2.6.34 drives the device without setting bus master: QEMU sets it.
        if ((val & VirtioStatus.DRIVER_OK) !== 0 && (this.pci.command & PciCommand.MASTER) === 0) {
          this.pci.configWrite(PciReg.COMMAND, 2, this.pci.command | PciCommand.MASTER);
        }
        break;
      case LegacyReg.MSI_CONFIG_VECTOR:
        d.configVector = this.setVector(d.configVector, val);
        break;
      case LegacyReg.MSI_QUEUE_VECTOR:
        if (q !== undefined) this.setQueueVector(q, val);
        break;
      default:
        break;
    }
  }

  // ---- host notifiers (ioeventfd) ------------------------------------------------------

  /** Whether kicks arrive on ioeventfds now. */
  ioeventfdStarted(): boolean {
    return this.ioeventfdOn;
  }

  /** Where an ioeventfd for queue n goes (virtio_pci_ioeventfd_assign). */
  private ioeventfdSite(n: number): { addr: number; len: 0 | 2; datamatch?: number; space: 'pio' | 'mmio' } | undefined {
    if (this.modern) {
      const a = this.notifyAddress(n);
      if (a === undefined) return undefined;
      return this.fastMmio ? { addr: a, len: 0, space: 'mmio' } : { addr: a, len: 2, datamatch: n, space: 'mmio' };
    }
    const io = this.pci.bar(0)?.address;
    return io === undefined ? undefined : { addr: io + LegacyReg.QUEUE_NOTIFY, len: 2, datamatch: n, space: 'pio' };
  }

  /** Whether the VM and the `ioeventfd` property allow ioeventfds (virtio_bus_ioeventfd_enabled). */
  get ioeventfdEnabled(): boolean {
    return this.useIoeventfd && this.vm !== undefined && this.vm.ioeventfdCapable;
  }

  /**
   * virtio_pci_start_ioeventfd → virtio_bus_start_ioeventfd: unless a backend grabbed the
   * notifiers, every queue gets an EventFd registered with KVM_IOEVENTFD on its notify
   * address, read by the main loop (virtio_queue_host_notifier_read), and set once to pick
   * up requests already queued. Nothing happens without ioeventfd support.
   */
  startIoeventfd(): void {
    if (this.ioeventfdOn || !this.ioeventfdEnabled) return;
    if (this.grabbed === 0) this.startIoeventfdImpl();
    this.ioeventfdOn = true;
  }

  /** virtio_pci_stop_ioeventfd. */
  stopIoeventfd(): void {
    if (!this.ioeventfdOn) return;
    if (this.grabbed === 0) this.stopIoeventfdImpl();
    this.ioeventfdOn = false;
  }

  /** virtio_device_start_ioeventfd_impl. */
  private startIoeventfdImpl(): void {
    for (const vq of this.device.queues) if (vq.num !== 0) this.setHostNotifier(vq, true);
    for (const vq of this.device.queues) {
      if (vq.num === 0) continue;
      this.attachHostHandler(vq);
      vq.hostNotifier?.tryWrite(1);
    }
  }

  /** virtio_device_stop_ioeventfd_impl: pending kicks are processed before the notifiers go. */
  private stopIoeventfdImpl(): void {
    for (const vq of this.device.queues) {
      if (vq.hostNotifier === undefined) continue;
      vq.removeHostWaiter?.();
      vq.removeHostWaiter = undefined;
      if (vq.hostNotifier.testAndClear() > 0) this.device.runHandler(vq, 'virtio_queue_host_notifier_read');
      this.setHostNotifier(vq, false);
    }
  }

  private attachHostHandler(vq: VirtQueue): void {
    const fd = vq.hostNotifier;
    if (fd === undefined || vq.removeHostWaiter !== undefined) return;
    const d = this.device;
    vq.removeHostWaiter = fd.addWaiter({
      actor: d.mainLoop,
      delayNs: this.ctx.costs.ns.threadWakeup,
      wake: (f) => {
        if (f.testAndClear() === 0) return;
        if (this.trace.on) this.trace.emit('virtio.host_notifier_read', 'virtio_queue_host_notifier_read', 'aio_dispatch_handler', { dev: d.name, queue: vq.index });
        d.runHandler(vq, 'virtio_queue_host_notifier_read');
      },
    });
  }

  /**
   * virtio_bus_set_host_notifier: an EventFd registered with KVM_IOEVENTFD, or deassigned
   * and closed. Without ioeventfd support the EventFd is still created and QEMU sets it
   * when the guest's write reaches it (virtio_queue_notify in "notifier mode", what TCG's
   * userspace eventfd dispatch amounts to).
   */
  private setHostNotifier(vq: VirtQueue, assign: boolean): void {
    const vm = this.vm;
    if (assign) {
      const fd = new EventFd(this.ctx.scheduler, { name: `${this.device.name}-vq${vq.index}-kick` });
      vq.hostNotifier = fd;
      vq.hostNotifierEnabled = true;
      const site = this.ioeventfdEnabled ? this.ioeventfdSite(vq.index) : undefined;
      if (site === undefined || vm === undefined) return;
      vm.ioeventfd({ fd, ...site });
      this.ioeventfdAt.set(vq.index, site);
      if (this.trace.on) this.trace.emit('virtio.ioeventfd', 'virtio_pci_ioeventfd_assign', 'virtio_bus_set_host_notifier', { dev: this.device.name, queue: vq.index, addr: site.addr, len: site.len, space: site.space });
      return;
    }
    const fd = vq.hostNotifier;
    const site = this.ioeventfdAt.get(vq.index);
    if (fd !== undefined && site !== undefined && vm !== undefined) {
      vm.ioeventfd({ fd, ...site, deassign: true });
      this.ioeventfdAt.delete(vq.index);
    }
    vq.hostNotifierEnabled = false;
    fd?.close();
    vq.hostNotifier = undefined;
  }

  /** QEMU's memory listener moving ioeventfds with their BAR. */
  private barMoved(bar: PciBar, _old: number | undefined): void {
    if (this.ioeventfdAt.size === 0) return;
    if ((this.modern && bar.index !== 4) || (!this.modern && bar.index !== 0)) return;
    const vm = this.vm!;
    for (const vq of this.device.queues) {
      const fd = vq.hostNotifier;
      if (fd === undefined) continue;
      const old = this.ioeventfdAt.get(vq.index);
      if (old !== undefined) vm.ioeventfd({ fd, ...old, deassign: true });
      this.ioeventfdAt.delete(vq.index);
      const site = this.ioeventfdSite(vq.index);
      if (site !== undefined) {
        vm.ioeventfd({ fd, ...site });
        this.ioeventfdAt.set(vq.index, site);
      }
    }
  }

  /**
   * vhost_dev_enable_notifiers / vhost_dev_disable_notifiers: a backend grabs the host
   * notifiers (virtio_device_grab_ioeventfd stops QEMU's own ioeventfds on every queue,
   * then the backend's queues get fresh notifiers — KVM_IOEVENTFDs that become kick fds;
   * other queues, such as the ctrl vq, now reach QEMU by a synchronous exit). Releasing
   * cleans them up (pending kicks are read first) and restarts QEMU's ioeventfds.
   */
  setHostNotifiersHandedOver(first: number, count: number, handedOver: boolean): void {
    if (handedOver) {
      if (this.grabbed === 0 && this.ioeventfdOn) this.stopIoeventfdImpl();
      this.grabbed++;
      for (let i = first; i < first + count; i++) {
        const vq = this.device.queues[i];
        if (vq === undefined || vq.num === 0) continue;
        this.handedOver.add(i);
        this.setHostNotifier(vq, true);
      }
      return;
    }
    for (let i = first; i < first + count; i++) {
      const vq = this.device.queues[i];
      if (vq === undefined || !this.handedOver.has(i)) continue;
      this.handedOver.delete(i);
      if (vq.hostNotifier !== undefined && vq.hostNotifier.testAndClear() > 0) this.device.runHandler(vq, 'virtio_queue_host_notifier_read');
      this.setHostNotifier(vq, false);
    }
    if (this.grabbed > 0 && --this.grabbed === 0 && this.ioeventfdOn) this.startIoeventfdImpl();
  }

  // ---- guest notifiers (virtio_pci_set_guest_notifiers) -------------------------------

  /** kvm_msi_via_irqfd_enabled. */
  get irqfdAvailable(): boolean {
    return this.vm !== undefined && this.vm.irqfdCapable && this.routes !== undefined;
  }

  /**
   * virtio_pci_set_guest_notifiers: with MSI-X and irqfd, per-vector MSI routes and
   * KVM_IRQFD on each queue's guest notifier, then MSI-X vector notifiers
   * (virtio_pci_vector_unmask / _mask / _poll); otherwise the main loop reads the guest
   * notifiers (virtio_queue_guest_notifier_read). Deassign undoes it in reverse.
   */
  setGuestNotifiers(nvqs: number, assign: boolean): void {
    const d = this.device;
    const withIrqfd = this.msixEnabled && this.irqfdAvailable;
    nvqs = Math.min(nvqs, VIRTIO_QUEUE_MAX);
    if (this.trace.on) this.trace.emit('virtio.set_guest_notifiers', 'virtio_pci_set_guest_notifiers', assign ? 'vhost_net_start' : 'vhost_net_stop', { dev: d.name, nvqs, assign, withIrqfd });
    const masking = d.useGuestNotifierMask && d.guestNotifierMask !== undefined;
    if (!assign) {
      nvqs = this.nvqsWithNotifiers;
      if (this.vectorIrqfd !== undefined || masking) {
        this.msix?.unsetVectorNotifiers();
        if (this.vectorIrqfd !== undefined) {
          for (let n = 0; n < nvqs; n++) {
            const vq = d.queues[n]!;
            if (vq.num === 0) break;
            this.vectorReleaseOne(vq);
          }
          this.vectorIrqfd = undefined;
        }
      }
      for (let n = 0; n < nvqs; n++) {
        const vq = d.queues[n]!;
        if (vq.num === 0) break;
        this.setGuestNotifier(vq, false, this.guestNotifiersWithIrqfd);
      }
      this.nvqsWithNotifiers = 0;
      this.guestNotifiersWithIrqfd = false;
      return;
    }
    this.nvqsWithNotifiers = nvqs;
    this.guestNotifiersWithIrqfd = withIrqfd;
    for (let n = 0; n < nvqs; n++) {
      const vq = d.queues[n]!;
      if (vq.num === 0) break;
      this.setGuestNotifier(vq, true, withIrqfd);
    }
    if ((withIrqfd || masking) && this.msix !== undefined) {
      if (withIrqfd) {
        this.vectorIrqfd = Array.from({ length: this.msix.vectors }, () => ({ msg: undefined, virq: -1, users: 0 }));
        for (let n = 0; n < nvqs; n++) {
          const vq = d.queues[n]!;
          if (vq.num === 0) break;
          this.vectorUseOne(vq);
        }
      }
      this.msix.setVectorNotifiers({
        use: (v, msg) => this.vectorUnmask(v, msg),
        release: (v) => this.vectorMask(v),
        poll: (s, e) => this.vectorPoll(s, e),
      });
    }
  }

  /** virtio_pci_set_guest_notifier + virtio_queue_set_guest_notifier_fd_handler. */
  private setGuestNotifier(vq: VirtQueue, assign: boolean, withIrqfd: boolean): void {
    const d = this.device;
    if (assign) {
      vq.guestNotifier = new EventFd(this.ctx.scheduler, { name: `${d.name}-vq${vq.index}-call` });
      if (!withIrqfd) {
        vq.removeGuestWaiter = vq.guestNotifier.addWaiter({
          actor: d.mainLoop,
          delayNs: this.ctx.costs.ns.threadWakeup,
          wake: (fd) => this.guestNotifierRead(vq, fd),
        });
      }
    } else {
      vq.removeGuestWaiter?.();
      vq.removeGuestWaiter = undefined;
      // Test and clear before closing, in case the poll callback had no time to run.
      if (vq.guestNotifier !== undefined) this.guestNotifierRead(vq, vq.guestNotifier);
      vq.guestNotifier?.close();
      vq.guestNotifier = undefined;
    }
    if (!this.msixEnabled && d.useGuestNotifierMask && d.guestNotifierMask !== undefined) d.guestNotifierMask(vq.index, !assign);
  }

  /** virtio_queue_guest_notifier_read: event_notifier_test_and_clear → virtio_irq. */
  private guestNotifierRead(vq: VirtQueue, fd: EventFd): void {
    if (fd.isClosed) return;
    const t = this.trace;
    if (t.on) t.emit('virtio.guest_notifier_read', 'virtio_queue_guest_notifier_read', 'aio_dispatch_handler', { dev: this.device.name, queue: vq.index });
    const n = fd.testAndClear();
    if (t.on) t.emit('virtio.guest_notifier_read', 'event_notifier_test_and_clear', 'virtio_queue_guest_notifier_read', { dev: this.device.name, queue: vq.index, count: n });
    if (n > 0) this.device.irq(vq, 'virtio_queue_guest_notifier_read');
  }

  /** kvm_virtio_pci_vector_use_one: first user of a vector adds its MSI route; irqfd now when masking is supported. */
  private vectorUseOne(vq: VirtQueue): void {
    const table = this.vectorIrqfd;
    const m = this.msix;
    if (table === undefined || m === undefined || vq.vector >= m.vectors) return;
    const irqfd = table[vq.vector]!;
    if (irqfd.users === 0) {
      const msg = m.getMessage(vq.vector);
      irqfd.virq = this.routes!.addMsiRoute(msg);
      irqfd.msg = msg;
      this.routes!.commit();
      if (this.trace.on) this.trace.emit('virtio.msi_route', 'kvm_irqchip_add_msi_route', 'kvm_virtio_pci_vq_vector_use', { dev: this.device.name, vector: vq.vector, virq: irqfd.virq, msg: formatMsi(msg) });
    }
    irqfd.users++;
    const d = this.device;
    if (d.useGuestNotifierMask && d.guestNotifierMask !== undefined) this.irqfdUse(vq, 'kvm_virtio_pci_vector_use_one');
  }

  /** kvm_virtio_pci_vector_release_one. */
  private vectorReleaseOne(vq: VirtQueue): void {
    const table = this.vectorIrqfd;
    const m = this.msix;
    if (table === undefined || m === undefined || vq.vector >= m.vectors) return;
    const d = this.device;
    // With masking the irqfd was attached at use time; without it, msix_unset_vector_notifiers'
    // release (virtio_pci_vector_mask) already detached it.
    if (d.useGuestNotifierMask && d.guestNotifierMask !== undefined) this.irqfdRelease(vq);
    const irqfd = table[vq.vector]!;
    if (--irqfd.users === 0) {
      this.routes!.releaseVirq(irqfd.virq);
      this.routes!.commit();
      irqfd.virq = -1;
      irqfd.msg = undefined;
    }
  }

  /** kvm_virtio_pci_irqfd_use → kvm_irqchip_add_irqfd_notifier_gsi (KVM_IRQFD). */
  private irqfdUse(vq: VirtQueue, caller: string): void {
    const irqfd = this.vectorIrqfd![vq.vector]!;
    if (vq.guestNotifier === undefined) return;
    if (this.trace.on) this.trace.emit('virtio.irqfd', 'kvm_virtio_pci_irqfd_use', caller, { dev: this.device.name, queue: vq.index, vector: vq.vector, gsi: irqfd.virq, assign: true });
    if (this.trace.on) this.trace.emit('virtio.irqfd', 'kvm_irqchip_add_irqfd_notifier_gsi', 'kvm_virtio_pci_irqfd_use', { dev: this.device.name, queue: vq.index, vector: vq.vector, gsi: irqfd.virq, assign: true });
    this.vm!.irqfd({ fd: vq.guestNotifier, gsi: irqfd.virq });
  }

  /** kvm_virtio_pci_irqfd_release → kvm_irqchip_remove_irqfd_notifier_gsi. */
  private irqfdRelease(vq: VirtQueue): void {
    const irqfd = this.vectorIrqfd![vq.vector]!;
    if (vq.guestNotifier === undefined) return;
    if (this.trace.on) this.trace.emit('virtio.irqfd', 'kvm_irqchip_remove_irqfd_notifier_gsi', 'kvm_virtio_pci_irqfd_release', { dev: this.device.name, queue: vq.index, vector: vq.vector, gsi: irqfd.virq, assign: false });
    this.vm!.irqfd({ fd: vq.guestNotifier, gsi: irqfd.virq, deassign: true });
  }

  private queuesWithNotifiersOn(vector: number): VirtQueue[] {
    return this.device.queues.filter((q, i) => i < this.nvqsWithNotifiers && q.num !== 0 && q.vector === vector);
  }

  /** virtio_pci_vector_unmask → virtio_pci_vq_vector_unmask per queue on the vector. */
  private vectorUnmask(vector: number, msg: MsiMessage): number {
    const d = this.device;
    if (this.trace.on) this.trace.emit('virtio.vector_unmask', 'virtio_pci_vector_unmask', 'msix_fire_vector_notifier', { dev: d.name, vector });
    for (const vq of this.queuesWithNotifiersOn(vector)) {
      if (this.trace.on) this.trace.emit('virtio.vector_unmask', 'virtio_pci_vq_vector_unmask', 'virtio_pci_vector_unmask', { dev: d.name, vector, queue: vq.index });
      const irqfd = this.vectorIrqfd?.[vector];
      if (irqfd !== undefined && irqfd.virq >= 0 && (irqfd.msg === undefined || irqfd.msg.data !== msg.data || irqfd.msg.addressLo !== msg.addressLo || irqfd.msg.addressHi !== msg.addressHi)) {
        this.routes!.updateMsiRoute(irqfd.virq, msg);
        this.routes!.commit();
        irqfd.msg = msg;
        if (this.trace.on) this.trace.emit('virtio.msi_route', 'kvm_irqchip_update_msi_route', 'virtio_pci_vq_vector_unmask', { dev: d.name, vector, virq: irqfd.virq, msg: formatMsi(msg) });
      }
      if (d.useGuestNotifierMask && d.guestNotifierMask !== undefined) {
        d.guestNotifierMask(vq.index, false);
        // Test after unmasking so no event is lost.
        if (d.guestNotifierPending?.(vq.index) === true) vq.guestNotifier?.tryWrite(1);
      } else if (irqfd !== undefined && irqfd.virq >= 0) {
        this.irqfdUse(vq, 'virtio_pci_vq_vector_unmask');
      }
    }
    return 0;
  }

  /** virtio_pci_vector_mask. */
  private vectorMask(vector: number): void {
    const d = this.device;
    if (this.trace.on) this.trace.emit('virtio.vector_mask', 'virtio_pci_vector_mask', 'msix_fire_vector_notifier', { dev: d.name, vector });
    for (const vq of this.queuesWithNotifiersOn(vector)) {
      if (d.useGuestNotifierMask && d.guestNotifierMask !== undefined) d.guestNotifierMask(vq.index, true);
      else if (this.vectorIrqfd?.[vector] !== undefined && this.vectorIrqfd[vector]!.virq >= 0) this.irqfdRelease(vq);
    }
  }

  /** virtio_pci_vector_poll: pending bits for masked vectors whose source fired. */
  private vectorPoll(start: number, end: number): void {
    const d = this.device;
    const m = this.msix!;
    if (this.trace.on) this.trace.emit('virtio.vector_poll', 'virtio_pci_vector_poll', 'msix_pba_mmio_read', { dev: d.name, start, end });
    for (let n = 0; n < this.nvqsWithNotifiers; n++) {
      const vq = d.queues[n]!;
      const v = vq.vector;
      if (v < start || v >= end || !m.isMasked(v)) continue;
      // QEMU asks guest_notifier_pending whenever the device has it — even for vhost-user, whose
      // call fd never moves to the masked notifier: there the event stays in the guest
      // notifier and KVM delivers it when the unmask re-assigns the irqfd.
      if (d.guestNotifierPending !== undefined) {
        if (d.guestNotifierPending(n)) m.setPending(v);
      } else if (vq.guestNotifier !== undefined && vq.guestNotifier.testAndClear() > 0) {
        m.setPending(v);
      }
    }
  }
}

function setLo(cur: number, lo: number): number {
  return Math.floor(cur / 2 ** 32) * 2 ** 32 + (lo >>> 0);
}
function setHi(cur: number, hi: number): number {
  return (hi >>> 0) * 2 ** 32 + (cur % 2 ** 32);
}

function region(name: string, size: number, read: (o: number, s: AccessSize) => number, write: (o: number, s: AccessSize, v: number) => void): MmioRegion {
  return { name, size, read, write };
}
