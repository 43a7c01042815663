import { VirqError, checkSnapshot, type GuestMemory, type Snapshot } from '@virq/core';
import { VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY } from './constants.js';
import type { Segment } from './descriptor-chain.js';
import type { VirtqueueDriverConfig } from './driver-config.js';
import { VirtioRingErrorCode } from './errors.js';
import { splitAreaSizes, splitSizeProblem } from './layout.js';
import { vringNeedEvent } from './need-event.js';
import { mapRingArea, type RingArea } from './ring-area.js';
import { toRingFeatures, type RingFeatures } from './ring-features.js';
import type { VirtioRingTrace } from './trace-events.js';

/** Driver-side split queue state (tokens are host objects and are not part of it). */
export interface SplitDriverState {
  availIdxShadow: number;
  lastUsedIdx: number;
  numAdded: number;
  availFlagsShadow: number;
  freeHead: number;
  numFree: number;
  /** Host-side free-list links (Linux desc_extra[].next). */
  next: number[];
  /** Per head: descriptors the buffer occupies, 0 when not a head in flight. */
  chainLen: number[];
  /** Per avail slot: the head placed there (IN_ORDER completion order). */
  availHeads: number[];
  completed: number;
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

/**
 * The driver side of a split virtqueue as Linux's drivers/virtio/virtio_ring.c implements it
 * (vring_virtqueue, split variant): a host-side free list of descriptors, `add*` writing the
 * chain, the avail ring entry and then avail.idx (virtqueue_add_split), `kickPrepare`
 * (virtqueue_kick_prepare_split), `getBuf` (virtqueue_get_buf_ctx_split), callback
 * suppression (virtqueue_disable_cb / enable_cb / enable_cb_delayed) and `interrupt`
 * (vring_interrupt). Everything it shares with the device is in guest memory.
 *
 * It trusts the device no more than Linux does: an impossible used element marks the queue
 * broken (BAD_RING) with a `vring.broken` event, and later calls do nothing.
 */
export class SplitVirtqueueDriver<T = unknown> {
  readonly size: number;
  readonly index: number;
  readonly features: RingFeatures;
  /** The last getBuf()'s used length (Linux's `*len` out-parameter). */
  lastLen = 0;

  private readonly mask: number;
  private readonly eventIdx: boolean;
  private readonly inOrder: boolean;
  private readonly publishOnKick: boolean;
  private readonly trace: VirtioRingTrace | undefined;
  private readonly notifyFn: (() => boolean | void) | undefined;
  private readonly callbackFn: (() => void) | undefined;

  private readonly descU32: Uint32Array;
  private readonly descU16: Uint16Array;
  private readonly desc32: number;
  private readonly availU16: Uint16Array;
  private readonly avail16: number;
  private readonly usedU16: Uint16Array;
  private readonly usedU32: Uint32Array;
  private readonly used16: number;
  private readonly usedRing32: number;
  private readonly indirect: RingArea | undefined;
  private readonly indirectMax: number;
  private readonly indirectGpaBase: number;

  private readonly next: Uint16Array;
  private readonly chainLen: Uint16Array;
  private readonly inBytes: Float64Array;
  private readonly availHeads: Uint16Array;
  private readonly tokens: (T | undefined)[];

  private availIdxShadow = 0;
  private lastUsedIdx = 0;
  private usedIdxSeen = 0;
  private numAdded = 0;
  private availFlagsShadow = 0;
  private freeHead = 0;
  private freeTail: number;
  private _numFree: number;
  private completed = 0;
  private batchLastId = -1;
  private batchLastLen = 0;
  private eventTriggered = false;
  private _broken = false;

