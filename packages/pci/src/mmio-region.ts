/** Access sizes a device region handles (8-byte guest accesses are split in two by the bus). */
export type AccessSize = 1 | 2 | 4;

/**
 * A device's MMIO or port-I/O register block — QEMU's MemoryRegion with its ops. `offset`
 * is relative to the region's start. Regions handle their own access-size rules: an access
 * a real device would ignore reads 0 / is dropped, it never throws on guest input.
 */
export interface MmioRegion {
  readonly name: string;
  readonly size: number;
  read(offset: number, size: AccessSize): number;
  write(offset: number, size: AccessSize, value: number): void;
}

interface Sub {
  readonly offset: number;
  readonly region: MmioRegion;
}

/**
 * A container region with subregions at fixed offsets (memory_region_add_subregion): how a
 * BAR holds several register blocks (virtio's common/ISR/device/notify, MSI-X table + PBA).
 * Holes read as 0 and ignore writes.
 */
export class CompositeRegion implements MmioRegion {
  private subs: Sub[] = [];

  constructor(
    readonly name: string,
    readonly size: number,
  ) {}

  add(offset: number, region: MmioRegion): this {
    this.subs.push({ offset, region });
    this.subs.sort((a, b) => a.offset - b.offset);
    return this;
  }

  /** The subregion containing `offset`, with the offset inside it. */
  resolve(offset: number): { region: MmioRegion; offset: number } | undefined {
    const subs = this.subs;
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]!;
      if (offset >= s.offset && offset < s.offset + s.region.size) return { region: s.region, offset: offset - s.offset };
    }
    return undefined;
  }

  /** Offset of a subregion in this container. */
  offsetOf(region: MmioRegion): number | undefined {
    return this.subs.find((s) => s.region === region)?.offset;
  }

  read(offset: number, size: AccessSize): number {
    const r = this.resolve(offset);
    return r === undefined ? 0 : r.region.read(r.offset, size);
  }

  write(offset: number, size: AccessSize, value: number): void {
    const r = this.resolve(offset);
    if (r !== undefined) r.region.write(r.offset, size, value);
  }
}
