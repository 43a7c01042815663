import { VirqError, checkSnapshot, type GuestMemory, type MemoryRegion, type Snapshot } from '@virq/core';
import { DEFAULT_MAX_SEGMENTS, VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY } from './constants.js';
import { DescriptorChain, copyFromChain, copyToChain } from './descriptor-chain.js';
import { deviceFunctionNames, type DeviceFunctionNames, type VirtqueueDeviceConfig } from './device-config.js';
import { VirtioRingErrorCode, type VirtqueueStatus } from './errors.js';
import { splitAreaSizes, splitSizeProblem } from './layout.js';
import { vringNeedEvent } from './need-event.js';
import { mapRingArea, type RingArea } from './ring-area.js';
import { toRingFeatures, type RingFeatures } from './ring-features.js';
import type { VirtioRingTrace } from './trace-events.js';

/** The device-side state of a split queue, as vhost's GET/SET_VRING_BASE and QEMU's vmstate keep it. */
export interface SplitDeviceState {
  lastAvailIdx: number;
  shadowAvailIdx: number;
  usedIdx: number;
  signalledUsed: number;
  signalledUsedValid: boolean;
  inuse: number;
  notification: boolean;
  status: VirtqueueStatus;
}

const EMPTY: RingArea = { u16: new Uint16Array(2), u32: new Uint32Array(1), u16Base: 0, u32Base: 0 };

/**
 * The device side of a split virtqueue (QEMU's VirtQueue in hw/virtio/virtio.c, DPDK's
 * vhost_virtqueue, kernel vhost's vhost_virtqueue), working only on the ring bytes in guest
 * memory. It trusts nothing the driver wrote. Any rule broken puts the queue in NEEDS_RESET
 * (QEMU's `virtio_error`), reported through `error`, `onError` and a `vring.error` event;
 * every method then returns "nothing to do" — nothing is thrown, nothing loops, and no byte
 * outside guest memory is touched.
 *
 * Ordering (FACTS §1.3): avail.idx is read with an atomic load before the ring entries and
 * descriptors behind it; used elements are written before used.idx is published with an
 * atomic store; suppression fields are read after that store (the full barrier that
 * sequentially consistent Atomics give). Correct across threads over a SharedArrayBuffer.
 */
export class SplitVirtqueueDevice {
  readonly size: number;
  readonly index: number;
  readonly features: RingFeatures;
  readonly names: DeviceFunctionNames;

  private readonly mask: number;
  private readonly eventIdx: boolean;
  private readonly maxSegments: number;
  private readonly anyOrder: boolean;
  private readonly trace: VirtioRingTrace | undefined;
  private readonly callFn: (() => void) | undefined;
  private readonly onError: ((e: VirqError) => void) | undefined;

  private readonly descU32: Uint32Array;
  private readonly descU16: Uint16Array;
  private readonly desc32: number;
  private readonly availU16: Uint16Array;
  /** u16 index of avail.flags; idx at +1, ring at +2, used_event at +2+size. */
  private readonly avail16: number;
  private readonly usedU16: Uint16Array;
  private readonly usedU32: Uint32Array;
  /** u16 index of used.flags; idx at +1, avail_event at +2+4·size. */
  private readonly used16: number;
  /** u32 index of used.ring[0]. */
  private readonly usedRing32: number;

  private lastAvailIdx = 0;
  private shadowAvailIdx = 0;
  private usedIdx = 0;
  private signalledUsed = 0;
  private signalledUsedValid = false;
  private inuse = 0;
  private pending = 0;
  /** Buffers the pending used entries complete (more than `pending` with IN_ORDER batches). */
  private pendingBufs = 0;
  private notification = true;
  private _status: VirtqueueStatus = 'ok';
  private _error: VirqError | undefined;
  /** One-entry cache of the region the last buffer lay in, and its bounds as plain numbers for the fast path. */
  private dataRegion: MemoryRegion | undefined;
  private dataGpa = 0;
  private dataEnd = 0;

