import { VirqError, checkSnapshot, type GuestMemory, type MemoryRegion, type Snapshot } from '@virq/core';
import {
  DEFAULT_MAX_SEGMENTS,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_PACKED_DESC_F_AVAIL,
  VRING_PACKED_DESC_F_USED,
  VRING_PACKED_EVENT_FLAG_DESC,
  VRING_PACKED_EVENT_FLAG_DISABLE,
  VRING_PACKED_EVENT_FLAG_ENABLE,
} from './constants.js';
import { DescriptorChain, copyFromChain, copyToChain } from './descriptor-chain.js';
import { deviceFunctionNames, type DeviceFunctionNames, type VirtqueueDeviceConfig } from './device-config.js';
import { VirtioRingErrorCode, type VirtqueueStatus } from './errors.js';
import { packedSizeProblem } from './layout.js';
import { vringNeedEvent } from './need-event.js';
import { mapRingArea, type RingArea } from './ring-area.js';
import { toRingFeatures, type RingFeatures } from './ring-features.js';
import type { VirtioRingTrace } from './trace-events.js';

export interface PackedDeviceState {
  lastAvailIdx: number;
  availWrap: boolean;
  usedIdx: number;
  usedWrap: boolean;
  signalledUsed: number;
  signalledUsedValid: boolean;
  inuse: number;
  notification: boolean;
  status: VirtqueueStatus;
}

const EMPTY: RingArea = { u16: new Uint16Array(16), u32: new Uint32Array(8), u16Base: 0, u32Base: 0 };

/**
 * The device side of a packed virtqueue (QEMU virtqueue_packed_pop / virtqueue_packed_fill /
 * virtqueue_packed_flush / virtio_packed_should_notify; DPDK's packed paths). Ownership is
 * the AVAIL/USED flag pair against the wrap counters (FACTS §2.2); the head's flags are read
 * with an atomic load before anything behind them, and a batch of used descriptors becomes
 * visible when the first one's flags are stored, atomically, last. Hostile input → NEEDS_RESET,
 * as on the split side.
 */
export class PackedVirtqueueDevice {
  readonly size: number;
  readonly index: number;
  readonly features: RingFeatures;
  readonly names: DeviceFunctionNames;

  private readonly eventIdx: boolean;
  private readonly maxSegments: number;
  private readonly anyOrder: boolean;
  private readonly trace: VirtioRingTrace | undefined;
  private readonly callFn: (() => void) | undefined;
  private readonly onError: ((e: VirqError) => void) | undefined;
  private readonly descU32: Uint32Array;
  private readonly descU16: Uint16Array;
  private readonly desc32: number;
  /** Driver Event Suppression (the device reads it): off_wrap at +0, flags at +1 (u16 indexes). */
  private readonly drvU16: Uint16Array;
  private readonly drv16: number;
  /** Device Event Suppression (the device writes it). */
  private readonly devU16: Uint16Array;
  private readonly dev16: number;

  private readonly pendId: Uint16Array;
  private readonly pendLen: Uint32Array;
  private readonly pendN: Uint16Array;
  private pending = 0;

  private lastAvailIdx = 0;
  private availWrap = true;
  private usedIdx = 0;
  private usedWrap = true;
  private signalledUsed = 0;
  private signalledUsedValid = false;
  private inuse = 0;
  /** Ring slots of the most recent pops, newest last (for unpop). */
  private poppedDescs: number[] = [];
  private notification = true;
  private _status: VirtqueueStatus = 'ok';
  private _error: VirqError | undefined;
  private dataRegion: MemoryRegion | undefined;

  constructor(
    readonly mem: GuestMemory,
    config: VirtqueueDeviceConfig,
  ) {
    this.index = config.index ?? 0;
    this.features = toRingFeatures(config.features);
    this.eventIdx = this.features.eventIdx;
    this.names = deviceFunctionNames(config.flavor ?? 'qemu', true);
    this.maxSegments = config.maxSegments ?? DEFAULT_MAX_SEGMENTS;
    this.anyOrder = config.anyOrder ?? false;
    this.trace = config.trace;
    this.callFn = config.call;
    this.onError = config.onError;
    const sizeProblem = packedSizeProblem(config.size);
    this.size = sizeProblem === undefined ? config.size : 1;
    const desc = sizeProblem === undefined ? mapRingArea(mem, config.desc, 16 * this.size, 16, 'descriptor ring') : EMPTY;
    const drv = sizeProblem === undefined ? mapRingArea(mem, config.driver, 4, 4, 'driver event suppression') : EMPTY;
    const dev = sizeProblem === undefined ? mapRingArea(mem, config.device, 4, 4, 'device event suppression') : EMPTY;
    const ok = (a: RingArea | string): RingArea => (typeof a === 'string' ? EMPTY : a);
    this.descU32 = ok(desc).u32;
    this.descU16 = ok(desc).u16;
    this.desc32 = ok(desc).u32Base;
    this.drvU16 = ok(drv).u16;
    this.drv16 = ok(drv).u16Base;
    this.devU16 = ok(dev).u16;
    this.dev16 = ok(dev).u16Base;
    this.pendId = new Uint16Array(this.size);
    this.pendLen = new Uint32Array(this.size);
    this.pendN = new Uint16Array(this.size);
    if (sizeProblem !== undefined) this.fail(VirtioRingErrorCode.BadQueueSize, sizeProblem, { size: config.size });
    else for (const a of [desc, drv, dev]) if (typeof a === 'string') { this.fail(VirtioRingErrorCode.BadLayout, `Cannot map ring: ${a}`, {}); break; }
  }

