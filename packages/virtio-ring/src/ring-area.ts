import type { GuestMemory } from '@virq/core';

/**
 * Typed-array views of one ring area, resolved once when the queue is set up so the hot
 * paths index arrays instead of looking addresses up. An area must lie in one memory region
 * whose bytes are 4-byte aligned in their buffer — the same condition under which QEMU's
 * `address_space_cache_init` and DPDK's `vhost_iova_to_vva` map a ring ("Cannot map …"
 * otherwise). `u16Base`/`u32Base` are the element indexes of the area's first byte.
 */
export interface RingArea {
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly u16Base: number;
  readonly u32Base: number;
}

/** The area's views, or a sentence saying why it cannot be mapped. */
export function mapRingArea(mem: GuestMemory, gpa: number, len: number, align: number, what: string): RingArea | string {
  if (!Number.isSafeInteger(gpa) || gpa < 0) return `${what} address ${gpa} is not a guest physical address`;
  if (gpa % align !== 0) return `${what} at 0x${gpa.toString(16)} is not ${align}-byte aligned`;
  const r = mem.find(gpa, len);
  if (r === undefined) return `${what} [0x${gpa.toString(16)}, +${len}) is not inside one guest memory region`;
  if (r.u16 === undefined || r.u32 === undefined) return `${what} lies in region ${r.name}, whose bytes are not 4-byte aligned in their buffer`;
  const off = gpa - r.gpa;
  return { u16: r.u16, u32: r.u32, u16Base: off >>> 1, u32Base: Math.floor(off / 4) };
}