  constructor(
    readonly mem: GuestMemory,
    config: VirtqueueDeviceConfig,
  ) {
    const size = config.size;
    this.index = config.index ?? 0;
    this.features = toRingFeatures(config.features);
    this.eventIdx = this.features.eventIdx;
    this.names = deviceFunctionNames(config.flavor ?? 'qemu', false);
    this.maxSegments = config.maxSegments ?? DEFAULT_MAX_SEGMENTS;
    this.anyOrder = config.anyOrder ?? false;
    this.trace = config.trace;
    this.callFn = config.call;
    this.onError = config.onError;
    const sizeProblem = splitSizeProblem(size);
    this.size = sizeProblem === undefined ? size : 1;
    this.mask = this.size - 1;
    const s = splitAreaSizes(this.size);
    const desc = sizeProblem === undefined ? mapRingArea(mem, config.desc, s.desc, 16, 'descriptor table') : EMPTY;
    const avail = sizeProblem === undefined ? mapRingArea(mem, config.driver, s.avail, 2, 'available ring') : EMPTY;
    const used = sizeProblem === undefined ? mapRingArea(mem, config.device, s.used, 4, 'used ring') : EMPTY;
    const ok = (a: RingArea | string): RingArea => (typeof a === 'string' ? EMPTY : a);
    this.descU32 = ok(desc).u32;
    this.descU16 = ok(desc).u16;
    this.desc32 = ok(desc).u32Base;
    this.availU16 = ok(avail).u16;
    this.avail16 = ok(avail).u16Base;
    this.usedU16 = ok(used).u16;
    this.usedU32 = ok(used).u32;
    this.used16 = ok(used).u16Base;
    this.usedRing32 = ok(used).u32Base + 1;
    // A queue the guest set up wrongly is a guest error: NEEDS_RESET, as QEMU's
    // virtio_init_region_cache does with "Cannot map desc/avail/used".
    if (sizeProblem !== undefined) this.fail(VirtioRingErrorCode.BadQueueSize, sizeProblem, { size });
    else for (const a of [desc, avail, used]) if (typeof a === 'string') { this.fail(VirtioRingErrorCode.BadLayout, `Cannot map ring: ${a}`, {}); break; }
  }

  /** 'ok', or 'needs-reset' after bad driver input. */
  get status(): VirtqueueStatus {
    return this._status;
  }
  /** The error that put the queue in NEEDS_RESET. */
  get error(): VirqError | undefined {
    return this._error;
  }
  get broken(): boolean {
    return this._status !== 'ok';
  }
  /** Next avail ring index the device will take (QEMU last_avail_idx). */
  get lastAvail(): number {
    return this.lastAvailIdx;
  }
  /** Device's used idx, including filled-but-unflushed elements' base. */
  get used(): number {
    return this.usedIdx;
  }
  /** Chains popped and not yet flushed back. */
  get inFlight(): number {
    return this.inuse;
  }

  /** Whether the driver has made nothing new available (QEMU virtio_queue_empty). */
  isEmpty(): boolean {
    if (this._status !== 'ok') return true;
    if (this.lastAvailIdx !== this.shadowAvailIdx) return false;
    this.shadowAvailIdx = Atomics.load(this.availU16, this.avail16 + 1);
    return this.lastAvailIdx === this.shadowAvailIdx;
  }

  /** Buffers available and not yet popped (QEMU virtqueue_num_heads); 0 after an error. */
  availCount(): number {
    if (this._status !== 'ok') return 0;
    const idx = Atomics.load(this.availU16, this.avail16 + 1);
    const n = (idx - this.lastAvailIdx) & 0xffff;
    if (n > this.size) {
      this.fail(VirtioRingErrorCode.AvailIdxJump, `Guest moved used index from ${this.lastAvailIdx} to ${idx}`, { lastAvailIdx: this.lastAvailIdx, availIdx: idx });
      return 0;
    }
    this.shadowAvailIdx = idx;
    return n;
  }

  /**
   * Takes the next available chain (QEMU virtqueue_pop): its segments are checked against
   * guest memory and the ring rules. Returns null when the queue is empty or has just gone
   * to NEEDS_RESET. Pass a previous chain to reuse it.
   */
  pop(into?: DescriptorChain): DescriptorChain | null {
    if (this._status !== 'ok') return null;
    return this.take(into);
  }