  get status(): VirtqueueStatus {
    return this._status;
  }
  get error(): VirqError | undefined {
    return this._error;
  }
  get broken(): boolean {
    return this._status !== 'ok';
  }
  /** Next slot the device looks at, and its wrap counter. */
  get lastAvail(): { idx: number; wrap: boolean } {
    return { idx: this.lastAvailIdx, wrap: this.availWrap };
  }
  get used(): { idx: number; wrap: boolean } {
    return { idx: this.usedIdx, wrap: this.usedWrap };
  }
  get inFlight(): number {
    return this.inuse;
  }

  private slotAvailable(slot: number, wrap: boolean): boolean {
    const flags = Atomics.load(this.descU16, 2 * (this.desc32 + 4 * slot + 3) + 1);
    const avail = (flags & VRING_PACKED_DESC_F_AVAIL) !== 0;
    const used = (flags & VRING_PACKED_DESC_F_USED) !== 0;
    return avail !== used && avail === wrap;
  }

  /** Whether the next slot is not available (QEMU virtio_queue_packed_empty). */
  isEmpty(): boolean {
    if (this._status !== 'ok') return true;
    return !this.slotAvailable(this.lastAvailIdx, this.availWrap);
  }

  /** Takes the next available chain (QEMU virtqueue_packed_pop); null when empty or broken. */
  pop(into?: DescriptorChain): DescriptorChain | null {
    if (this._status !== 'ok') return null;
    if (!this.slotAvailable(this.lastAvailIdx, this.availWrap)) return null;
    if (this.inuse >= this.size) {
      this.fail(VirtioRingErrorCode.QueueOverrun, 'Virtqueue size exceeded', { inuse: this.inuse, size: this.size });
      return null;
    }
    const c = into ?? new DescriptorChain();
    const start = this.lastAvailIdx;
    if (!this.walk(c, start)) return null;
    let next = start + c.ndescs;
    if (next >= this.size) {
      next -= this.size;
      this.availWrap = !this.availWrap;
    }
    this.lastAvailIdx = next;
    this.inuse++;
    this.poppedDescs.push(c.ndescs);
    if (this.poppedDescs.length > this.size) this.poppedDescs.shift();
    const t = this.trace;
    if (t !== undefined && t.on) {
      t.emit('vring.pop', this.names.pop, undefined, { queue: this.index, head: c.id, lastAvailIdx: next | (this.availWrap ? 0x8000 : 0), availIdx: start, out: c.outNum, in: c.inNum, indirect: c.indirect });
    }
    return c;
  }

  /** Writes a used descriptor for `chain` (QEMU virtqueue_packed_fill); visible at `flush()`. */
  fill(chain: DescriptorChain | { readonly id: number; readonly ndescs: number }, len: number): void {
    if (this._status !== 'ok') return;
    if (this.pending >= this.size) {
      throw new VirqError(VirtioRingErrorCode.BadArgument, `fill called ${this.pending + 1} times without flush on a ${this.size}-entry queue; flush first`, { errno: 'ENOSPC' });
    }
    const k = this.pending++;
    this.pendId[k] = chain.id;
    this.pendLen[k] = len;
    this.pendN[k] = Math.max(1, chain.ndescs);
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.fill', this.names.fill, undefined, { queue: this.index, id: chain.id, len, usedIdx: this.usedIdx });
  }