  constructor(
    readonly mem: GuestMemory,
    config: VirtqueueDriverConfig,
  ) {
    const p = splitSizeProblem(config.size);
    if (p !== undefined) throw new VirqError(VirtioRingErrorCode.BadQueueSize, p, { errno: 'EINVAL', details: { size: config.size } });
    const size = config.size;
    this.size = size;
    this.mask = size - 1;
    this.index = config.index ?? 0;
    this.features = toRingFeatures(config.features);
    this.eventIdx = this.features.eventIdx;
    this.inOrder = this.features.inOrder;
    this.publishOnKick = config.availPublish === 'on-kick';
    this.trace = config.trace;
    this.notifyFn = config.notify;
    this.callbackFn = config.callback;
    const s = splitAreaSizes(size);
    const d = area(mem, config.desc, s.desc, 16, 'descriptor table');
    const a = area(mem, config.driver, s.avail, 2, 'available ring');
    const u = area(mem, config.device, s.used, 4, 'used ring');
    this.descU32 = d.u32;
    this.descU16 = d.u16;
    this.desc32 = d.u32Base;
    this.availU16 = a.u16;
    this.avail16 = a.u16Base;
    this.usedU16 = u.u16;
    this.usedU32 = u.u32;
    this.used16 = u.u16Base;
    this.usedRing32 = u.u32Base + 1;
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
    this.freeTail = size - 1;
    this._numFree = size;
    this.chainLen = new Uint16Array(size);
    this.inBytes = new Float64Array(size);
    this.availHeads = new Uint16Array(size);
    this.tokens = new Array<T | undefined>(size).fill(undefined);
    // vring_init state: rings zeroed by the transport; used_event / flags start at 0.
    this.availIdxShadow = Atomics.load(this.availU16, this.avail16 + 1);
    this.lastUsedIdx = this.usedIdxSeen = Atomics.load(this.usedU16, this.used16 + 1);
  }

  get numFree(): number {
    return this._numFree;
  }
  get broken(): boolean {
    return this._broken;
  }
  /** The driver's avail.idx (free-running). */
  get availIdx(): number {
    return this.availIdxShadow;
  }
  get lastUsed(): number {
    return this.lastUsedIdx;
  }

  /** virtqueue_add_outbuf: one device-readable buffer. */
  addOutbuf(gpa: number, len: number, token: T): boolean {
    return this.addOne(gpa, len, 0, token);
  }
  /** virtqueue_add_inbuf: one device-writable buffer. */
  addInbuf(gpa: number, len: number, token: T): boolean {
    return this.addOne(gpa, len, VRING_DESC_F_WRITE, token);
  }

  /**
   * `count` one-segment device-readable buffers: `gpas[i]`/`lens[i]` with token `tokens[i]` —
   * the same as `count` calls of `addOutbuf` in order, stopping at the first that returns false
   * (no room: -ENOSPC, with the same notify; broken: -EIO). Returns how many were added. Every
   * argument is checked before anything is written, so a bad one throws with nothing added.
   * avail.idx is published per buffer or at kickPrepare, per `availPublish`, as for addOutbuf.
   */
  addOutbufs(gpas: ArrayLike<number>, lens: ArrayLike<number>, tokens: ArrayLike<T>, count: number): number {
    if (!Number.isInteger(count) || count < 0 || count > gpas.length || count > lens.length || count > tokens.length) {
      throw argError(`addOutbufs count must be an integer from 0 to the input arrays' length (${Math.min(gpas.length, lens.length, tokens.length)}), got ${count}`);
    }
    for (let k = 0; k < count; k++) {
      if (tokens[k] === undefined) throw argError(`virtqueue_add needs a token (Linux: data must not be NULL); tokens[${k}] is undefined`);
      const g = gpas[k]!;
      const l = lens[k]!;
      if ((g >>> 0) !== g || (l >>> 0) !== l || l === 0) checkSeg(g, l);
    }
    if (this._broken) return 0;
    if (this.traceOn()) {
      let n = 0;
      while (n < count && this.addOne(gpas[n]!, lens[n]!, 0, tokens[n]!)) n++;
      return n;
    }
    const mask = this.mask;
    const desc32 = this.desc32;
    const descU32 = this.descU32;
    const descU16 = this.descU16;
    const availU16 = this.availU16;
    const ring16 = this.avail16 + 2;
    const next = this.next;
    const chainLen = this.chainLen;
    const inBytes = this.inBytes;
    const toks = this.tokens;
    const availHeads = this.availHeads;
    const immediate = !this.publishOnKick;
    // Free-list head, free count and avail.idx shadow live in locals for the batch and are
    // written back before anything that can look at them (noSpace, kick) and at the end.
    let freeHead = this.freeHead;
    let numFree = this._numFree;
    let shadow = this.availIdxShadow;
    let k = 0;
    for (; k < count; k++) {
      if (numFree < 1 || this.numAdded === 0xfffe) {
        this.freeHead = freeHead;
        this._numFree = numFree;
        this.availIdxShadow = shadow;
        if (numFree < 1) {
          this.noSpace(true);
          return k;
        }
        // The 0xffff-th add since the last kick: take the single path (it kicks, as Linux does).
        if (!this.addOne(gpas[k]!, lens[k]!, 0, tokens[k]!)) return k;
        // A transport whose notify failed breaks the queue: the next add is refused (-EIO).
        if (this._broken) return k + 1;
        freeHead = this.freeHead;
        numFree = this._numFree;
        shadow = this.availIdxShadow;
        continue;
      }
      const gpa = gpas[k]!;
      const head = freeHead;
      const o = desc32 + 4 * head;
      const lo = gpa >>> 0;
      descU32[o] = lo;
      descU32[o + 1] = lo === gpa ? 0 : (gpa - lo) / U32;
      descU32[o + 2] = lens[k]!;
      descU16[2 * (o + 3)] = 0;
      freeHead = next[head]!;
      numFree--;
      chainLen[head] = 1;
      // Device-writable bytes: 0 for a readable buffer (only IN_ORDER reads it back).
      if (inBytes[head] !== 0) inBytes[head] = 0;
      toks[head] = tokens[k];
      const slot = shadow & mask;
      availU16[ring16 + slot] = head;
      availHeads[slot] = head;
      shadow = (shadow + 1) & 0xffff;
      if (immediate) Atomics.store(availU16, ring16 - 1, shadow);
      this.numAdded++;
    }
    this.freeHead = freeHead;
    this._numFree = numFree;
    this.availIdxShadow = shadow;
    return k;
  }