  /**
   * Takes up to `max` available chains into `chains[0..n)` and returns n — a burst, as DPDK's
   * rte_vhost_dequeue_burst takes them. Exactly what n calls of `pop(chains[i])` do (same
   * checks in the same order, same events, same NEEDS_RESET on the first bad chain, which ends
   * the burst with the chains taken before it), with the ring's indexes and views held in
   * locals across the burst (≈ 3 ns per chain less than a loop of pop; pop itself keeps the
   * plain form, which is faster for one chain). avail.idx is read with one atomic load only
   * when the chains it announced are used up. test/burst.test.ts holds the two to each other.
   */
  popBurst(chains: readonly DescriptorChain[], max: number = chains.length): number {
    if (!Number.isInteger(max) || max < 0) throw new VirqError(VirtioRingErrorCode.BadArgument, `popBurst max must be an integer ≥ 0, got ${max}`, { errno: 'EINVAL' });
    if (this._status !== 'ok') return 0;
    const limit = max < chains.length ? max : chains.length;
    const size = this.size;
    const mask = this.mask;
    const availU16 = this.availU16;
    const avail16 = this.avail16;
    const descU32 = this.descU32;
    const descU16 = this.descU16;
    const desc32 = this.desc32;
    const maxSegOk = this.maxSegments >= 1;
    const setAvailEvent = this.eventIdx && this.notification;
    const availEvent16 = this.used16 + 2 + 4 * size;
    const t = this.trace;
    const traced = t !== undefined && t.on;
    let at = this.lastAvailIdx;
    let shadow = this.shadowAvailIdx;
    let k = 0;
    for (; k < limit; k++) {
      if (at === shadow) {
        const idx = Atomics.load(availU16, avail16 + 1);
        if (((idx - at) & 0xffff) > size) {
          this.fail(VirtioRingErrorCode.AvailIdxJump, `Guest moved used index from ${at} to ${idx}`, { lastAvailIdx: at, availIdx: idx });
          break;
        }
        shadow = idx;
        this.shadowAvailIdx = idx;
        if (idx === at) break;
      }
      if (this.inuse >= size) {
        this.fail(VirtioRingErrorCode.QueueOverrun, 'Virtqueue size exceeded', { inuse: this.inuse, size });
        break;
      }
      const head = availU16[avail16 + 2 + (at & mask)]!;
      if (head >= size) {
        this.fail(VirtioRingErrorCode.HeadOutOfRange, `Guest says index ${head} is available`, { head, availIdx: at });
        break;
      }
      at = (at + 1) & 0xffff;
      this.lastAvailIdx = at;
      // QEMU virtqueue_split_pop → vring_set_avail_event (skipped while notifications are off).
      if (setAvailEvent) this.usedU16[availEvent16] = at;
      const chain = chains[k]!;
      // Fast path: one direct descriptor inside the cached region (every check the walk makes
      // on such a descriptor holds by construction). Anything else — or anything odd — takes
      // the full walk, which re-reads the descriptor and reports the error.
      const o = desc32 + 4 * head;
      const flags = descU16[2 * (o + 3)]!;
      const lo = descU32[o]!;
      const len = descU32[o + 2]!;
      if ((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) === 0 && descU32[o + 1] === 0 && len !== 0 && lo >= this.dataGpa && lo + len <= this.dataEnd && maxSegOk) {
        chain.id = head;
        chain.ndescs = 1;
        chain.indirect = false;
        if ((flags & VRING_DESC_F_WRITE) !== 0) {
          chain.outNum = 0;
          chain.outBytes = 0;
          chain.inNum = 1;
          chain.inBytes = len;
          chain.inAddr[0] = lo;
          chain.inLen[0] = len;
        } else {
          chain.inNum = 0;
          chain.inBytes = 0;
          chain.outNum = 1;
          chain.outBytes = len;
          chain.outAddr[0] = lo;
          chain.outLen[0] = len;
        }
      } else if (!this.walk(chain, head)) break;
      this.inuse++;
      if (traced) {
        t.emit('vring.pop', this.names.pop, undefined, { queue: this.index, head, lastAvailIdx: at, availIdx: shadow, out: chain.outNum, in: chain.inNum, indirect: chain.indirect });
      }
    }
    return k;
  }

