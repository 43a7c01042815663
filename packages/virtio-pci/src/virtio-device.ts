import { type Actor, type GuestMemory, type SimContext, type Snapshot, type TraceChannel, VirqError, checkSnapshot } from '@virq/core';
import { type VirtioRingEvent, createVirtqueueDevice } from '@virq/virtio-ring';
import { VirtioPciErrorCode } from './errors.js';
import { VIRTIO_NO_VECTOR, VirtioFeature, VirtioIsr, VirtioStatus, bit } from './virtio-constants.js';
import type { VirtioTraceEvent } from './virtio-trace.js';
import { type HandleOutput, VirtQueue } from './virtqueue.js';

/**
 * What a virtio device needs from its transport (QEMU's VirtioBusClass callbacks), so the
 * device never names PCI: `notify` is virtio_pci_notify; guest/host notifier set-up are the
 * proxy's; `queryGuestNotifiers` says whether MSI-X is on.
 */
export interface VirtioBusTransport {
  notify(vector: number, caller: string): void;
  queryGuestNotifiers(): boolean;
  setGuestNotifiers(nvqs: number, assign: boolean): void;
  /** Whether guest kicks arrive on ioeventfds (host notifiers) now. */
  ioeventfdStarted(): boolean;
  /** Hand the host notifiers over to a backend (vhost) or take them back. */
  setHostNotifiersHandedOver(first: number, count: number, handedOver: boolean): void;
}

export interface VirtioDeviceInit {
  name: string;
  deviceId: number;
  /** Size of the device-specific config space in bytes. */
  configSize: number;
  hostFeatures: bigint;
  mem: GuestMemory;
  /** QEMU's main loop thread (handlers of ioeventfds and guest notifiers run on it). */
  mainLoop?: Actor;
}

/** One queue's saved state. `ring` is the device-side ring's own snapshot. */
export interface VirtQueueState {
  num: number;
  vector: number;
  desc: number;
  driver: number;
  device: number;
  enabled: boolean;
  lastAvailIdx: number;
  ring: Snapshot<unknown> | null;
}

/** QEMU's vmstate_virtio as a plain record (features as a hex string: JSON has no bigint). */
export interface VirtioDeviceState {
  status: number;
  guestFeatures: string;
  isr: number;
  configVector: number;
  generation: number;
  queueSel: number;
  broken: boolean;
  config: number[];
  queues: VirtQueueState[];
}

/**
 * The device half of a virtio device (QEMU's VirtIODevice): status byte state machine,
 * feature negotiation, ISR, config vector and generation, queues, and the device-side
 * notification path virtio_notify → virtio_irq → virtio_notify_vector → transport.
 * Guest misbehaviour ends in `virtioError` (NEEDS_RESET + config interrupt), never a throw.
 */
export abstract class VirtioDevice {
  readonly name: string;
  readonly deviceId: number;
  readonly mem: GuestMemory;
  readonly trace: TraceChannel<VirtioTraceEvent>;
  readonly ringTrace: TraceChannel<VirtioRingEvent>;
  readonly mainLoop: Actor;
  hostFeatures: bigint;
  guestFeatures = 0n;
  status = 0;
  isr = 0;
  configVector = VIRTIO_NO_VECTOR;
  generation = 0;
  queueSel = 0;
  /** vdev->broken: set by virtio_error until reset. */
  broken = false;
  /** Device-specific config bytes (little-endian for VERSION_1 devices). */
  readonly config: Uint8Array;
  readonly queues: VirtQueue[] = [];
  transport: VirtioBusTransport | undefined;
  /** Errors reported by virtio_error since the last reset. */
  readonly errors: VirqError[] = [];
  /** QEMU's use_guest_notifier_mask (cleared for vhost-user). */
  useGuestNotifierMask = true;