  /**
   * virtqueue_add_sgs: a chain of readable (`out`) then writable (`inn`) buffers. Uses an
   * indirect table when negotiated, configured and the chain has more than one buffer.
   * Returns false when the ring has no room (-ENOSPC; Linux then still notifies the device
   * if the chain had readable parts) or the queue is broken (-EIO).
   */
  addSgs(out: readonly Segment[], inn: readonly Segment[], token: T): boolean {
    const total = out.length + inn.length;
    if (total === 0) throw argError('virtqueue_add needs at least one buffer');
    if (token === undefined) throw argError('virtqueue_add needs a token (Linux: data must not be NULL)');
    for (const s of out) checkSeg(s.gpa, s.len);
    for (const s of inn) checkSeg(s.gpa, s.len);
    if (this._broken) return false;
    const useIndirect = this.indirect !== undefined && total > 1 && total <= this.indirectMax && this._numFree > 0;
    const descsUsed = useIndirect ? 1 : total;
    if (this._numFree < descsUsed) return this.noSpace(out.length > 0);
    const head = this.freeHead;
    if (useIndirect) {
      const ind = this.indirect!;
      const tableGpa = this.indirectGpa(head);
      const base = ind.u32Base + head * this.indirectMax * 4;
      for (let k = 0; k < total; k++) {
        const s = k < out.length ? out[k]! : inn[k - out.length]!;
        const flags = (k < out.length ? 0 : VRING_DESC_F_WRITE) | (k + 1 < total ? VRING_DESC_F_NEXT : 0);
        writeDesc(ind.u32, ind.u16, base, k, s.gpa, s.len, flags, k + 1);
      }
      writeDesc(this.descU32, this.descU16, this.desc32, head, tableGpa, total * 16, VRING_DESC_F_INDIRECT, 0);
      this.freeHead = this.next[head]!;
    } else {
      let i = head;
      let prev = head;
      for (let k = 0; k < total; k++) {
        const s = k < out.length ? out[k]! : inn[k - out.length]!;
        const flags = (k < out.length ? 0 : VRING_DESC_F_WRITE) | (k + 1 < total ? VRING_DESC_F_NEXT : 0);
        writeDesc(this.descU32, this.descU16, this.desc32, i, s.gpa, s.len, flags, this.next[i]!);
        prev = i;
        i = this.next[i]!;
      }
      this.freeHead = this.next[prev]!;
    }
    let inBytes = 0;
    for (const s of inn) inBytes += s.len;
    this.publish(head, descsUsed, inBytes, token, out.length, inn.length, useIndirect);
    return true;
  }

