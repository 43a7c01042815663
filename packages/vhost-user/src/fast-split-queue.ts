import type { TraceChannel } from '@virq/core';
import { vringNeedEvent, type VirtioRingEvent } from '@virq/virtio-ring';

const F_NEXT = 1;
const F_WRITE = 2;
const F_INDIRECT = 4;
const AVAIL_F_NO_INTERRUPT = 1;
const USED_F_NO_NOTIFY = 1;
const TWO32 = 4294967296;

/** Typed views over one region, shared by every queue in it (so copies can stay in one array). */
export interface RegionViews {
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
}

export function regionViews(buffer: ArrayBuffer | SharedArrayBuffer, byteOffset: number, size: number): RegionViews {
  return { u8: new Uint8Array(buffer, byteOffset, size), u16: new Uint16Array(buffer, byteOffset, size >>> 1), u32: new Uint32Array(buffer, byteOffset, size >>> 2) };
}

/**
 * The device side of a split virtqueue over ONE mapped region, written for throughput: the
 * descriptor table, both rings and the buffers are read and written as typed arrays over the
 * region's bytes (zero copy, no per-buffer objects), the same rules as @virq/virtio-ring's
 * SplitVirtqueueDevice (FACTS §1): avail.idx may not move more than `size` ahead, heads must
 * be < size, every buffer must lie inside the region, chains are bounded (no loops), indirect
 * tables are not nested. A violation breaks the queue (NEEDS_RESET: `broken`, `error`) and
 * nothing outside the region is touched. Interrupt decision = F16 (vhost_vring_call_split).
 *
 * Used by the vhost-user-net back end when the front end's memory is one region (QEMU's
 * memory-backend-memfd, DPDK virtio-user's memfd), which is every real case here.
 */
export class FastSplitQueue {
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly mask: number;
  private readonly desc32: number;
  private readonly avail16: number;
  private readonly used16: number;
  private readonly usedRing32: number;
  lastAvail = 0;
  private shadowAvail = 0;
  usedIdx = 0;
  private pending = 0;
  private signalledUsed = 0;
  private signalledValid = false;
  broken = false;
  error = '';
  /** Scatter-gather scratch for chains (addresses as region offsets, lengths). */
  readonly segOff: number[] = [];
  readonly segLen: number[] = [];
  segs = 0;
  segBytes = 0;

  constructor(
    views: RegionViews,
    /** Region bytes. */
    readonly regionSize: number,
    /** Guest address of the region's first byte. */
    readonly base: number,
    readonly size: number,
    desc: number,
    avail: number,
    used: number,
    readonly eventIdx: boolean,
    readonly index: number,
    private readonly callFn: () => void,
    private readonly trace: TraceChannel<VirtioRingEvent> | undefined,
  ) {
    this.u8 = views.u8;
    this.u16 = views.u16;
    this.u32 = views.u32;
    this.mask = size - 1;
    this.desc32 = (desc - base) >>> 2;
    this.avail16 = (avail - base) >>> 1;
    this.used16 = (used - base) >>> 1;
    this.usedRing32 = ((used - base) >>> 2) + 1;
  }

  setBase(base: number): void {
    this.lastAvail = this.shadowAvail = this.usedIdx = base & 0xffff;
    this.signalledValid = false;
    this.pending = 0;
  }

  fail(msg: string): void {
    if (this.broken) return;
    this.broken = true;
    this.error = msg;
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.error', 'VHOST_DATA_LOG', undefined, { queue: this.index, code: 'virtio-ring.bad-input', message: msg });
  }

  private bad(msg: string): false {
    this.fail(msg);
    return false;
  }

  /** Chains available now (reads avail.idx once); 0 after an error. */
  available(): number {
    if (this.broken) return 0;
    if (this.lastAvail === this.shadowAvail) {
      const idx = Atomics.load(this.u16, this.avail16 + 1);
      const n = (idx - this.lastAvail) & 0xffff;
      if (n > this.size) {
        this.fail(`Guest moved avail index from ${this.lastAvail} to ${idx}`);
        return 0;
      }
      this.shadowAvail = idx;
    }
    return (this.shadowAvail - this.lastAvail) & 0xffff;
  }