  /** virtqueue_pop's body: the next available chain into `into` (or a new one); null when empty or broken. */
  private take(into: DescriptorChain | undefined): DescriptorChain | null {
    const at = this.lastAvailIdx;
    if (at === this.shadowAvailIdx) {
      const idx = Atomics.load(this.availU16, this.avail16 + 1);
      if (((idx - at) & 0xffff) > this.size) {
        this.fail(VirtioRingErrorCode.AvailIdxJump, `Guest moved used index from ${at} to ${idx}`, { lastAvailIdx: at, availIdx: idx });
        return null;
      }
      this.shadowAvailIdx = idx;
      if (idx === at) return null;
    }
    if (this.inuse >= this.size) {
      this.fail(VirtioRingErrorCode.QueueOverrun, 'Virtqueue size exceeded', { inuse: this.inuse, size: this.size });
      return null;
    }
    const head = this.availU16[this.avail16 + 2 + (at & this.mask)]!;
    if (head >= this.size) {
      this.fail(VirtioRingErrorCode.HeadOutOfRange, `Guest says index ${head} is available`, { head, availIdx: at });
      return null;
    }
    const nl = (at + 1) & 0xffff;
    this.lastAvailIdx = nl;
    // QEMU virtqueue_split_pop → vring_set_avail_event (skipped while notifications are off).
    if (this.eventIdx && this.notification) this.usedU16[this.used16 + 2 + 4 * this.size] = nl;
    const chain = into ?? new DescriptorChain();
    // Fast path: one direct descriptor inside the cached region (every check the walk makes
    // on such a descriptor holds by construction). Anything else — or anything odd — takes
    // the full walk, which re-reads the descriptor and reports the error.
    const o = this.desc32 + 4 * head;
    const u32 = this.descU32;
    const flags = this.descU16[2 * (o + 3)]!;
    const lo = u32[o]!;
    const len = u32[o + 2]!;
    if ((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) === 0 && u32[o + 1] === 0 && len !== 0 && lo >= this.dataGpa && lo + len <= this.dataEnd && this.maxSegments >= 1) {
      chain.id = head;
      chain.ndescs = 1;
      chain.indirect = false;
      if ((flags & VRING_DESC_F_WRITE) !== 0) {
        chain.outNum = 0;
        chain.outBytes = 0;
        chain.inNum = 1;
        chain.inBytes = len;
        chain.inAddr[0] = lo;
        chain.inLen[0] = len;
      } else {
        chain.inNum = 0;
        chain.inBytes = 0;
        chain.outNum = 1;
        chain.outBytes = len;
        chain.outAddr[0] = lo;
        chain.outLen[0] = len;
      }
    } else if (!this.walk(chain, head)) return null;
    this.inuse++;
    const t = this.trace;
    if (t !== undefined && t.on) {
      t.emit('vring.pop', this.names.pop, undefined, { queue: this.index, head, lastAvailIdx: nl, availIdx: this.shadowAvailIdx, out: chain.outNum, in: chain.inNum, indirect: chain.indirect });
    }
    return chain;
  }

  /** Puts the last `count` popped chains back (QEMU virtqueue_unpop / virtqueue_rewind). */
  unpop(count = 1): boolean {
    if (this._status !== 'ok' || count > this.inuse || count < 0) return false;
    this.lastAvailIdx = (this.lastAvailIdx - count) & 0xffff;
    this.inuse -= count;
    return true;
  }

  /**
   * Writes a used element for `chain` (or a raw head id) with `len` bytes written, not yet
   * visible to the driver (QEMU virtqueue_fill). `flush()` publishes.
   */
  fill(chain: DescriptorChain | number, len: number): void {
    if (this._status !== 'ok') return;
    if (this.pending >= this.size) {
      throw new VirqError(VirtioRingErrorCode.BadArgument, `fill called ${this.pending + 1} times without flush on a ${this.size}-entry queue; flush first`, { errno: 'ENOSPC' });
    }
    const id = typeof chain === 'number' ? chain : chain.id;
    const slot = (this.usedIdx + this.pending) & this.mask;
    const o = this.usedRing32 + 2 * slot;
    this.usedU32[o] = id;
    this.usedU32[o + 1] = len;
    this.pending++;
    this.pendingBufs++;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.fill', this.names.fill, undefined, { queue: this.index, id, len, usedIdx: (this.usedIdx + this.pending - 1) & 0xffff });
  }