  private addOne(gpa: number, len: number, flags: number, token: T): boolean {
    if (token === undefined) throw argError('virtqueue_add needs a token (Linux: data must not be NULL)');
    // u32 fast check (a number equal to its ToUint32 is an integer in 0..2^32-1); anything
    // else goes through the full check, which throws for what is not a valid segment.
    const lo = gpa >>> 0;
    if (lo !== gpa || (len >>> 0) !== len || len === 0) checkSeg(gpa, len);
    if (this._broken) return false;
    if (this._numFree < 1) return this.noSpace(flags === 0);
    const head = this.freeHead;
    const o = this.desc32 + 4 * head;
    const u32 = this.descU32;
    u32[o] = lo;
    // gpa < 2^52 (checked), so the high word is exact; `%` on doubles would be an fmod call.
    u32[o + 1] = lo === gpa ? 0 : (gpa - lo) / U32;
    u32[o + 2] = len;
    this.descU16[2 * (o + 3)] = flags;
    this.freeHead = this.next[head]!;
    // publish(), inlined for the one-descriptor case.
    this._numFree--;
    this.chainLen[head] = 1;
    this.inBytes[head] = flags === 0 ? 0 : len;
    this.tokens[head] = token;
    const shadow = this.availIdxShadow;
    const slot = shadow & this.mask;
    this.availU16[this.avail16 + 2 + slot] = head;
    this.availHeads[slot] = head;
    const nw = (shadow + 1) & 0xffff;
    this.availIdxShadow = nw;
    if (!this.publishOnKick) Atomics.store(this.availU16, this.avail16 + 1, nw);
    const added = ++this.numAdded;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.add', 'virtqueue_add_split', 'virtqueue_add', { queue: this.index, head, out: flags === 0 ? 1 : 0, in: flags === 0 ? 0 : 1, availIdx: nw, indirect: false });
    // Linux: "This is very unlikely, but theoretically possible.  Kick just in case."
    if (added === 0xffff) this.kick();
    return true;
  }

  /** Avail ring entry, then (after the write barrier an atomic store implies) avail.idx. */
  private publish(head: number, descs: number, inBytes: number, token: T, outN: number, inN: number, indirect: boolean): void {
    this._numFree -= descs;
    this.chainLen[head] = descs;
    this.inBytes[head] = inBytes;
    this.tokens[head] = token;
    const slot = this.availIdxShadow & this.mask;
    this.availU16[this.avail16 + 2 + slot] = head;
    this.availHeads[slot] = head;
    this.availIdxShadow = (this.availIdxShadow + 1) & 0xffff;
    if (!this.publishOnKick) Atomics.store(this.availU16, this.avail16 + 1, this.availIdxShadow);
    this.numAdded++;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.add', 'virtqueue_add_split', 'virtqueue_add', { queue: this.index, head, out: outN, in: inN, availIdx: this.availIdxShadow, indirect });
    // Linux: "This is very unlikely, but theoretically possible.  Kick just in case."
    if (this.numAdded === 0xffff) this.kick();
  }

  private noSpace(hasOut: boolean): false {
    if (hasOut) {
      if (this.publishOnKick) Atomics.store(this.availU16, this.avail16 + 1, this.availIdxShadow);
      this.notify();
    }
    return false;
  }

  private indirectGpa(head: number): number {
    return this.indirectGpaBase + head * this.indirectMax * 16;
  }

