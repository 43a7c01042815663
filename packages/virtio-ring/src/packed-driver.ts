import { VirqError, checkSnapshot, type GuestMemory, type Snapshot } from '@virq/core';
import {
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_PACKED_DESC_F_AVAIL,
  VRING_PACKED_DESC_F_USED,
  VRING_PACKED_EVENT_FLAG_DESC,
  VRING_PACKED_EVENT_FLAG_DISABLE,
  VRING_PACKED_EVENT_FLAG_ENABLE,
} from './constants.js';
import type { Segment } from './descriptor-chain.js';
import type { VirtqueueDriverConfig } from './driver-config.js';
import { VirtioRingErrorCode } from './errors.js';
import { packedSizeProblem } from './layout.js';
import { vringNeedEvent } from './need-event.js';
import { mapRingArea, type RingArea } from './ring-area.js';
import { toRingFeatures, type RingFeatures } from './ring-features.js';
import type { VirtioRingTrace } from './trace-events.js';

export interface PackedDriverState {
  nextAvailIdx: number;
  availWrap: boolean;
  lastUsedIdx: number;
  usedWrap: boolean;
  numAdded: number;
  numFree: number;
  freeHead: number;
  eventFlagsShadow: number;
  next: number[];
  /** Per buffer id: ring slots it occupies, 0 when free. */
  idDescs: number[];
  broken: boolean;
}

const U32 = 4294967296;

function argError(message: string): VirqError {
  return new VirqError(VirtioRingErrorCode.BadArgument, message, { errno: 'EINVAL' });
}

function area(mem: GuestMemory, gpa: number, len: number, align: number, what: string): RingArea {
  const a = mapRingArea(mem, gpa, len, align, what);
  if (typeof a === 'string') throw new VirqError(VirtioRingErrorCode.BadLayout, `cannot set up the queue: ${a}; place it in one 4-byte-aligned memory region`, { errno: 'EINVAL', details: { gpa, len } });
  return a;
}

function checkSeg(gpa: number, len: number): void {
  if (!Number.isSafeInteger(gpa) || gpa < 0) throw argError(`buffer address must be a guest physical address, got ${gpa}`);
  if (!Number.isInteger(len) || len < 1 || len > 0xffffffff) throw argError(`buffer length must be 1..2^32-1, got ${len}`);
}

/**
 * The driver side of a packed virtqueue as Linux's virtio_ring.c implements it
 * (virtqueue_add_packed, virtqueue_kick_prepare_packed, virtqueue_get_buf_ctx_packed,
 * virtqueue_{disable,enable}_cb_packed): buffer ids from a host-side free list, descriptors
 * written in ring order with the head's flags stored last (atomically), and the wrap
 * counters of FACTS §2.2. IN_ORDER is not used on this side.
 */
export class PackedVirtqueueDriver<T = unknown> {
  readonly size: number;
  readonly index: number;
  readonly features: RingFeatures;
  lastLen = 0;

  private readonly eventIdx: boolean;
  private readonly trace: VirtioRingTrace | undefined;
  private readonly notifyFn: (() => boolean | void) | undefined;
  private readonly callbackFn: (() => void) | undefined;
  private readonly descU32: Uint32Array;
  private readonly descU16: Uint16Array;
  private readonly desc32: number;
  private readonly drvU16: Uint16Array;
  private readonly drv16: number;
  private readonly devU32: Uint32Array;
  private readonly dev32: number;
  private readonly indirect: RingArea | undefined;
  private readonly indirectMax: number;
  private readonly indirectGpaBase: number;

  private readonly next: Uint16Array;
  private readonly idDescs: Uint16Array;
  private readonly tokens: (T | undefined)[];

  private nextAvailIdx = 0;
  private availWrap = true;
  private lastUsedIdx = 0;
  private usedWrap = true;
  private numAdded = 0;
  private _numFree: number;
  private freeHead = 0;
  private eventFlagsShadow = VRING_PACKED_EVENT_FLAG_ENABLE;
  private eventTriggered = false;
  private _broken = false;

