import { type GuestMemory, VirqError } from '@virq/core';
import { VirtioPciErrorCode } from './errors.js';

/**
 * The guest kernel's memory for rings and buffers, as a bump allocator over a range of
 * guest RAM (the model never frees: drivers allocate at probe and reuse their buffers).
 */
export class GuestPageAllocator {
  private next: number;

  constructor(
    readonly mem: GuestMemory,
    readonly base: number,
    readonly limit: number,
  ) {
    if (!mem.isValid(base, limit - base)) {
      throw new VirqError(VirtioPciErrorCode.BadConfig, `guest allocator range [0x${base.toString(16)}, 0x${limit.toString(16)}) is not guest RAM; give a range inside one memory region`);
    }
    this.next = base;
  }

  alloc(size: number, align = 64): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + size > this.limit) {
      throw new VirqError(VirtioPciErrorCode.BadConfig, `guest allocator out of memory (${size} bytes wanted, ${this.limit - at} left); give the driver a larger range`, { errno: 'ENOMEM' });
    }
    this.next = at + size;
    this.mem.fill(at, size, 0);
    return at;
  }

  get used(): number {
    return this.next - this.base;
  }
}