  /**
   * virtqueue_kick_prepare_split: (with 'on-kick' publication, first stores avail.idx) after
   * a full barrier, old = avail.idx − added since the
   * last call, new = avail.idx; with EVENT_IDX kick iff vring_need_event(avail_event, new,
   * old), else iff used.flags has no VRING_USED_F_NO_NOTIFY.
   */
  kickPrepare(): boolean {
    const nw = this.availIdxShadow;
    // 'on-kick': expose the batch now (write barrier + one idx store); the atomic store is
    // also the full barrier before the suppression read below.
    if (this.publishOnKick && this.numAdded !== 0) Atomics.store(this.availU16, this.avail16 + 1, nw);
    const old = (nw - this.numAdded) & 0xffff;
    this.numAdded = 0;
    let needs: boolean;
    let event = -1;
    let flags = 0;
    if (this.eventIdx) {
      event = Atomics.load(this.usedU16, this.used16 + 2 + 4 * this.size);
      needs = vringNeedEvent(event, nw, old);
    } else {
      flags = Atomics.load(this.usedU16, this.used16);
      needs = (flags & VRING_USED_F_NO_NOTIFY) === 0;
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.kick_prepare', 'virtqueue_kick_prepare', undefined, { queue: this.index, oldIdx: old, newIdx: nw, event, flags, needsKick: needs });
    return needs;
  }

  /** virtqueue_notify: calls the transport's notify; false (and broken) if it fails. */
  notify(): boolean {
    if (this._broken) return false;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.notify', 'virtqueue_notify', 'virtqueue_kick', { queue: this.index, availIdx: this.availIdxShadow });
    if (this.notifyFn !== undefined && this.notifyFn() === false) {
      this._broken = true;
      return false;
    }
    return true;
  }

  /** virtqueue_kick: kickPrepare, then notify when needed. Returns whether a notify happened. */
  kick(): boolean {
    return this.kickPrepare() ? this.notify() : false;
  }

  /** Whether used buffers are waiting (more_used_split). */
  moreUsed(): boolean {
    if (this.lastUsedIdx !== this.usedIdxSeen || this.batchLastId >= 0) return true;
    this.usedIdxSeen = Atomics.load(this.usedU16, this.used16 + 1);
    return this.lastUsedIdx !== this.usedIdxSeen;
  }

  /**
   * virtqueue_get_buf_ctx_split: the next used buffer's token, its length in `lastLen`, or
   * undefined. Frees its descriptors; with callbacks enabled publishes used_event.
   */
  getBuf(): T | undefined {
    if (this._broken) return undefined;
    if (this.inOrder) return this.getBufInOrder();
    // more_used_split with the shadow: one acquire load of used.idx only when the shadow is used up.
    const last = this.lastUsedIdx;
    if (last === this.usedIdxSeen) {
      const seen = Atomics.load(this.usedU16, this.used16 + 1);
      this.usedIdxSeen = seen;
      if (last === seen) return undefined;
    }
    const e = this.usedRing32 + 2 * (last & this.mask);
    const id = this.usedU32[e]!;
    const len = this.usedU32[e + 1]!;
    // One-descriptor chain: detach_buf_split without the walk (checkUsedId's rules, inlined).
    if (id < this.size && this.chainLen[id] === 1 && !this.traceOn()) {
      const nl = (last + 1) & 0xffff;
      this.lastUsedIdx = nl;
      const token = this.tokens[id];
      this.tokens[id] = undefined;
      this.chainLen[id] = 0;
      this.next[id] = this.freeHead;
      this.freeHead = id;
      this._numFree++;
      this.lastLen = len;
      if ((this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) === 0) Atomics.store(this.availU16, this.avail16 + 2 + this.size, nl);
      return token;
    }
    if (!this.checkUsedId(id)) return undefined;
    this.lastUsedIdx = (last + 1) & 0xffff;
    return this.finishGet(id, len);
  }

  /**
   * Up to `max` used buffers at once: their tokens into `tokens[0..n)`, their used lengths
   * into `lens[0..n)`; returns n. The same as n calls of `getBuf()` (same checks, same
   * BAD_RING on an impossible used element, which ends the batch; same events), as Linux's
   * NAPI poll loop calls virtqueue_get_buf up to its budget. `lastLen` is the last one's length.
   */
  getBufs(tokens: (T | undefined)[], lens: Uint32Array | number[], max: number = Math.min(tokens.length, lens.length)): number {
    if (!Number.isInteger(max) || max < 0 || max > tokens.length || max > lens.length) {
      throw argError(`getBufs max must be an integer from 0 to the output arrays' length (${Math.min(tokens.length, lens.length)}), got ${max}`);
    }
    let k = 0;
    if (this.inOrder || this.traceOn()) {
      // The general path, one buffer at a time.
      for (; k < max; k++) {
        const tok = this.getBuf();
        if (tok === undefined) break;
        tokens[k] = tok;
        lens[k] = this.lastLen;
      }
      return k;
    }
    const size = this.size;
    const mask = this.mask;
    const usedU32 = this.usedU32;
    const ring32 = this.usedRing32;
    const chainLen = this.chainLen;
    const next = this.next;
    const toks = this.tokens;
    let last = this.lastUsedIdx;
    let seen = this.usedIdxSeen;
    let freeHead = this.freeHead;
    let freed = 0;
    let len = 0;
    // With callbacks enabled, used_event follows last_used_idx after every buffer, as in getBuf.
    const cbOn = (this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    const usedEvent16 = this.avail16 + 2 + size;
    for (; k < max && !this._broken; k++) {
      if (last === seen) {
        // One acquire load of used.idx per exhausted shadow (more_used_split).
        seen = Atomics.load(this.usedU16, this.used16 + 1);
        if (last === seen) break;
      }
      const e = ring32 + 2 * (last & mask);
      const id = usedU32[e]!;
      if (id < size && chainLen[id] === 1) {
        // detach_buf_split of a one-descriptor chain.
        len = usedU32[e + 1]!;
        last = (last + 1) & 0xffff;
        tokens[k] = toks[id];
        lens[k] = len;
        toks[id] = undefined;
        chainLen[id] = 0;
        next[id] = freeHead;
        freeHead = id;
        freed++;
        if (cbOn) Atomics.store(this.availU16, usedEvent16, last);
        continue;
      }
      // Anything else: write the state back and take the general path for this element
      // (it reads the element again and applies every check).
      this.lastUsedIdx = last;
      this.usedIdxSeen = seen;
      this.freeHead = freeHead;
      this._numFree += freed;
      freed = 0;
      const tok = this.getBuf();
      last = this.lastUsedIdx;
      seen = this.usedIdxSeen;
      freeHead = this.freeHead;
      if (tok === undefined) break;
      tokens[k] = tok;
      lens[k] = len = this.lastLen;
    }
    this.lastUsedIdx = last;
    this.usedIdxSeen = seen;
    this.freeHead = freeHead;
    this._numFree += freed;
    if (k > 0) this.lastLen = len;
    return k;
  }

  private traceOn(): boolean {
    const t = this.trace;
    return t !== undefined && t.on;
  }

  private getBufInOrder(): T | undefined {
    if (this.batchLastId < 0) {
      if (!this.moreUsed()) return undefined;
      const slot = this.lastUsedIdx & this.mask;
      const id = this.usedU32[this.usedRing32 + 2 * slot]!;
      if (!this.checkUsedId(id)) return undefined;
      this.batchLastId = id;
      this.batchLastLen = this.usedU32[this.usedRing32 + 2 * slot + 1]!;
      this.lastUsedIdx = (this.lastUsedIdx + 1) & 0xffff;
    }
    // IN_ORDER: one used entry may stand for every buffer up to the one it names.
    const head = this.availHeads[this.completed & this.mask]!;
    this.completed = (this.completed + 1) & 0xffff;
    let len: number;
    if (head === this.batchLastId) {
      len = this.batchLastLen;
      this.batchLastId = -1;
    } else {
      len = this.inBytes[head]!;
    }
    return this.finishGet(head, len);
  }

  private checkUsedId(id: number): boolean {
    if (id >= this.size) return this.breakRing(VirtioRingErrorCode.UsedIdOutOfRange, `id ${id} out of range`, id);
    if (this.chainLen[id] === 0) return this.breakRing(VirtioRingErrorCode.UsedIdNotHead, `id ${id} is not a head!`, id);
    return true;
  }

  private finishGet(id: number, len: number): T | undefined {
    const token = this.tokens[id];
    this.detach(id);
    this.lastLen = len;
    if ((this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) === 0) {
      Atomics.store(this.availU16, this.avail16 + 2 + this.size, this.lastUsedIdx);
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.get_buf', 'virtqueue_get_buf_ctx_split', 'virtqueue_get_buf_ctx', { queue: this.index, id, len, lastUsedIdx: this.lastUsedIdx });
    return token;
  }

  /** detach_buf_split: the chain's descriptors back on the free list. */
  private detach(head: number): void {
    const n = this.chainLen[head]!;
    let last = head;
    for (let k = 1; k < n; k++) last = this.next[last]!;
    this.chainLen[head] = 0;
    this.tokens[head] = undefined;
    if (this.inOrder) {
      // Keep the free list in ring order so allocation stays sequential (IN_ORDER).
      if (this._numFree === 0) this.freeHead = head;
      else this.next[this.freeTail] = head;
      this.freeTail = last;
    } else {
      this.next[last] = this.freeHead;
      this.freeHead = head;
    }
    this._numFree += n;
  }

  private breakRing(code: VirtioRingErrorCode, message: string, id: number): false {
    this._broken = true;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.broken', 'virtqueue_get_buf_ctx_split', 'BAD_RING', { queue: this.index, code, message });
    void id;
    return false;
  }

  /** virtqueue_disable_cb_split: suppress used-buffer notifications (a hint). */
  disableCb(): void {
    if ((this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) !== 0) return;
    this.availFlagsShadow |= VRING_AVAIL_F_NO_INTERRUPT;
    // If the device already triggered an event it will not trigger another: nothing to write.
    if (!this.eventTriggered) {
      if (this.eventIdx) this.availU16[this.avail16 + 2 + this.size] = 0;
      else Atomics.store(this.availU16, this.avail16, this.availFlagsShadow);
    }
    this.traceCb(false, false);
  }

  /**
   * virtqueue_enable_cb_prepare_split: re-enables callbacks (clears NO_INTERRUPT; with
   * EVENT_IDX publishes used_event = last_used_idx) and returns the opaque value for `poll`.
   */
  enableCbPrepare(): number {
    this.eventTriggered = false;
    if ((this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) !== 0) {
      this.availFlagsShadow &= ~VRING_AVAIL_F_NO_INTERRUPT;
      if (!this.eventIdx) Atomics.store(this.availU16, this.avail16, this.availFlagsShadow);
    }
    Atomics.store(this.availU16, this.avail16 + 2 + this.size, this.lastUsedIdx);
    return this.lastUsedIdx;
  }

  /** virtqueue_poll: after a full barrier, whether used.idx moved past `opaque`. */
  poll(opaque: number): boolean {
    if (this._broken) return false;
    return Atomics.load(this.usedU16, this.used16 + 1) !== opaque;
  }

  /**
   * virtqueue_enable_cb: enable callbacks and re-check; false when buffers are pending
   * (the caller must process them: the interrupt for them may already have been suppressed).
   */
  enableCb(): boolean {
    const pending = this.poll(this.enableCbPrepare());
    this.traceCb(true, pending);
    return !pending;
  }

  /**
   * virtqueue_enable_cb_delayed_split: ask for a callback only after ¾ of the outstanding
   * buffers are used (used_event = last_used + ¾·outstanding). False when already past it.
   */
  enableCbDelayed(): boolean {
    this.eventTriggered = false;
    if ((this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) !== 0) {
      this.availFlagsShadow &= ~VRING_AVAIL_F_NO_INTERRUPT;
      if (!this.eventIdx) Atomics.store(this.availU16, this.avail16, this.availFlagsShadow);
    }
    const bufs = Math.floor((((this.availIdxShadow - this.lastUsedIdx) & 0xffff) * 3) / 4);
    Atomics.store(this.availU16, this.avail16 + 2 + this.size, (this.lastUsedIdx + bufs) & 0xffff);
    const pending = ((Atomics.load(this.usedU16, this.used16 + 1) - this.lastUsedIdx) & 0xffff) > bufs;
    this.traceCb(true, pending);
    return !pending;
  }

  private traceCb(enabled: boolean, pending: boolean): void {
    const t = this.trace;
    if (t !== undefined && t.on) {
      t.emit('vring.set_cb', enabled ? 'virtqueue_enable_cb' : 'virtqueue_disable_cb', undefined, { queue: this.index, enabled, usedEvent: this.availU16[this.avail16 + 2 + this.size]!, pending });
    }
  }

  /**
   * vring_interrupt: the used-buffer notification arrived. Returns false (IRQ_NONE) when no
   * used buffer is pending; otherwise runs the callback and returns true (IRQ_HANDLED).
   */
  interrupt(): boolean {
    const more = this.moreUsed();
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.interrupt', 'vring_interrupt', 'vp_vring_interrupt', { queue: this.index, lastUsedIdx: this.lastUsedIdx, more });
    if (!more) return false;
    if (this._broken) return true;
    if (this.eventIdx) this.eventTriggered = true;
    if (this.callbackFn !== undefined) this.callbackFn();
    return true;
  }

  /** The driver's ring state (tokens excluded: they are host objects). */
  snapshot(): Snapshot<SplitDriverState> {
    return {
      type: 'virtio-ring.split-driver',
      version: 1,
      state: {
        availIdxShadow: this.availIdxShadow,
        lastUsedIdx: this.lastUsedIdx,
        numAdded: this.numAdded,
        availFlagsShadow: this.availFlagsShadow,
        freeHead: this.freeHead,
        numFree: this._numFree,
        next: Array.from(this.next),
        chainLen: Array.from(this.chainLen),
        availHeads: Array.from(this.availHeads),
        completed: this.completed,
        broken: this._broken,
      },
    };
  }

  /**
   * Puts a snapshot back. Tokens are host objects and are not saved: pass them by head
   * index, or the head index itself becomes the token of each in-flight buffer.
   */
  restore(snapshot: Snapshot<SplitDriverState>, tokens?: ReadonlyMap<number, T>): void {
    const s = checkSnapshot(snapshot, 'virtio-ring.split-driver', 1);
    if (s.next.length !== this.size || s.chainLen.length !== this.size || s.availHeads.length !== this.size) {
      throw new VirqError(VirtioRingErrorCode.BadSnapshot, `split-driver snapshot is for a queue of ${s.next.length} entries, this queue has ${this.size}`);
    }
    this.availIdxShadow = s.availIdxShadow & 0xffff;
    this.lastUsedIdx = this.usedIdxSeen = s.lastUsedIdx & 0xffff;
    this.numAdded = s.numAdded;
    this.availFlagsShadow = s.availFlagsShadow;
    this.freeHead = s.freeHead;
    this._numFree = s.numFree;
    this.next.set(s.next);
    this.chainLen.set(s.chainLen);
    this.availHeads.set(s.availHeads);
    this.completed = s.completed;
    this._broken = s.broken;
    this.batchLastId = -1;
    // Recompute the free-list tail (IN_ORDER appends there).
    let tail = this.freeHead;
    for (let k = 1; k < this._numFree; k++) tail = this.next[tail]!;
    this.freeTail = tail;
    for (let h = 0; h < this.size; h++) {
      this.tokens[h] = this.chainLen[h] === 0 ? undefined : (tokens?.get(h) ?? (h as unknown as T));
    }
  }
}

function checkSeg(gpa: number, len: number): void {
  if (!Number.isSafeInteger(gpa) || gpa < 0) throw argError(`buffer address must be a guest physical address, got ${gpa}`);
  if (!Number.isInteger(len) || len < 1 || len > 0xffffffff) throw argError(`buffer length must be 1..2^32-1, got ${len}`);
}

function writeDesc(u32: Uint32Array, u16: Uint16Array, base: number, i: number, addr: number, len: number, flags: number, next: number): void {
  const o = base + 4 * i;
  const lo = addr >>> 0;
  u32[o] = lo;
  u32[o + 1] = lo === addr ? 0 : (addr - lo) / U32;
  u32[o + 2] = len;
  u16[2 * (o + 3)] = flags;
  u16[2 * (o + 3) + 1] = next;
}