  constructor(
    readonly mem: GuestMemory,
    config: VirtqueueDriverConfig,
  ) {
    const p = packedSizeProblem(config.size);
    if (p !== undefined) throw new VirqError(VirtioRingErrorCode.BadQueueSize, p, { errno: 'EINVAL', details: { size: config.size } });
    const size = config.size;
    this.size = size;
    this.index = config.index ?? 0;
    this.features = toRingFeatures(config.features);
    this.eventIdx = this.features.eventIdx;
    this.trace = config.trace;
    this.notifyFn = config.notify;
    this.callbackFn = config.callback;
    const d = area(mem, config.desc, 16 * size, 16, 'descriptor ring');
    const drv = area(mem, config.driver, 4, 4, 'driver event suppression');
    const dev = area(mem, config.device, 4, 4, 'device event suppression');
    this.descU32 = d.u32;
    this.descU16 = d.u16;
    this.desc32 = d.u32Base;
    this.drvU16 = drv.u16;
    this.drv16 = drv.u16Base;
    this.devU32 = dev.u32;
    this.dev32 = dev.u32Base;
    if (config.indirectArea !== undefined && this.features.indirectDesc) {
      const { gpa, maxEntries } = config.indirectArea;
      if (!Number.isInteger(maxEntries) || maxEntries < 2 || maxEntries > 65536) throw argError(`indirectArea.maxEntries must be 2..65536, got ${maxEntries}`);
      this.indirect = area(mem, gpa, size * maxEntries * 16, 16, 'indirect table area');
      this.indirectMax = maxEntries;
      this.indirectGpaBase = gpa;
    } else {
      this.indirect = undefined;
      this.indirectMax = 0;
      this.indirectGpaBase = 0;
    }
    this.next = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.next[i] = (i + 1) & 0xffff;
    this.idDescs = new Uint16Array(size);
    this.tokens = new Array<T | undefined>(size).fill(undefined);
    this._numFree = size;
  }

  get numFree(): number {
    return this._numFree;
  }
  get broken(): boolean {
    return this._broken;
  }
  /** Next slot to fill | avail wrap counter << 15. */
  get availIdx(): number {
    return this.nextAvailIdx | (this.availWrap ? 0x8000 : 0);
  }
  get lastUsed(): number {
    return this.lastUsedIdx | (this.usedWrap ? 0x8000 : 0);
  }

  addOutbuf(gpa: number, len: number, token: T): boolean {
    return this.addOne(gpa, len, 0, token);
  }
  addInbuf(gpa: number, len: number, token: T): boolean {
    return this.addOne(gpa, len, VRING_DESC_F_WRITE, token);
  }

  private addOne(gpa: number, len: number, write: number, token: T): boolean {
    if (token === undefined) throw argError('virtqueue_add needs a token (Linux: data must not be NULL)');
    checkSeg(gpa, len);
    if (this._broken) return false;
    if (this._numFree < 1) {
      if (write === 0) this.notify();
      return false;
    }
    const id = this.freeHead;
    const slot = this.nextAvailIdx;
    const o = this.desc32 + 4 * slot;
    const u32 = this.descU32;
    u32[o] = gpa % U32;
    u32[o + 1] = (gpa / U32) >>> 0;
    u32[o + 2] = len;
    this.descU16[2 * (o + 3)] = id;
    Atomics.store(this.descU16, 2 * (o + 3) + 1, write | this.availUsedFlags(this.availWrap));
    this.advance(1);
    this.publish(id, 1, token, write === 0 ? 1 : 0, write === 0 ? 0 : 1, false, slot);
    return true;
  }

