import { CoreErrorCode, VirqError } from './errors.js';

/** Guest physical addresses stay below 2^52 (x86-64 MAXPHYADDR), so they are exact doubles. */
export const GPA_LIMIT = 2 ** 52;

export interface MemoryRegionInit {
  /** Guest physical base address. */
  gpa: number;
  size: number;
  /** Backing store; allocated (zeroed) when omitted. */
  buffer?: ArrayBuffer | SharedArrayBuffer;
  /** Offset of the region inside `buffer` (a memfd region's mmap_offset, say). */
  bufferOffset?: number;
  /** Allocate a SharedArrayBuffer when `buffer` is omitted (for rings shared between threads). */
  shared?: boolean;
  name?: string;
}

/** One contiguous guest-physical range and the bytes behind it. */
export class MemoryRegion {
  readonly gpa: number;
  readonly size: number;
  /** First address past the region. */
  readonly end: number;
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly shared: boolean;
  /** Present when the region's bytes start 4-byte aligned in their buffer (Atomics need it). */
  readonly u16: Uint16Array | undefined;
  readonly u32: Uint32Array | undefined;

  constructor(init: MemoryRegionInit) {
    const { gpa, size } = init;
    if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(size) || size <= 0 || gpa + size > GPA_LIMIT) {
      throw new VirqError(CoreErrorCode.MemoryRegionInvalid, `memory region must have integer gpa ≥ 0 and size > 0 ending below 2^52, got gpa=${gpa} size=${size}`, { errno: 'EINVAL', details: { gpa, size } });
    }
    const off = init.bufferOffset ?? 0;
    const buffer = init.buffer ?? (init.shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
    if (!Number.isSafeInteger(off) || off < 0 || off + size > buffer.byteLength) {
      throw new VirqError(CoreErrorCode.MemoryRegionInvalid, `memory region [${off}, ${off + size}) does not fit in its ${buffer.byteLength}-byte buffer`, { errno: 'EINVAL', details: { bufferOffset: off, size, bufferSize: buffer.byteLength } });
    }
    this.gpa = gpa;
    this.size = size;
    this.end = gpa + size;
    this.name = init.name ?? `ram@0x${gpa.toString(16)}`;
    this.bytes = new Uint8Array(buffer, off, size);
    this.view = new DataView(buffer, off, size);
    this.shared = typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer;
    const aligned = off % 4 === 0;
    this.u16 = aligned ? new Uint16Array(buffer, off, size >>> 1) : undefined;
    this.u32 = aligned ? new Uint32Array(buffer, off, size >>> 2) : undefined;
  }

  contains(gpa: number, len: number): boolean {
    return gpa >= this.gpa && len >= 0 && gpa + len <= this.end && Number.isInteger(gpa);
  }
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new VirqError(CoreErrorCode.ArgumentInvalid, 'virq needs a little-endian host (typed-array ring access assumes it)');
}

/**
 * Guest physical memory: a set of non-overlapping regions with little-endian, bounds-checked
 * accessors. Any access that touches a byte outside every region throws a `VirqError`
 * (`memory.out-of-range`) before touching anything. Scalar accesses must lie inside one
 * region; byte copies may span adjacent regions.
 *
 * `load16`/`store16`/`load32`/`store32` use Atomics on SharedArrayBuffer-backed regions, so
 * ring code can publish and observe indexes across threads with the ordering the real code
 * gets from its barriers (Atomics are sequentially consistent).
 */
export class GuestMemory {
  private list: MemoryRegion[] = [];
  private last: MemoryRegion | undefined;

  constructor(regions: readonly MemoryRegionInit[] = []) {
    for (const r of regions) this.addRegion(r);
  }

  /** A single zero-filled region at `gpa` (default 0). */
  static ofSize(size: number, options: { gpa?: number; shared?: boolean } = {}): GuestMemory {
    return new GuestMemory([{ gpa: options.gpa ?? 0, size, shared: options.shared ?? false }]);
  }