  /**
   * Used elements for `chains[0..count)` with `len` bytes written each (one number for all, or
   * one per chain): the same as `count` calls of `fill`, not visible until `flush()`. Too many
   * for the ring before a flush throws, with nothing written.
   */
  fillBurst(chains: readonly DescriptorChain[], count: number, len: number | ArrayLike<number>): void {
    if (!Number.isInteger(count) || count < 0 || count > chains.length) {
      throw new VirqError(VirtioRingErrorCode.BadArgument, `fillBurst count must be an integer from 0 to chains.length (${chains.length}), got ${count}`, { errno: 'EINVAL' });
    }
    const one = typeof len === 'number';
    if (!one && len.length < count) throw new VirqError(VirtioRingErrorCode.BadArgument, `fillBurst needs ${count} lengths, got ${len.length}`, { errno: 'EINVAL' });
    if (this._status !== 'ok') return;
    if (this.pending + count > this.size) {
      throw new VirqError(VirtioRingErrorCode.BadArgument, `fill called ${this.pending + count} times without flush on a ${this.size}-entry queue; flush first`, { errno: 'ENOSPC' });
    }
    const t = this.trace;
    if (t !== undefined && t.on) {
      for (let k = 0; k < count; k++) this.fill(chains[k]!, one ? len : len[k]!);
      return;
    }
    const usedU32 = this.usedU32;
    const mask = this.mask;
    const ring32 = this.usedRing32;
    const base = this.usedIdx + this.pending;
    for (let k = 0; k < count; k++) {
      const o = ring32 + 2 * ((base + k) & mask);
      usedU32[o] = chains[k]!.id;
      usedU32[o + 1] = one ? len : len[k]!;
    }
    this.pending += count;
    this.pendingBufs += count;
  }

  /**
   * VIRTIO_F_IN_ORDER batching (FACTS §1.2): one used element for the last of `count`
   * buffers completed in order; the ones before it are implicitly used.
   */
  fillInOrderBatch(last: DescriptorChain | number, len: number, count: number): void {
    if (!this.features.inOrder) throw new VirqError(VirtioRingErrorCode.BadArgument, 'fillInOrderBatch needs VIRTIO_F_IN_ORDER negotiated', { errno: 'EINVAL' });
    if (!Number.isInteger(count) || count < 1) throw new VirqError(VirtioRingErrorCode.BadArgument, `an in-order batch has at least 1 buffer, got ${count}`, { errno: 'EINVAL' });
    this.fill(last, len);
    this.pendingBufs += count - 1;
  }

  /** Publishes every filled element (QEMU virtqueue_flush): one atomic used.idx store. */
  flush(): number {
    const count = this.pending;
    if (count === 0 || this._status !== 'ok') return 0;
    const old = this.usedIdx;
    const nw = (old + count) & 0xffff;
    Atomics.store(this.usedU16, this.used16 + 1, nw);
    this.usedIdx = nw;
    this.inuse = Math.max(0, this.inuse - this.pendingBufs);
    this.pending = 0;
    this.pendingBufs = 0;
    // If signalled_used fell behind by more than this batch, its window is meaningless.
    if ((((nw - this.signalledUsed) << 16) >> 16) < ((nw - old) & 0xffff)) this.signalledUsedValid = false;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.flush', this.names.flush, undefined, { queue: this.index, count, oldUsedIdx: old, newUsedIdx: nw });
    return count;
  }

  /** fill + flush of one chain (QEMU virtqueue_push). */
  push(chain: DescriptorChain | number, len: number): void {
    this.fill(chain, len);
    this.flush();
  }