  constructor(
    readonly ctx: SimContext,
    init: VirtioDeviceInit,
  ) {
    this.name = init.name;
    this.deviceId = init.deviceId;
    this.mem = init.mem;
    this.hostFeatures = init.hostFeatures;
    this.config = new Uint8Array(init.configSize);
    this.trace = ctx.trace.channel<VirtioTraceEvent>('virtio-pci');
    this.ringTrace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
    this.mainLoop = init.mainLoop ?? ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  }

  /** virtio_add_queue. */
  protected addQueue(size: number, handler: HandleOutput): VirtQueue {
    const vq = new VirtQueue(this.queues.length, size, handler);
    this.queues.push(vq);
    return vq;
  }

  hasFeature(n: number): boolean {
    return (this.guestFeatures & bit(n)) !== 0n;
  }

  hostHasFeature(n: number): boolean {
    return (this.hostFeatures & bit(n)) !== 0n;
  }

  // ---- hooks for device models (QEMU VirtioDeviceClass) ---------------------------------

  /** get_config: refresh `config` before the driver reads it. */
  protected refreshConfig(): void {}
  /** set_config: the driver wrote config bytes. */
  protected configWritten(_offset: number, _size: number): void {}
  /** validate_features: a non-empty string refuses FEATURES_OK. */
  protected validateFeatures(): string | undefined {
    return undefined;
  }
  /** set_features. */
  protected featuresSet(_features: bigint): void {}
  /** set_status. */
  protected statusSet(_status: number): void {}
  /** reset. */
  protected deviceReset(): void {}
  /** guest_notifier_mask (vhost: move the call fd to/from the masked notifier). Undefined = unsupported. */
  guestNotifierMask?(queue: number, mask: boolean): void;
  /** guest_notifier_pending. */
  guestNotifierPending?(queue: number): boolean;

  // ---- config space --------------------------------------------------------------------

  readConfig(offset: number, size: number): number {
    this.refreshConfig();
    if (offset < 0 || offset + size > this.config.length) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[offset + i]!;
    return v >>> 0;
  }