  /**
   * Publishes the filled descriptors (QEMU virtqueue_packed_flush): all but the first are
   * written, then the first one's flags, atomically, so the driver sees the batch at once.
   */
  flush(): number {
    const count = this.pending;
    if (count === 0 || this._status !== 'ok') return 0;
    const u32 = this.descU32;
    const u16 = this.descU16;
    let slot = this.usedIdx;
    let wrap = this.usedWrap;
    let firstFlags = 0;
    let firstO = 0;
    for (let k = 0; k < count; k++) {
      const o = this.desc32 + 4 * slot;
      const len = this.pendLen[k]!;
      const flags = (wrap ? VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED : 0) | (len > 0 ? VRING_DESC_F_WRITE : 0);
      u32[o + 2] = len;
      u16[2 * (o + 3)] = this.pendId[k]!;
      if (k === 0) {
        firstFlags = flags;
        firstO = o;
      } else {
        u16[2 * (o + 3) + 1] = flags;
      }
      slot += this.pendN[k]!;
      if (slot >= this.size) {
        slot -= this.size;
        wrap = !wrap;
      }
    }
    Atomics.store(u16, 2 * (firstO + 3) + 1, firstFlags);
    const old = this.usedIdx;
    if (wrap !== this.usedWrap) this.signalledUsedValid = false;
    this.usedIdx = slot;
    this.usedWrap = wrap;
    this.inuse = Math.max(0, this.inuse - count);
    this.pending = 0;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.flush', this.names.flush, undefined, { queue: this.index, count, oldUsedIdx: old, newUsedIdx: slot | (wrap ? 0x8000 : 0) });
    return count;
  }

  push(chain: DescriptorChain, len: number): void {
    this.fill(chain, len);
    this.flush();
  }

  /**
   * QEMU virtio_packed_should_notify: reads the Driver Event Suppression structure; DISABLE
   * → no, ENABLE → yes, DESC → vring_need_event against off (minus the ring size when its
   * wrap bit is not the device's used wrap counter), first one after setup always.
   */
  shouldNotify(): boolean {
    if (this._status !== 'ok') return false;
    if (this.features.notifyOnEmpty && this.inuse === 0 && this.isEmpty()) return this.traceShould(true, this.signalledUsed, -1, 0);
    const flags = Atomics.load(this.drvU16, this.drv16 + 1);
    const offWrap = Atomics.load(this.drvU16, this.drv16);
    const old = this.signalledUsed;
    const nw = this.usedIdx;
    const valid = this.signalledUsedValid;
    this.signalledUsed = nw;
    this.signalledUsedValid = true;
    if (flags === VRING_PACKED_EVENT_FLAG_DISABLE) return this.traceShould(false, old, offWrap, flags);
    if (flags === VRING_PACKED_EVENT_FLAG_ENABLE) return this.traceShould(true, old, offWrap, flags);
    let off = offWrap & 0x7fff;
    if (this.usedWrap !== (offWrap >> 15 === 1)) off -= this.size;
    return this.traceShould(!valid || vringNeedEvent(off & 0xffff, nw, old), old, offWrap, flags);
  }

  private traceShould(notify: boolean, old: number, event: number, flags: number): boolean {
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.should_notify', this.names.shouldNotify, undefined, { queue: this.index, oldIdx: old, newIdx: this.usedIdx, event, flags, notify });
    return notify;
  }

  notify(): boolean {
    if (!this.shouldNotify()) return false;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.call', this.names.call, this.names.callCaller, { queue: this.index, usedIdx: this.usedIdx });
    if (this.callFn !== undefined) this.callFn();
    return true;
  }

  /** Device Event Suppression flags := DISABLE (virtio_queue_packed_set_notification(vq, 0)). */
  disableNotification(): void {
    if (this._status !== 'ok') return;
    this.notification = false;
    Atomics.store(this.devU16, this.dev16 + 1, VRING_PACKED_EVENT_FLAG_DISABLE);
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.set_notification', this.names.disableNotify, undefined, { queue: this.index, enabled: false, availEvent: -1, pending: false });
  }

  /**
   * Re-enables kicks: with EVENT_IDX off_wrap := next slot | wrap << 15 and flags := DESC,
   * else flags := ENABLE; full barrier; returns whether the next slot is already available.
   */
  enableNotification(): boolean {
    if (this._status !== 'ok') return false;
    this.notification = true;
    let ev = -1;
    if (this.eventIdx) {
      ev = this.lastAvailIdx | (this.availWrap ? 0x8000 : 0);
      Atomics.store(this.devU16, this.dev16, ev);
      Atomics.store(this.devU16, this.dev16 + 1, VRING_PACKED_EVENT_FLAG_DESC);
    } else {
      Atomics.store(this.devU16, this.dev16 + 1, VRING_PACKED_EVENT_FLAG_ENABLE);
    }
    const pending = !this.isEmpty();
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.set_notification', this.names.enableNotify, undefined, { queue: this.index, enabled: true, availEvent: ev, pending });
    return pending;
  }