  /** Takes the next head (call only when available() > 0); -1 on a bad head. */
  nextHead(): number {
    const head = this.u16[this.avail16 + 2 + (this.lastAvail & this.mask)]!;
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.size) {
      this.fail(`Guest says index ${head} is available`);
      return -1;
    }
    return head;
  }

  /**
   * Touches the descriptors and first buffer bytes of the next `n` available chains without
   * taking them (DPDK's rte_prefetch0 over a burst): the loads are independent, so the CPU
   * overlaps the cache misses the other core's writes cause instead of taking them one by one
   * in the dependent processing loop. Returns a value only so the loads are not dropped.
   */
  touch(n: number): number {
    const u16 = this.u16;
    const u32 = this.u32;
    let acc = 0;
    let at = this.lastAvail;
    for (let i = 0; i < n; i++, at++) {
      const head = u16[this.avail16 + 2 + (at & this.mask)]!;
      if (head >= this.size) break;
      const d = this.desc32 + 4 * head;
      const off = u32[d]! + u32[d + 1]! * TWO32 - this.base;
      acc ^= u32[d + 2]!;
      if (off >= 0 && off + 4 <= this.regionSize) acc ^= this.u8[off]!;
    }
    return acc;
  }

  /** Puts back the last `n` heads taken. */
  unget(n: number): void {
    this.lastAvail = (this.lastAvail - n) & 0xffff;
  }

  /**
   * Single direct descriptor fast case: its region offset when `head` is one descriptor with
   * the wanted direction inside the region, else -1 (use `walk`). Length in `lastLen`.
   */
  lastLen = 0;
  simple(head: number, writable: boolean): number {
    const d = this.desc32 + 4 * head;
    const u32 = this.u32;
    const flags = u32[d + 3]! & 0xffff;
    if ((flags & (F_NEXT | F_INDIRECT)) !== 0 || ((flags & F_WRITE) !== 0) !== writable) return -1;
    const off = u32[d]! + u32[d + 1]! * TWO32 - this.base;
    const len = u32[d + 2]!;
    if (off < 0 || off + len > this.regionSize) return -1;
    this.lastLen = len;
    return off;
  }

  /**
   * Walks a chain (direct or through one indirect table) collecting the segments of one
   * direction into segOff/segLen; false (queue broken) on any rule broken.
   */
  walk(head: number, writable: boolean): boolean {
    this.segs = 0;
    this.segBytes = 0;
    const u32 = this.u32;
    let table = this.desc32;
    let max = this.size;
    let i = head;
    let indirect = false;
    for (let steps = 0; ; steps++) {
      if (steps >= max) return this.bad('Looped descriptor chain');
      const d = table + 4 * i;
      const flags = u32[d + 3]! & 0xffff;
      const off = u32[d]! + u32[d + 1]! * TWO32 - this.base;
      const len = u32[d + 2]!;
      if ((flags & F_INDIRECT) !== 0) {
        if (indirect || (flags & F_NEXT) !== 0) return this.bad('Indirect descriptor in an indirect table or with NEXT');
        if (len === 0 || len % 16 !== 0 || off < 0 || off + len > this.regionSize || off % 4 !== 0) return this.bad('Invalid size for indirect buffer table');
        indirect = true;
        table = off >>> 2;
        max = len / 16;
        i = 0;
        steps = -1;
        continue;
      }
      if (off < 0 || off + len > this.regionSize) return this.bad(`Descriptor address 0x${(off + this.base).toString(16)} +${len} is outside guest memory`);
      if (((flags & F_WRITE) !== 0) === writable && len > 0) {
        this.segOff[this.segs] = off;
        this.segLen[this.segs] = len;
        this.segs++;
        this.segBytes += len;
      }
      if ((flags & F_NEXT) === 0) return true;
      i = u32[d + 3]! >>> 16;
      if (i >= max) return this.bad(`Desc next is ${i}`);
    }
  }

  /** Copies the collected readable segments into `dst` from 0; returns bytes copied. */
  gather(dst: Uint8Array): number {
    let at = 0;
    for (let s = 0; s < this.segs && at < dst.length; s++) {
      const n = Math.min(this.segLen[s]!, dst.length - at);
      dst.set(this.u8.subarray(this.segOff[s]!, this.segOff[s]! + n), at);
      at += n;
    }
    return at;
  }

  /** Writes `src[from, to)` over the collected writable segments starting `skip` bytes in. */
  scatter(src: Uint8Array, from: number, to: number, skip: number): number {
    let at = from;
    for (let s = 0; s < this.segs && at < to; s++) {
      let o = this.segOff[s]!;
      let l = this.segLen[s]!;
      if (skip >= l) {
        skip -= l;
        continue;
      }
      o += skip;
      l -= skip;
      skip = 0;
      const n = Math.min(l, to - at);
      if (src === this.u8) this.u8.copyWithin(o, at, at + n);
      else this.u8.set(src.subarray(at, at + n), o);
      at += n;
    }
    return at - from;
  }

  /** Writes a used element (not yet published). */
  fill(head: number, len: number): void {
    const o = this.usedRing32 + 2 * ((this.usedIdx + this.pending) & this.mask);
    this.u32[o] = head;
    this.u32[o + 1] = len;
    this.pending++;
  }

  /** Publishes the used elements, then decides and sends the interrupt (F16): -1 nothing to publish, 0 suppressed, 1 signalled. */
  flushAndNotify(): number {
    const count = this.pending;
    if (count === 0 || this.broken) return -1;
    const old = this.usedIdx;
    const nw = (old + count) & 0xffff;
    Atomics.store(this.u16, this.used16 + 1, nw);
    this.usedIdx = nw;
    this.pending = 0;
    if ((((nw - this.signalledUsed) << 16) >> 16) < ((nw - old) & 0xffff)) this.signalledValid = false;
    let notify: boolean;
    let event = -1;
    let flags = 0;
    let oldSig = this.signalledUsed;
    if (this.eventIdx) {
      const valid = this.signalledValid;
      this.signalledValid = true;
      oldSig = this.signalledUsed;
      this.signalledUsed = nw;
      event = Atomics.load(this.u16, this.avail16 + 2 + this.size);
      notify = !valid || vringNeedEvent(event, nw, oldSig);
    } else {
      flags = Atomics.load(this.u16, this.avail16);
      notify = (flags & AVAIL_F_NO_INTERRUPT) === 0;
    }
    const t = this.trace;
    if (t !== undefined && t.on) t.emit('vring.should_notify', 'vhost_vring_call_split', undefined, { queue: this.index, oldIdx: oldSig, newIdx: nw, event, flags, notify });
    if (notify) {
      if (t !== undefined && t.on) t.emit('vring.call', 'eventfd_write', 'vhost_vring_call_split', { queue: this.index, usedIdx: nw });
      this.callFn();
    }
    return notify ? 1 : 0;
  }

  /** Kicks off (VRING_USED_F_NO_NOTIFY / stop moving avail_event). */
  disableNotification(): void {
    if (!this.eventIdx) Atomics.store(this.u16, this.used16, this.u16[this.used16]! | USED_F_NO_NOTIFY);
  }
  /** Kicks on; true when buffers arrived meanwhile (process them, no kick will come). */
  enableNotification(): boolean {
    if (this.broken) return false;
    if (this.eventIdx) Atomics.store(this.u16, this.used16 + 2 + 4 * this.size, Atomics.load(this.u16, this.avail16 + 1));
    else Atomics.store(this.u16, this.used16, this.u16[this.used16]! & ~USED_F_NO_NOTIFY);
    this.shadowAvail = Atomics.load(this.u16, this.avail16 + 1);
    return this.shadowAvail !== this.lastAvail;
  }
}