  writeConfig(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > this.config.length) return;
    for (let i = 0; i < size; i++) this.config[offset + i] = (value >>> (8 * i)) & 0xff;
    this.configWritten(offset, size);
  }

  // ---- status / features ---------------------------------------------------------------

  /** virtio_set_features: refused once FEATURES_OK is set; unknown bits are dropped. */
  setFeatures(val: bigint): number {
    if ((this.status & VirtioStatus.FEATURES_OK) !== 0) return -22;
    const bad = (val & ~this.hostFeatures) !== 0n;
    const f = val & this.hostFeatures;
    if (this.trace.on) this.trace.emit('virtio.set_features', 'virtio_set_features', 'virtio_pci_common_write', { dev: this.name, features: f, bad });
    this.featuresSet(f);
    this.guestFeatures = f;
    return bad ? -1 : 0;
  }

  /**
   * virtio_set_status: FEATURES_OK goes through validate_features (a refusal leaves the
   * status untouched, so the driver's re-read shows FEATURES_OK clear); the device's
   * set_status hook runs before the new value is stored.
   */
  setStatus(val: number, caller = 'virtio_pci_common_write'): number {
    if (this.trace.on) this.trace.emit('virtio.set_status', 'virtio_set_status', caller, { dev: this.name, status: val });
    if (this.hasFeature(VirtioFeature.VERSION_1) && (this.status & VirtioStatus.FEATURES_OK) === 0 && (val & VirtioStatus.FEATURES_OK) !== 0) {
      const why = this.validateFeatures();
      if (why !== undefined) return -22;
    }
    this.statusSet(val);
    this.status = val & 0xff;
    return 0;
  }

  /** virtio_reset. */
  reset(): void {
    if (this.trace.on) this.trace.emit('virtio.reset', 'virtio_reset', 'virtio_bus_reset', { dev: this.name });
    this.setStatus(0, 'virtio_reset');
    this.deviceReset();
    this.broken = false;
    this.guestFeatures = 0n;
    this.queueSel = 0;
    this.status = 0;
    this.isr = 0;
    this.configVector = VIRTIO_NO_VECTOR;
    this.errors.length = 0;
    for (const vq of this.queues) vq.resetTransport();
  }

  /**
   * virtio_error: report guest misbehaviour — with VERSION_1, DEVICE_NEEDS_RESET plus a
   * config interrupt — and stop processing until reset. Never throws.
   */
  virtioError(code: string, message: string, details: Record<string, unknown> = {}): void {
    const e = new VirqError(code, `${this.name}: ${message}`, { details });
    this.errors.push(e);
    if (this.trace.on) this.trace.emit('virtio.error', 'virtio_error', 'virtqueue_pop', { dev: this.name, code, message });
    if (this.hasFeature(VirtioFeature.VERSION_1)) {
      this.status |= VirtioStatus.DEVICE_NEEDS_RESET;
      this.notifyConfig('virtio_error');
    }
    this.broken = true;
  }

  // ---- interrupts ----------------------------------------------------------------------

  /** virtio_notify_config: only with DRIVER_OK; ISR |= 3, generation++, config vector. */
  notifyConfig(caller = 'virtio_notify_config'): void {
    if ((this.status & VirtioStatus.DRIVER_OK) === 0) return;
    this.isr |= VirtioIsr.QUEUE | VirtioIsr.CONFIG;
    this.generation = (this.generation + 1) & 0xff;
    if (this.trace.on) this.trace.emit('virtio.notify_config', 'virtio_notify_config', caller, { dev: this.name, generation: this.generation });
    this.notifyVector(this.configVector, 'virtio_notify_config');
  }

  /** virtio_notify_vector: skipped while broken; else the transport's notify. */
  notifyVector(vector: number, caller: string): void {
    if (this.broken) return;
    if (this.trace.on) this.trace.emit('virtio.notify_vector', 'virtio_notify_vector', caller, { dev: this.name, vector });
    this.transport?.notify(vector, 'virtio_notify_vector');
  }

  /** virtio_irq: ISR |= 1 and signal the queue's vector. */
  irq(vq: VirtQueue, caller = 'virtio_notify'): void {
    vq.irqs++;
    if (this.trace.on) this.trace.emit('virtio.irq', 'virtio_irq', caller, { dev: this.name, queue: vq.index, vector: vq.vector });
    this.isr |= VirtioIsr.QUEUE;
    this.notifyVector(vq.vector, 'virtio_irq');
  }

  /** virtio_notify: the used-buffer notification, subject to the ring's suppression. */
  notify(vq: VirtQueue, caller = 'virtqueue_push'): void {
    const ring = vq.ring;
    if (ring === undefined) return;
    if (!ring.shouldNotify()) return;
    if (this.trace.on) this.trace.emit('virtio.notify', 'virtio_notify', caller, { dev: this.name, queue: vq.index });
    this.irq(vq, 'virtio_notify');
  }

  /**
   * virtio_queue_notify: a kick reached the VMM. Ignored for an unset queue or a broken
   * device; with the host notifier in "notifier mode" the eventfd is set instead.
   */
  queueNotify(n: number, caller = 'virtio_pci_notify_write'): void {
    const vq = this.queues[n];
    if (vq === undefined || vq.desc === 0 || this.broken) return;
    if (this.trace.on) this.trace.emit('virtio.queue_notify', 'virtio_queue_notify', caller, { dev: this.name, queue: n });
    if (vq.hostNotifierEnabled && vq.hostNotifier !== undefined) {
      vq.hostNotifier.tryWrite(1);
      return;
    }
    this.runHandler(vq, 'virtio_queue_notify');
  }

  /**
   * virtio_queue_notify_vq → handle_output; from virtio_queue_notify (no host notifier)
   * QEMU calls vq->handle_output itself, without virtio_queue_notify_vq.
   */
  runHandler(vq: VirtQueue, caller: string): void {
    if (this.broken || vq.ring === undefined) return;
    vq.kicks++;
    const direct = caller === 'virtio_queue_notify';
    vq.outputCaller = direct ? caller : 'virtio_queue_notify_vq';
    if (this.trace.on && !direct) this.trace.emit('virtio.handle_output', 'virtio_queue_notify_vq', caller, { dev: this.name, queue: vq.index });
    this.ctx.scheduler.current?.charge(this.ctx.costs.ns.deviceEmulation);
    vq.handleOutput(vq);
  }

  /**
   * Maps the device side of a queue's ring from the addresses the driver programmed
   * (virtio_queue_set_rings / virtio_init_region_cache). A ring that cannot be mapped puts
   * the device in NEEDS_RESET.
   */
  mapRing(vq: VirtQueue): void {
    if (vq.desc === 0) return;
    vq.ring = createVirtqueueDevice(this.mem, {
      desc: vq.desc,
      driver: vq.driver,
      device: vq.device,
      size: vq.num,
      features: this.guestFeatures,
      index: vq.index,
      flavor: 'qemu',
      trace: this.ringTrace,
      onError: (e) => this.virtioError(VirtioPciErrorCode.RingError, e.message, { queue: vq.index, ringCode: e.code }),
    });
    if (vq.lastAvailIdx !== 0) vq.ring.setVringBase(vq.lastAvailIdx);
  }

  /** virtio_queue_get_last_avail_idx. */
  lastAvailIdx(n: number): number {
    const vq = this.queues[n]!;
    return vq.ring?.getVringBase() ?? vq.lastAvailIdx;
  }

  /** vmstate: the transport-visible state, every queue and its ring. */
  snapshot(): Snapshot<VirtioDeviceState> {
    return {
      type: 'virtio.device',
      version: 1,
      state: {
        status: this.status,
        guestFeatures: this.guestFeatures.toString(16),
        isr: this.isr,
        configVector: this.configVector,
        generation: this.generation,
        queueSel: this.queueSel,
        broken: this.broken,
        config: [...this.config],
        queues: this.queues.map((q) => ({
          num: q.num,
          vector: q.vector,
          desc: q.desc,
          driver: q.driver,
          device: q.device,
          enabled: q.enabled,
          lastAvailIdx: this.lastAvailIdx(q.index),
          ring: q.ring === undefined ? null : q.ring.snapshot(),
        })),
      },
    };
  }

  /**
   * Puts the state back (virtio_load): queues are re-mapped from their addresses and their
   * rings restored. Notifier wiring is the transport's job (VirtioPciProxy.restore).
   */
  restore(snap: Snapshot<VirtioDeviceState>): void {
    const st = checkSnapshot(snap, 'virtio.device', 1);
    if (st.queues.length !== this.queues.length || st.config.length !== this.config.length) {
      throw new VirqError(VirtioPciErrorCode.SnapshotInvalid, `${this.name}: snapshot has ${st.queues.length} queues and ${st.config.length} config bytes; this device has ${this.queues.length} and ${this.config.length}`);
    }
    this.status = st.status;
    this.guestFeatures = BigInt(`0x${st.guestFeatures}`);
    this.isr = st.isr;
    this.configVector = st.configVector;
    this.generation = st.generation;
    this.queueSel = st.queueSel;
    this.broken = st.broken;
    this.config.set(st.config);
    this.featuresSet(this.guestFeatures);
    st.queues.forEach((qs, i) => {
      const q = this.queues[i]!;
      Object.assign(q, { num: qs.num, vector: qs.vector, desc: qs.desc, driver: qs.driver, device: qs.device, enabled: qs.enabled, lastAvailIdx: qs.lastAvailIdx });
      q.ring = undefined;
      if (qs.desc === 0) return;
      this.mapRing(q);
      const ring = (q as { readonly ring: VirtQueue['ring'] }).ring; // set by mapRing
      if (qs.ring !== null && ring !== undefined) ring.restore(qs.ring as Snapshot<never>);
    });
  }

  /** Index of a queue's first following queue with the same vector (virtio_vector_next_queue's walk). */
  queuesOnVector(vector: number): VirtQueue[] {
    return this.queues.filter((q) => q.num !== 0 && q.vector === vector);
  }
}