  readFromChain(chain: DescriptorChain, dst: Uint8Array, offset = 0): number {
    return copyFromChain(this.mem, chain, dst, offset);
  }
  writeToChain(chain: DescriptorChain, src: Uint8Array, offset = 0): number {
    return copyToChain(this.mem, chain, src, offset);
  }

  /**
   * Puts the last `count` popped chains back (QEMU virtqueue_unpop → virtqueue_packed_rewind):
   * last_avail_idx steps back over their ring slots, flipping the wrap counter when it crosses 0.
   */
  unpop(count = 1): boolean {
    if (this._status !== 'ok' || count < 0 || count > this.inuse || count > this.poppedDescs.length) return false;
    for (let i = 0; i < count; i++) {
      const n = this.poppedDescs.pop()!;
      if (this.lastAvailIdx < n) {
        this.lastAvailIdx = this.size + this.lastAvailIdx - n;
        this.availWrap = !this.availWrap;
      } else {
        this.lastAvailIdx -= n;
      }
      this.inuse--;
    }
    return true;
  }

  /**
   * After a back end stopped (vhost_virtqueue_stop): a packed ring's used position restarts
   * where the available one is (QEMU virtio_queue_packed_update_used_idx).
   */
  updateUsedIdx(): void {
    this.usedIdx = this.lastAvailIdx;
    this.usedWrap = this.availWrap;
  }

  /** vhost GET_VRING_BASE for a packed ring: last_avail_idx | avail_wrap_counter << 15. */
  getVringBase(): number {
    return this.lastAvailIdx | (this.availWrap ? 0x8000 : 0);
  }
  /** vhost SET_VRING_BASE (DPDK): avail and used restart at the same slot and wrap counter. */
  setVringBase(base: number): void {
    if (!Number.isInteger(base) || base < 0 || base > 0xffff || (base & 0x7fff) >= this.size) {
      throw new VirqError(VirtioRingErrorCode.BadArgument, `packed ring base must be slot | wrap << 15 with slot < ${this.size}, got ${base}`, { errno: 'EINVAL' });
    }
    this.lastAvailIdx = this.usedIdx = base & 0x7fff;
    this.availWrap = this.usedWrap = (base & 0x8000) !== 0;
    this.signalledUsedValid = false;
    this.inuse = this.pending = 0;
    this.poppedDescs = [];
  }

