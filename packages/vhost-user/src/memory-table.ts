import { GPA_LIMIT, GuestMemory, VirqError } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import type { MappedRegion, VhostUserHost } from './host.js';
import type { VhostUserMemoryRegion } from './payload.js';

/** Largest address (exclusive) this implementation translates: addresses are JS numbers. */
export const ADDRESS_LIMIT = 2 ** 53;

/** One mapped region of the front end's memory. */
export interface MappedMemoryRegion extends VhostUserMemoryRegion {
  readonly mapping: MappedRegion;
}

/**
 * The back end's view of the front end's memory (DPDK's `struct rte_vhost_memory`): regions
 * with guest physical address, size, front-end user address and mmap offset, each backed by
 * its mmapped fd. `guest` is a GuestMemory keyed by guest physical address whose regions are
 * the mappings themselves (zero copy), so descriptor addresses (GPAs) are read in place;
 * ring addresses from SET_VRING_ADDR are front-end user addresses and go through
 * `uvaToGpa` first (`host_ptr = mmap_base + mmap_offset + (addr − region start)`, FACTS §10.1).
 */
export class VhostMemoryTable {
  readonly guest: GuestMemory;
  constructor(readonly regions: readonly MappedMemoryRegion[]) {
    this.guest = new GuestMemory(
      regions.map((r) => ({ gpa: r.guestPhysAddr, size: r.memorySize, buffer: r.mapping.buffer, bufferOffset: r.mapping.offset, name: `vhost-region@0x${r.guestPhysAddr.toString(16)}` })),
    );
  }

  /** The guest physical address of [uva, uva+len), or undefined when no single region holds it. */
  uvaToGpa(uva: number, len: number): number | undefined {
    for (const r of this.regions) {
      if (uva >= r.userspaceAddr && len >= 0 && uva + len <= r.userspaceAddr + r.memorySize) return uva - r.userspaceAddr + r.guestPhysAddr;
    }
    return undefined;
  }

  /** Whether [gpa, gpa+len) lies in one region. */
  gpaValid(gpa: number, len: number): boolean {
    return this.guest.find(gpa, len) !== undefined;
  }

  unmapAll(): void {
    for (const r of this.regions) r.mapping.unmap();
  }

  /**
   * Checks a region description before anything is mapped: non-empty, no u64 overflow in
   * gpa + size, uva + size, mmap_offset + size (the CVE-2020-10722 class), inside the range
   * this implementation can address.
   */
  static checkRegion(r: VhostUserMemoryRegion, i = 0): void {
    const where = `memory region ${i} (gpa 0x${r.guestPhysAddr.toString(16)}, size 0x${r.memorySize.toString(16)}, uva 0x${r.userspaceAddr.toString(16)}, mmap_offset 0x${r.mmapOffset.toString(16)})`;
    if (r.memorySize === 0) {
      throw new VirqError(VhostUserErrorCode.MemoryTable, `${where} is empty; every region needs memory_size > 0`, { errno: 'EINVAL', details: { index: i } });
    }
    for (const [name, base] of [['guest_phys_addr', r.guestPhysAddr], ['userspace_addr', r.userspaceAddr], ['mmap_offset', r.mmapOffset]] as const) {
      if (base + r.memorySize > 2 ** 64 || !(base + r.memorySize < ADDRESS_LIMIT)) {
        throw new VirqError(VhostUserErrorCode.Overflow, `${where}: ${name} + memory_size overflows or leaves the 2^53 addressable range`, { errno: 'EINVAL', details: { index: i, field: name } });
      }
    }
    if (r.guestPhysAddr + r.memorySize > GPA_LIMIT) {
      throw new VirqError(VhostUserErrorCode.MemoryTable, `${where} ends above 2^52 (x86-64 MAXPHYADDR)`, { errno: 'EINVAL', details: { index: i } });
    }
  }

  /** Checks a whole table: every region, and no two overlapping in guest or user address. */
  static checkTable(regions: readonly VhostUserMemoryRegion[]): void {
    regions.forEach((r, i) => VhostMemoryTable.checkRegion(r, i));
    for (let i = 0; i < regions.length; i++) {
      for (let j = i + 1; j < regions.length; j++) {
        const a = regions[i]!;
        const b = regions[j]!;
        const gpaOverlap = a.guestPhysAddr < b.guestPhysAddr + b.memorySize && b.guestPhysAddr < a.guestPhysAddr + a.memorySize;
        const uvaOverlap = a.userspaceAddr < b.userspaceAddr + b.memorySize && b.userspaceAddr < a.userspaceAddr + a.memorySize;
        if (gpaOverlap || uvaOverlap) {
          throw new VirqError(VhostUserErrorCode.MemoryTable, `memory regions ${i} and ${j} overlap in ${gpaOverlap ? 'guest physical' : 'user'} address space`, { errno: 'EINVAL', details: { a: i, b: j } });
        }
      }
    }
  }

  /** Maps every region's fd; on failure unmaps what was mapped and rethrows. */
  static map<F>(host: VhostUserHost<F>, regions: readonly VhostUserMemoryRegion[], fds: readonly F[]): VhostMemoryTable {
    VhostMemoryTable.checkTable(regions);
    const mapped: MappedMemoryRegion[] = [];
    try {
      regions.forEach((r, i) => {
        const mapping = host.mapMemory(fds[i]!, r.mmapOffset, r.memorySize);
        if (mapping.size < r.memorySize) {
          mapping.unmap();
          throw new VirqError(VhostUserErrorCode.Map, `memory region ${i}: the fd maps ${mapping.size} bytes, the region needs ${r.memorySize}`, { errno: 'EINVAL' });
        }
        mapped.push({ ...r, mapping });
      });
      return new VhostMemoryTable(mapped);
    } catch (e) {
      for (const m of mapped) m.mapping.unmap();
      throw e;
    }
  }
}