  /**
   * Whether the driver wants a used-buffer notification now (QEMU virtio_split_should_notify,
   * DPDK vhost_vring_call_split, vhost_notify): NOTIFY_ON_EMPTY; else without EVENT_IDX
   * avail.flags NO_INTERRUPT; else `vring_need_event(used_event, used_idx, signalled_used)`,
   * always true for the first notification after (re)configuration.
   */
  shouldNotify(): boolean {
    if (this._status !== 'ok') return false;
    let notify: boolean;
    let event = -1;
    let flags = 0;
    let old = this.signalledUsed;
    if (this.features.notifyOnEmpty && this.inuse === 0 && this.isEmpty()) {
      notify = true;
    } else if (!this.eventIdx) {
      flags = Atomics.load(this.availU16, this.avail16);
      notify = (flags & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    } else {
      const valid = this.signalledUsedValid;
      this.signalledUsedValid = true;
      old = this.signalledUsed;
      this.signalledUsed = this.usedIdx;
      event = Atomics.load(this.availU16, this.avail16 + 2 + this.size);
      notify = !valid || vringNeedEvent(event, this.usedIdx, old);
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.should_notify', this.names.shouldNotify, undefined, { queue: this.index, oldIdx: old, newIdx: this.usedIdx, event, flags, notify });
    return notify;
  }

  /** Sends the used-buffer notification if `shouldNotify()` says so (QEMU virtio_notify). */
  notify(): boolean {
    if (!this.shouldNotify()) return false;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.call', this.names.call, this.names.callCaller, { queue: this.index, usedIdx: this.usedIdx });
    if (this.callFn !== undefined) this.callFn();
    return true;
  }

  /**
   * Asks the driver for no kicks (QEMU virtio_queue_set_notification(vq, 0)): sets
   * VRING_USED_F_NO_NOTIFY, or with EVENT_IDX stops moving avail_event.
   */
  disableNotification(): void {
    if (this._status !== 'ok') return;
    this.notification = false;
    if (!this.eventIdx) Atomics.store(this.usedU16, this.used16, Atomics.load(this.usedU16, this.used16) | VRING_USED_F_NO_NOTIFY);
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.set_notification', this.names.disableNotify, undefined, { queue: this.index, enabled: false, availEvent: -1, pending: false });
  }

  /**
   * Asks for kicks again and closes the race (QEMU virtio_queue_set_notification(vq, 1) then
   * the caller's `virtio_queue_empty` re-check; vhost_enable_notify): with EVENT_IDX writes
   * avail_event = avail.idx, else clears NO_NOTIFY; full barrier; re-reads avail.idx.
   * Returns true when buffers are pending — the caller must process them (and may disable
   * again) rather than wait for a kick that will not come.
   */
  enableNotification(): boolean {
    if (this._status !== 'ok') return false;
    this.notification = true;
    let ev = -1;
    if (this.eventIdx) {
      ev = Atomics.load(this.availU16, this.avail16 + 1);
      Atomics.store(this.usedU16, this.used16 + 2 + 4 * this.size, ev);
    } else {
      Atomics.store(this.usedU16, this.used16, Atomics.load(this.usedU16, this.used16) & ~VRING_USED_F_NO_NOTIFY);
    }
    const pending = !this.isEmpty();
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.set_notification', this.names.enableNotify, undefined, { queue: this.index, enabled: true, availEvent: ev, pending });
    return pending;
  }

  /** Copies the chain's readable bytes into `dst` (iov_to_buf); returns bytes copied. */
  readFromChain(chain: DescriptorChain, dst: Uint8Array, offset = 0): number {
    return copyFromChain(this.mem, chain, dst, offset);
  }
  /** Copies `src` into the chain's writable segments (iov_from_buf); returns bytes written. */
  writeToChain(chain: DescriptorChain, src: Uint8Array, offset = 0): number {
    return copyToChain(this.mem, chain, src, offset);
  }

  /**
   * After a back end stopped (vhost_virtqueue_stop): take the used index the back end left in
   * the ring (QEMU virtio_queue_update_used_idx reads used->idx), which differs from
   * last_avail_idx when chains were in flight.
   */
  updateUsedIdx(): void {
    const u = Atomics.load(this.usedU16, this.used16 + 1);
    this.inuse = Math.min(this.size, (this.lastAvailIdx - u) & 0xffff);
    this.usedIdx = u;
    this.pending = this.pendingBufs = 0;
  }

  /** The u32 vhost GET_VRING_BASE returns for a split ring: last_avail_idx. */
  getVringBase(): number {
    return this.lastAvailIdx;
  }
  /**
   * vhost SET_VRING_BASE: restarts at `base` (DPDK sets last_used_idx = last_avail_idx for a
   * split ring); the next interrupt decision notifies unconditionally.
   */
  setVringBase(base: number): void {
    if (!Number.isInteger(base) || base < 0 || base > 0xffff) {
      throw new VirqError(VirtioRingErrorCode.BadArgument, `split ring base must be a u16, got ${base}`, { errno: 'EINVAL' });
    }
    this.lastAvailIdx = this.shadowAvailIdx = this.usedIdx = base;
    this.signalledUsedValid = false;
    this.inuse = 0;
    this.pending = this.pendingBufs = 0;
  }

  /** Back to the state after queue setup (virtio_queue_reset); clears NEEDS_RESET only if the layout maps. */
  reset(): void {
    this.lastAvailIdx = this.shadowAvailIdx = this.usedIdx = this.signalledUsed = 0;
    this.signalledUsedValid = false;
    this.inuse = this.pending = this.pendingBufs = 0;
    this.notification = true;
    if (this._error === undefined || (this._error.code !== VirtioRingErrorCode.BadLayout && this._error.code !== VirtioRingErrorCode.BadQueueSize)) {
      this._status = 'ok';
      this._error = undefined;
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.reset', this.names.reset, undefined, { queue: this.index });
  }

  snapshot(): Snapshot<SplitDeviceState> {
    return {
      type: 'virtio-ring.split-device',
      version: 1,
      state: { lastAvailIdx: this.lastAvailIdx, shadowAvailIdx: this.shadowAvailIdx, usedIdx: this.usedIdx, signalledUsed: this.signalledUsed, signalledUsedValid: this.signalledUsedValid, inuse: this.inuse, notification: this.notification, status: this._status },
    };
  }

  restore(snapshot: Snapshot<SplitDeviceState>): void {
    const s = checkSnapshot(snapshot, 'virtio-ring.split-device', 1);
    for (const k of ['lastAvailIdx', 'shadowAvailIdx', 'usedIdx', 'signalledUsed'] as const) {
      if (!Number.isInteger(s[k]) || s[k] < 0 || s[k] > 0xffff) throw new VirqError(VirtioRingErrorCode.BadSnapshot, `split-device snapshot field ${k} must be a u16, got ${String(s[k])}`);
    }
    if (!Number.isInteger(s.inuse) || s.inuse < 0 || s.inuse > this.size) throw new VirqError(VirtioRingErrorCode.BadSnapshot, `split-device snapshot inuse must be 0..${this.size}, got ${String(s.inuse)}`);
    this.lastAvailIdx = s.lastAvailIdx;
    this.shadowAvailIdx = s.shadowAvailIdx;
    this.usedIdx = s.usedIdx;
    this.signalledUsed = s.signalledUsed;
    this.signalledUsedValid = s.signalledUsedValid === true;
    this.inuse = s.inuse;
    this.notification = s.notification !== false;
    this.pending = this.pendingBufs = 0;
    if (s.status === 'needs-reset' && this._status === 'ok') this.fail(VirtioRingErrorCode.BadSnapshot, 'restored a queue that needed a reset', {});
  }

  private fail(code: VirtioRingErrorCode, message: string, details: Record<string, unknown>): false {
    if (this._status !== 'ok') return false;
    this._status = 'needs-reset';
    const err = new VirqError(code, `virtqueue ${this.index}: ${message}`, { errno: 'EINVAL', details: { queue: this.index, ...details } });
    this._error = err;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.error', this.names.error, undefined, { queue: this.index, code, message: err.message });
    if (this.onError !== undefined) this.onError(err);
    return false;
  }

  /** Whether [gpa, gpa+len) is guest memory, via a one-region cache. */
  private inMemory(gpa: number, len: number): boolean {
    const r = this.dataRegion;
    if (r !== undefined && gpa >= r.gpa && gpa + len <= r.end) return true;
    const f = this.mem.find(gpa, len);
    if (f !== undefined) {
      this.dataRegion = f;
      this.dataGpa = f.gpa;
      this.dataEnd = f.end;
      return true;
    }
    return this.mem.isValid(gpa, len);
  }

  /**
   * Walks the chain at `head` (QEMU virtqueue_split_pop + virtqueue_split_read_next_desc):
   * direct descriptors, then at most one indirect table. Every step is bounded by the table
   * size, so a loop ends as an error after `max` descriptors.
   */
  private walk(c: DescriptorChain, head: number): boolean {
    c.reset(head);
    let u32 = this.descU32;
    let u16 = this.descU16;
    let base = this.desc32;
    let max = this.size;
    let i = head;
    let steps = 0;
    let total = 0;
    let segs = 0;
    let indirect = false;
    for (;;) {
      if (++steps > max) return this.fail(VirtioRingErrorCode.DescLoop, `Looped descriptor (more than ${max} descriptors in ${indirect ? 'the indirect table' : 'the chain'} at head ${head})`, { head, max });
      const o = base + 4 * i;
      const lo = u32[o]!;
      const hi = u32[o + 1]!;
      const len = u32[o + 2]!;
      const fo = 2 * (o + 3);
      const flags = u16[fo]!;
      if ((flags & VRING_DESC_F_INDIRECT) !== 0) {
        if (indirect) return this.fail(VirtioRingErrorCode.NestedIndirect, `indirect descriptor inside the indirect table of head ${head}`, { head });
        if (len === 0 || (len & 15) !== 0) return this.fail(VirtioRingErrorCode.IndirectBadSize, `Invalid size for indirect buffer table (${len} bytes, head ${head})`, { head, len });
        const addr = hi * 4294967296 + lo;
        const r = this.mem.find(addr, len);
        if (r === undefined || r.u32 === undefined || r.u16 === undefined || (addr - r.gpa) % 4 !== 0) {
          return this.fail(VirtioRingErrorCode.IndirectUnmappable, `Cannot map indirect buffer [0x${addr.toString(16)}, +${len}) of head ${head}`, { head, addr, len });
        }
        u32 = r.u32;
        u16 = r.u16;
        base = (addr - r.gpa) / 4;
        max = len / 16;
        i = 0;
        steps = 0;
        indirect = true;
        c.indirect = true;
        continue;
      }
      if (!indirect) c.ndescs++;
      if (len === 0) return this.fail(VirtioRingErrorCode.ZeroLength, `zero sized buffers are not allowed (head ${head})`, { head });
      const addr = hi * 4294967296 + lo;
      if (!this.inMemory(addr, len)) return this.fail(VirtioRingErrorCode.DescOutOfMemory, `bogus descriptor: [0x${addr.toString(16)}, +${len}) is not guest memory (head ${head})`, { head, addr, len });
      total += len;
      if (total > 0xffffffff) return this.fail(VirtioRingErrorCode.LengthOverflow, `chain at head ${head} is longer than 2^32 - 1 bytes`, { head, total });
      if (++segs > this.maxSegments) return this.fail(VirtioRingErrorCode.ChainTooLong, `chain at head ${head} has more than ${this.maxSegments} segments`, { head, max: this.maxSegments });
      if ((flags & VRING_DESC_F_WRITE) !== 0) {
        const n = c.inNum++;
        c.inAddr[n] = addr;
        c.inLen[n] = len;
        c.inBytes += len;
      } else {
        if (c.inNum !== 0 && !this.anyOrder) return this.fail(VirtioRingErrorCode.DescOrder, `Incorrect order for descriptors: readable after writable (head ${head})`, { head });
        const n = c.outNum++;
        c.outAddr[n] = addr;
        c.outLen[n] = len;
        c.outBytes += len;
      }
      if ((flags & VRING_DESC_F_NEXT) === 0) return true;
      const next = u16[fo + 1]!;
      if (next >= max) return this.fail(VirtioRingErrorCode.NextOutOfRange, `Desc next is ${next} (table of ${max}, head ${head})`, { head, next, max });
      i = next;
    }
  }
}
