import type { GuestMemory } from '@virq/core';

/** One guest buffer: `len` bytes at guest physical address `gpa`. */
export interface Segment {
  readonly gpa: number;
  readonly len: number;
}

/**
 * A descriptor chain the device popped (QEMU's VirtQueueElement): its device-readable
 * segments ("out", driver → device) and device-writable segments ("in", device → driver),
 * already checked against guest memory. The object is reusable — pass it back to `pop()` to
 * refill it without allocating; the segment arrays only grow.
 */
export class DescriptorChain {
  /** Split: head descriptor index. Packed: buffer id. What the used element carries. */
  id = 0;
  /** Ring slots the chain occupied (packed: how far both sides skip; split: direct descriptors). */
  ndescs = 0;
  /** Whether the chain went through an indirect table. */
  indirect = false;
  outNum = 0;
  inNum = 0;
  /** Total bytes readable / writable. */
  outBytes = 0;
  inBytes = 0;
  readonly outAddr: number[] = [];
  readonly outLen: number[] = [];
  readonly inAddr: number[] = [];
  readonly inLen: number[] = [];

  /** Clears the chain for reuse. */
  reset(id: number): void {
    this.id = id;
    this.ndescs = 0;
    this.indirect = false;
    this.outNum = 0;
    this.inNum = 0;
    this.outBytes = 0;
    this.inBytes = 0;
  }

  /** The device-readable segments (allocates; for tests and slow paths). */
  readable(): Segment[] {
    const out: Segment[] = [];
    for (let i = 0; i < this.outNum; i++) out.push({ gpa: this.outAddr[i]!, len: this.outLen[i]! });
    return out;
  }

  /** The device-writable segments (allocates; for tests and slow paths). */
  writable(): Segment[] {
    const out: Segment[] = [];
    for (let i = 0; i < this.inNum; i++) out.push({ gpa: this.inAddr[i]!, len: this.inLen[i]! });
    return out;
  }
}

/**
 * Copies the chain's readable bytes, starting `offset` bytes in, into `dst` (QEMU's
 * iov_to_buf). Returns the number of bytes copied; stops early, without throwing, if a
 * segment is no longer guest memory (a region was removed after the pop).
 */
export function copyFromChain(mem: GuestMemory, chain: DescriptorChain, dst: Uint8Array, offset = 0): number {
  let done = 0;
  let skip = offset;
  for (let i = 0; i < chain.outNum && done < dst.length; i++) {
    const len = chain.outLen[i]!;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const n = Math.min(len - skip, dst.length - done);
    const gpa = chain.outAddr[i]! + skip;
    const r = mem.find(gpa, n);
    if (r !== undefined) {
      const o = gpa - r.gpa;
      dst.set(r.bytes.subarray(o, o + n), done);
    } else if (mem.isValid(gpa, n)) {
      mem.readInto(gpa, dst.subarray(done, done + n));
    } else {
      return done;
    }
    done += n;
    skip = 0;
  }
  return done;
}

/**
 * Copies `src` into the chain's writable segments, starting `offset` bytes in (QEMU's
 * iov_from_buf). Returns the number of bytes written (what the used element's `len` should
 * say); stops early, without throwing, if a segment is no longer guest memory.
 */
export function copyToChain(mem: GuestMemory, chain: DescriptorChain, src: Uint8Array, offset = 0): number {
  let done = 0;
  let skip = offset;
  for (let i = 0; i < chain.inNum && done < src.length; i++) {
    const len = chain.inLen[i]!;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    const n = Math.min(len - skip, src.length - done);
    const gpa = chain.inAddr[i]! + skip;
    const r = mem.find(gpa, n);
    if (r !== undefined) {
      r.bytes.set(src.subarray(done, done + n), gpa - r.gpa);
    } else if (mem.isValid(gpa, n)) {
      mem.writeBytes(gpa, src.subarray(done, done + n));
    } else {
      return done;
    }
    done += n;
    skip = 0;
  }
  return done;
}