  reset(): void {
    this.lastAvailIdx = this.usedIdx = this.signalledUsed = 0;
    this.availWrap = this.usedWrap = true;
    this.signalledUsedValid = false;
    this.inuse = this.pending = 0;
    this.notification = true;
    if (this._error === undefined || (this._error.code !== VirtioRingErrorCode.BadLayout && this._error.code !== VirtioRingErrorCode.BadQueueSize)) {
      this._status = 'ok';
      this._error = undefined;
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.reset', this.names.reset, undefined, { queue: this.index });
  }

  snapshot(): Snapshot<PackedDeviceState> {
    return {
      type: 'virtio-ring.packed-device',
      version: 1,
      state: { lastAvailIdx: this.lastAvailIdx, availWrap: this.availWrap, usedIdx: this.usedIdx, usedWrap: this.usedWrap, signalledUsed: this.signalledUsed, signalledUsedValid: this.signalledUsedValid, inuse: this.inuse, notification: this.notification, status: this._status },
    };
  }

  restore(snapshot: Snapshot<PackedDeviceState>): void {
    const s = checkSnapshot(snapshot, 'virtio-ring.packed-device', 1);
    for (const k of ['lastAvailIdx', 'usedIdx', 'signalledUsed'] as const) {
      if (!Number.isInteger(s[k]) || s[k] < 0 || s[k] >= this.size) throw new VirqError(VirtioRingErrorCode.BadSnapshot, `packed-device snapshot field ${k} must be a slot below ${this.size}, got ${String(s[k])}`);
    }
    this.lastAvailIdx = s.lastAvailIdx;
    this.availWrap = s.availWrap === true;
    this.usedIdx = s.usedIdx;
    this.usedWrap = s.usedWrap === true;
    this.signalledUsed = s.signalledUsed;
    this.signalledUsedValid = s.signalledUsedValid === true;
    this.inuse = s.inuse;
    this.notification = s.notification !== false;
    this.pending = 0;
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

  private inMemory(gpa: number, len: number): boolean {
    const r = this.dataRegion;
    if (r !== undefined && gpa >= r.gpa && gpa + len <= r.end) return true;
    const f = this.mem.find(gpa, len);
    if (f !== undefined) {
      this.dataRegion = f;
      return true;
    }
    return this.mem.isValid(gpa, len);
  }

  private addSeg(c: DescriptorChain, addr: number, len: number, flags: number, total: number, segs: number, what: string): number {
    if (len === 0) return this.fail(VirtioRingErrorCode.ZeroLength, `zero sized buffers are not allowed (${what})`, {}) ? 0 : -1;
    if (!this.inMemory(addr, len)) return this.fail(VirtioRingErrorCode.DescOutOfMemory, `bogus descriptor: [0x${addr.toString(16)}, +${len}) is not guest memory (${what})`, { addr, len }) ? 0 : -1;
    const t = total + len;
    if (t > 0xffffffff) return this.fail(VirtioRingErrorCode.LengthOverflow, `chain is longer than 2^32 - 1 bytes (${what})`, { total: t }) ? 0 : -1;
    if (segs + 1 > this.maxSegments) return this.fail(VirtioRingErrorCode.ChainTooLong, `chain has more than ${this.maxSegments} segments (${what})`, {}) ? 0 : -1;
    if ((flags & VRING_DESC_F_WRITE) !== 0) {
      const n = c.inNum++;
      c.inAddr[n] = addr;
      c.inLen[n] = len;
      c.inBytes += len;
    } else {
      if (c.inNum !== 0 && !this.anyOrder) return this.fail(VirtioRingErrorCode.DescOrder, `Incorrect order for descriptors: readable after writable (${what})`, {}) ? 0 : -1;
      const n = c.outNum++;
      c.outAddr[n] = addr;
      c.outLen[n] = len;
      c.outBytes += len;
    }
    return t;
  }

  /** Walks the chain starting at `start` (QEMU virtqueue_packed_pop + read_next_desc). */
  private walk(c: DescriptorChain, start: number): boolean {
    c.reset(0);
    const u32 = this.descU32;
    const u16 = this.descU16;
    let slot = start;
    let total = 0;
    let segs = 0;
    for (;;) {
      if (c.ndescs >= this.size) return this.fail(VirtioRingErrorCode.ChainTooLong, `packed chain at slot ${start} is longer than the ring (${this.size})`, { start });
      c.ndescs++;
      const o = this.desc32 + 4 * slot;
      const addr = u32[o]! + u32[o + 1]! * 4294967296;
      const len = u32[o + 2]!;
      const id = u16[2 * (o + 3)]!;
      const flags = u16[2 * (o + 3) + 1]!;
      if ((flags & VRING_DESC_F_INDIRECT) !== 0) {
        if (len === 0 || (len & 15) !== 0) return this.fail(VirtioRingErrorCode.IndirectBadSize, `Invalid size for indirect buffer table (${len} bytes, slot ${slot})`, { slot, len });
        const r = this.mem.find(addr, len);
        if (r === undefined || r.u32 === undefined || r.u16 === undefined || (addr - r.gpa) % 4 !== 0) {
          return this.fail(VirtioRingErrorCode.IndirectUnmappable, `Cannot map indirect buffer [0x${addr.toString(16)}, +${len}) at slot ${slot}`, { slot, addr, len });
        }
        c.indirect = true;
        const base = (addr - r.gpa) / 4;
        const n = len / 16;
        // Packed indirect tables are used whole, in order (NEXT is not consulted).
        for (let k = 0; k < n; k++) {
          const io = base + 4 * k;
          const iflags = r.u16[2 * (io + 3) + 1]!;
          if ((iflags & VRING_DESC_F_INDIRECT) !== 0) return this.fail(VirtioRingErrorCode.NestedIndirect, `indirect descriptor inside the indirect table at slot ${slot}`, { slot });
          const t = this.addSeg(c, r.u32[io]! + r.u32[io + 1]! * 4294967296, r.u32[io + 2]!, iflags, total, segs, `indirect entry ${k} at slot ${slot}`);
          if (t < 0) return false;
          total = t;
          segs++;
        }
        c.id = id;
        break;
      }
      const t = this.addSeg(c, addr, len, flags, total, segs, `slot ${slot}`);
      if (t < 0) return false;
      total = t;
      segs++;
      if ((flags & VRING_DESC_F_NEXT) === 0) {
        c.id = id;
        break;
      }
      slot = slot + 1 === this.size ? 0 : slot + 1;
    }
    if (c.id >= this.size) return this.fail(VirtioRingErrorCode.HeadOutOfRange, `Guest says buffer id ${c.id} is available (queue size ${this.size})`, { id: c.id });
    return true;
  }
}