  addRegion(init: MemoryRegionInit): MemoryRegion {
    const r = new MemoryRegion(init);
    for (const o of this.list) {
      if (r.gpa < o.end && o.gpa < r.end) {
        throw new VirqError(CoreErrorCode.MemoryRegionOverlap, `region ${r.name} [0x${r.gpa.toString(16)}, 0x${r.end.toString(16)}) overlaps ${o.name} [0x${o.gpa.toString(16)}, 0x${o.end.toString(16)})`, { errno: 'EEXIST', details: { gpa: r.gpa, size: r.size } });
      }
    }
    this.list.push(r);
    this.list.sort((a, b) => a.gpa - b.gpa);
    return r;
  }

  removeRegion(gpa: number): boolean {
    const i = this.list.findIndex((r) => r.gpa === gpa);
    if (i < 0) return false;
    if (this.last === this.list[i]) this.last = undefined;
    this.list.splice(i, 1);
    return true;
  }

  regions(): readonly MemoryRegion[] {
    return this.list;
  }

  /** Total bytes mapped. */
  get size(): number {
    return this.list.reduce((n, r) => n + r.size, 0);
  }

  /** The region holding all of [gpa, gpa+len), or undefined. */
  find(gpa: number, len: number): MemoryRegion | undefined {
    const l = this.last;
    if (l !== undefined && gpa >= l.gpa && gpa + len <= l.end && len >= 0 && Number.isInteger(gpa)) return l;
    if (!Number.isInteger(gpa) || !Number.isInteger(len) || len < 0) return undefined;
    for (const r of this.list) {
      if (gpa >= r.gpa && gpa + len <= r.end) {
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  /** Whether every byte of [gpa, gpa+len) is guest memory (possibly across adjacent regions). */
  isValid(gpa: number, len: number): boolean {
    if (!Number.isInteger(gpa) || !Number.isInteger(len) || gpa < 0 || len < 0 || gpa + len > GPA_LIMIT) return false;
    if (len === 0) return this.find(gpa, 0) !== undefined;
    let at = gpa;
    const end = gpa + len;
    while (at < end) {
      const r = this.find(at, 1);
      if (r === undefined) return false;
      at = r.end;
    }
    return true;
  }

  /** The region for a scalar access, or throws memory.out-of-range. */
  region(gpa: number, len: number): MemoryRegion {
    const r = this.find(gpa, len);
    if (r === undefined) throw outOfRange(gpa, len);
    return r;
  }

  read8(gpa: number): number {
    const r = this.region(gpa, 1);
    return r.bytes[gpa - r.gpa]!;
  }
  read16(gpa: number): number {
    const r = this.region(gpa, 2);
    return r.view.getUint16(gpa - r.gpa, true);
  }
  read32(gpa: number): number {
    const r = this.region(gpa, 4);
    return r.view.getUint32(gpa - r.gpa, true);
  }
  read64(gpa: number): bigint {
    const r = this.region(gpa, 8);
    return r.view.getBigUint64(gpa - r.gpa, true);
  }
  /**
   * A u64 as a double: exact below 2^53. Any value ≥ 2^53 stays ≥ 2^53 after rounding, so it
   * can never alias a valid guest address (all regions end below 2^52).
   */
  read64n(gpa: number): number {
    const r = this.region(gpa, 8);
    const o = gpa - r.gpa;
    return r.view.getUint32(o, true) + r.view.getUint32(o + 4, true) * 4294967296;
  }

  write8(gpa: number, v: number): void {
    const r = this.region(gpa, 1);
    r.bytes[gpa - r.gpa] = v;
  }
  write16(gpa: number, v: number): void {
    const r = this.region(gpa, 2);
    r.view.setUint16(gpa - r.gpa, v, true);
  }
  write32(gpa: number, v: number): void {
    const r = this.region(gpa, 4);
    r.view.setUint32(gpa - r.gpa, v >>> 0, true);
  }
  write64(gpa: number, v: bigint | number): void {
    const r = this.region(gpa, 8);
    const o = gpa - r.gpa;
    if (typeof v === 'bigint') {
      r.view.setBigUint64(o, BigInt.asUintN(64, v), true);
    } else {
      if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) {
        throw new VirqError(CoreErrorCode.ArgumentInvalid, `write64 of a number needs a safe unsigned integer, got ${v}; pass a bigint`);
      }
      r.view.setUint32(o, v % 4294967296, true);
      r.view.setUint32(o + 4, Math.floor(v / 4294967296), true);
    }
  }

  /** Atomic (acquire-ordered) u16 load when the region is shared; a plain load otherwise. */
  load16(gpa: number): number {
    const r = this.region(gpa, 2);
    const o = gpa - r.gpa;
    if (r.shared && r.u16 !== undefined && (o & 1) === 0) return Atomics.load(r.u16, o >>> 1);
    return r.view.getUint16(o, true);
  }
  /** Atomic (release-ordered) u16 store when the region is shared; a plain store otherwise. */
  store16(gpa: number, v: number): void {
    const r = this.region(gpa, 2);
    const o = gpa - r.gpa;
    if (r.shared && r.u16 !== undefined && (o & 1) === 0) Atomics.store(r.u16, o >>> 1, v);
    else r.view.setUint16(o, v, true);
  }
  load32(gpa: number): number {
    const r = this.region(gpa, 4);
    const o = gpa - r.gpa;
    if (r.shared && r.u32 !== undefined && (o & 3) === 0) return Atomics.load(r.u32, o >>> 2);
    return r.view.getUint32(o, true);
  }
  store32(gpa: number, v: number): void {
    const r = this.region(gpa, 4);
    const o = gpa - r.gpa;
    if (r.shared && r.u32 !== undefined && (o & 3) === 0) Atomics.store(r.u32, o >>> 2, v >>> 0);
    else r.view.setUint32(o, v >>> 0, true);
  }

  /** A zero-copy view of [gpa, gpa+len); the range must lie in one region. */
  view(gpa: number, len: number): Uint8Array {
    const r = this.region(gpa, len);
    const o = gpa - r.gpa;
    return r.bytes.subarray(o, o + len);
  }

  /** Copies [gpa, gpa+len) out (may span adjacent regions). */
  readBytes(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(gpa, out);
    return out;
  }

  /** Copies guest bytes into `dst` (its whole length). */
  readInto(gpa: number, dst: Uint8Array): void {
    const len = dst.length;
    const r = this.find(gpa, len);
    if (r !== undefined) {
      const o = gpa - r.gpa;
      dst.set(r.bytes.subarray(o, o + len));
      return;
    }
    if (!this.isValid(gpa, len)) throw outOfRange(gpa, len);
    let done = 0;
    while (done < len) {
      const rr = this.region(gpa + done, 1);
      const o = gpa + done - rr.gpa;
      const n = Math.min(len - done, rr.size - o);
      dst.set(rr.bytes.subarray(o, o + n), done);
      done += n;
    }
  }

  /** Copies `src` into guest memory at `gpa` (may span adjacent regions; checked first). */
  writeBytes(gpa: number, src: Uint8Array): void {
    const len = src.length;
    const r = this.find(gpa, len);
    if (r !== undefined) {
      r.bytes.set(src, gpa - r.gpa);
      return;
    }
    if (!this.isValid(gpa, len)) throw outOfRange(gpa, len);
    let done = 0;
    while (done < len) {
      const rr = this.region(gpa + done, 1);
      const o = gpa + done - rr.gpa;
      const n = Math.min(len - done, rr.size - o);
      rr.bytes.set(src.subarray(done, done + n), o);
      done += n;
    }
  }

  /** Guest-to-guest copy (memmove semantics). Both ranges are checked before anything moves. */
  copy(dstGpa: number, srcGpa: number, len: number): void {
    if (!this.isValid(srcGpa, len)) throw outOfRange(srcGpa, len);
    if (!this.isValid(dstGpa, len)) throw outOfRange(dstGpa, len);
    this.writeBytes(dstGpa, this.readBytes(srcGpa, len));
  }

  fill(gpa: number, len: number, byte: number): void {
    if (!this.isValid(gpa, len)) throw outOfRange(gpa, len);
    let done = 0;
    while (done < len) {
      const rr = this.region(gpa + done, 1);
      const o = gpa + done - rr.gpa;
      const n = Math.min(len - done, rr.size - o);
      rr.bytes.fill(byte, o, o + n);
      done += n;
    }
  }
}

function outOfRange(gpa: number, len: number): VirqError {
  const at = Number.isFinite(gpa) ? `0x${Math.trunc(gpa).toString(16)}` : String(gpa);
  return new VirqError(CoreErrorCode.MemoryOutOfRange, `guest memory access [${at}, +${len}) touches bytes outside every region`, { errno: 'EFAULT', details: { gpa, len } });
}