  /** virtqueue_add_packed: readable `out` then writable `inn`; false on no room / broken. */
  addSgs(out: readonly Segment[], inn: readonly Segment[], token: T): boolean {
    const total = out.length + inn.length;
    if (total === 0) throw argError('virtqueue_add needs at least one buffer');
    if (token === undefined) throw argError('virtqueue_add needs a token (Linux: data must not be NULL)');
    for (const s of out) checkSeg(s.gpa, s.len);
    for (const s of inn) checkSeg(s.gpa, s.len);
    if (this._broken) return false;
    const useIndirect = this.indirect !== undefined && total > 1 && total <= this.indirectMax && this._numFree > 0;
    const descs = useIndirect ? 1 : total;
    if (this._numFree < descs) {
      if (out.length > 0) this.notify();
      return false;
    }
    const id = this.freeHead;
    const head = this.nextAvailIdx;
    const headO = this.desc32 + 4 * head;
    let headFlags: number;
    if (useIndirect) {
      const ind = this.indirect!;
      const base = ind.u32Base + id * this.indirectMax * 4;
      for (let k = 0; k < total; k++) {
        const s = k < out.length ? out[k]! : inn[k - out.length]!;
        const o = base + 4 * k;
        ind.u32[o] = s.gpa % U32;
        ind.u32[o + 1] = (s.gpa / U32) >>> 0;
        ind.u32[o + 2] = s.len;
        ind.u16[2 * (o + 3)] = 0;
        ind.u16[2 * (o + 3) + 1] = k < out.length ? 0 : VRING_DESC_F_WRITE;
      }
      const g = this.indirectGpaBase + id * this.indirectMax * 16;
      this.descU32[headO] = g % U32;
      this.descU32[headO + 1] = (g / U32) >>> 0;
      this.descU32[headO + 2] = total * 16;
      this.descU16[2 * (headO + 3)] = id;
      headFlags = VRING_DESC_F_INDIRECT | this.availUsedFlags(this.availWrap);
      this.advance(1);
    } else {
      headFlags = 0;
      let slot = head;
      let wrap = this.availWrap;
      for (let k = 0; k < total; k++) {
        const s = k < out.length ? out[k]! : inn[k - out.length]!;
        const o = this.desc32 + 4 * slot;
        this.descU32[o] = s.gpa % U32;
        this.descU32[o + 1] = (s.gpa / U32) >>> 0;
        this.descU32[o + 2] = s.len;
        this.descU16[2 * (o + 3)] = id;
        const flags = (k < out.length ? 0 : VRING_DESC_F_WRITE) | (k + 1 < total ? VRING_DESC_F_NEXT : 0) | this.availUsedFlags(wrap);
        if (k === 0) headFlags = flags;
        else this.descU16[2 * (o + 3) + 1] = flags;
        if (++slot === this.size) {
          slot = 0;
          wrap = !wrap;
        }
      }
      this.advance(total);
    }
    // The head's flags last: the device sees the whole chain or none of it.
    Atomics.store(this.descU16, 2 * (headO + 3) + 1, headFlags);
    this.publish(id, descs, token, out.length, inn.length, useIndirect, head);
    return true;
  }

  private availUsedFlags(wrap: boolean): number {
    return wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
  }

  private advance(n: number): void {
    let s = this.nextAvailIdx + n;
    if (s >= this.size) {
      s -= this.size;
      this.availWrap = !this.availWrap;
    }
    this.nextAvailIdx = s;
  }

  private publish(id: number, descs: number, token: T, outN: number, inN: number, indirect: boolean, head: number): void {
    this._numFree -= descs;
    this.freeHead = this.next[id]!;
    this.idDescs[id] = descs;
    this.tokens[id] = token;
    // Linux counts descriptors here (slots are what the event offset is compared with).
    this.numAdded += descs;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.add', 'virtqueue_add_packed', 'virtqueue_add', { queue: this.index, head, out: outN, in: inN, availIdx: this.availIdx, indirect });
  }

  /**
   * virtqueue_kick_prepare_packed: reads the Device Event Suppression structure as one 32-bit
   * snapshot; flags other than DESC decide alone (kick unless DISABLE); DESC compares
   * off_wrap (minus the ring size when from the other lap) with vring_need_event.
   */
  kickPrepare(): boolean {
    const nw = this.nextAvailIdx;
    const old = (nw - this.numAdded) & 0xffff;
    this.numAdded = 0;
    const snap = Atomics.load(this.devU32, this.dev32);
    const offWrap = snap & 0xffff;
    const flags = snap >>> 16;
    let needs: boolean;
    if (flags !== VRING_PACKED_EVENT_FLAG_DESC) {
      needs = flags !== VRING_PACKED_EVENT_FLAG_DISABLE;
    } else {
      let ev = offWrap & 0x7fff;
      if ((offWrap >> 15 === 1) !== this.availWrap) ev -= this.size;
      needs = vringNeedEvent(ev & 0xffff, nw, old);
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.kick_prepare', 'virtqueue_kick_prepare', undefined, { queue: this.index, oldIdx: old, newIdx: nw, event: offWrap, flags, needsKick: needs });
    return needs;
  }

  notify(): boolean {
    if (this._broken) return false;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.notify', 'virtqueue_notify', 'virtqueue_kick', { queue: this.index, availIdx: this.availIdx });
    if (this.notifyFn !== undefined && this.notifyFn() === false) {
      this._broken = true;
      return false;
    }
    return true;
  }

  kick(): boolean {
    return this.kickPrepare() ? this.notify() : false;
  }

  private isUsed(slot: number, wrap: boolean): boolean {
    const flags = Atomics.load(this.descU16, 2 * (this.desc32 + 4 * slot + 3) + 1);
    const avail = (flags & VRING_PACKED_DESC_F_AVAIL) !== 0;
    const used = (flags & VRING_PACKED_DESC_F_USED) !== 0;
    return avail === used && used === wrap;
  }

  moreUsed(): boolean {
    return this.isUsed(this.lastUsedIdx, this.usedWrap);
  }

  /** virtqueue_get_buf_ctx_packed: next used buffer's token (length in `lastLen`) or undefined. */
  getBuf(): T | undefined {
    if (this._broken || !this.isUsed(this.lastUsedIdx, this.usedWrap)) return undefined;
    const o = this.desc32 + 4 * this.lastUsedIdx;
    const id = this.descU16[2 * (o + 3)]!;
    const len = this.descU32[o + 2]!;
    if (id >= this.size) return this.breakRing(VirtioRingErrorCode.UsedIdOutOfRange, `id ${id} out of range`);
    const n = this.idDescs[id]!;
    if (n === 0) return this.breakRing(VirtioRingErrorCode.UsedIdNotHead, `id ${id} is not a head!`);
    const token = this.tokens[id];
    this.tokens[id] = undefined;
    this.idDescs[id] = 0;
    this._numFree += n;
    this.next[id] = this.freeHead;
    this.freeHead = id;
    let s = this.lastUsedIdx + n;
    if (s >= this.size) {
      s -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    this.lastUsedIdx = s;
    this.lastLen = len;
    if (this.eventFlagsShadow === VRING_PACKED_EVENT_FLAG_DESC) Atomics.store(this.drvU16, this.drv16, this.lastUsed);
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.get_buf', 'virtqueue_get_buf_ctx_packed', 'virtqueue_get_buf_ctx', { queue: this.index, id, len, lastUsedIdx: this.lastUsed });
    return token;
  }

  private breakRing(code: VirtioRingErrorCode, message: string): undefined {
    this._broken = true;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.broken', 'virtqueue_get_buf_ctx_packed', 'BAD_RING', { queue: this.index, code, message });
    return undefined;
  }

  disableCb(): void {
    if (this.eventFlagsShadow !== VRING_PACKED_EVENT_FLAG_DISABLE) {
      this.eventFlagsShadow = VRING_PACKED_EVENT_FLAG_DISABLE;
      if (!this.eventTriggered) Atomics.store(this.drvU16, this.drv16 + 1, VRING_PACKED_EVENT_FLAG_DISABLE);
      this.traceCb(false, false);
    }
  }

  /** virtqueue_enable_cb_prepare_packed: returns last_used | wrap << 15 for `poll`. */
  enableCbPrepare(): number {
    this.eventTriggered = false;
    if (this.eventIdx) Atomics.store(this.drvU16, this.drv16, this.lastUsed);
    if (this.eventFlagsShadow === VRING_PACKED_EVENT_FLAG_DISABLE) {
      this.eventFlagsShadow = this.eventIdx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE;
      Atomics.store(this.drvU16, this.drv16 + 1, this.eventFlagsShadow);
    }
    return this.lastUsed;
  }

  /** virtqueue_poll_packed: whether the slot named by `opaque` has been used. */
  poll(opaque: number): boolean {
    if (this._broken) return false;
    return this.isUsed(opaque & 0x7fff, (opaque & 0x8000) !== 0);
  }

  enableCb(): boolean {
    const pending = this.poll(this.enableCbPrepare());
    this.traceCb(true, pending);
    return !pending;
  }

  /** virtqueue_enable_cb_delayed_packed: event ¾ of the outstanding descriptors ahead. */
  enableCbDelayed(): boolean {
    this.eventTriggered = false;
    if (this.eventIdx) {
      const bufs = Math.floor(((this.size - this._numFree) * 3) / 4);
      let idx = this.lastUsedIdx + bufs;
      let wrap = this.usedWrap;
      if (idx >= this.size) {
        idx -= this.size;
        wrap = !wrap;
      }
      Atomics.store(this.drvU16, this.drv16, idx | (wrap ? 0x8000 : 0));
    }
    if (this.eventFlagsShadow === VRING_PACKED_EVENT_FLAG_DISABLE) {
      this.eventFlagsShadow = this.eventIdx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE;
      Atomics.store(this.drvU16, this.drv16 + 1, this.eventFlagsShadow);
    }
    const pending = this.isUsed(this.lastUsedIdx, this.usedWrap);
    this.traceCb(true, pending);
    return !pending;
  }

  private traceCb(enabled: boolean, pending: boolean): void {
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.set_cb', enabled ? 'virtqueue_enable_cb' : 'virtqueue_disable_cb', undefined, { queue: this.index, enabled, usedEvent: this.drvU16[this.drv16]!, pending });
  }

  interrupt(): boolean {
    const more = this.moreUsed();
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.interrupt', 'vring_interrupt', 'vp_vring_interrupt', { queue: this.index, lastUsedIdx: this.lastUsed, more });
    if (!more) return false;
    if (this._broken) return true;
    if (this.eventIdx) this.eventTriggered = true;
    if (this.callbackFn !== undefined) this.callbackFn();
    return true;
  }

  snapshot(): Snapshot<PackedDriverState> {
    return {
      type: 'virtio-ring.packed-driver',
      version: 1,
      state: {
        nextAvailIdx: this.nextAvailIdx,
        availWrap: this.availWrap,
        lastUsedIdx: this.lastUsedIdx,
        usedWrap: this.usedWrap,
        numAdded: this.numAdded,
        numFree: this._numFree,
        freeHead: this.freeHead,
        eventFlagsShadow: this.eventFlagsShadow,
        next: Array.from(this.next),
        idDescs: Array.from(this.idDescs),
        broken: this._broken,
      },
    };
  }

  restore(snapshot: Snapshot<PackedDriverState>, tokens?: ReadonlyMap<number, T>): void {
    const s = checkSnapshot(snapshot, 'virtio-ring.packed-driver', 1);
    if (s.next.length !== this.size || s.idDescs.length !== this.size) {
      throw new VirqError(VirtioRingErrorCode.BadSnapshot, `packed-driver snapshot is for a queue of ${s.next.length} entries, this queue has ${this.size}`);
    }
    this.nextAvailIdx = s.nextAvailIdx;
    this.availWrap = s.availWrap;
    this.lastUsedIdx = s.lastUsedIdx;
    this.usedWrap = s.usedWrap;
    this.numAdded = s.numAdded;
    this._numFree = s.numFree;
    this.freeHead = s.freeHead;
    this.eventFlagsShadow = s.eventFlagsShadow;
    this.next.set(s.next);
    this.idDescs.set(s.idDescs);
    this._broken = s.broken;
    for (let id = 0; id < this.size; id++) this.tokens[id] = this.idDescs[id] === 0 ? undefined : (tokens?.get(id) ?? (id as unknown as T));
  }
}
