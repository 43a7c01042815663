import { VirqError } from '@virq/core';
import { VIRTQUEUE_MAX_SIZE } from './constants.js';
import { VirtioRingErrorCode } from './errors.js';

/**
 * Where a virtqueue's three areas live, named as the virtio PCI common config names them
 * (queue_desc / queue_driver / queue_device) and as vhost-user's SET_VRING_ADDR carries them:
 * split ring: `driver` = the available ring, `device` = the used ring;
 * packed ring: `driver` = Driver Event Suppression, `device` = Device Event Suppression.
 */
export interface VirtqueueAddresses {
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
}

export interface VirtqueueLayout extends VirtqueueAddresses {
  readonly format: 'split' | 'packed';
  readonly size: number;
  readonly descBytes: number;
  readonly driverBytes: number;
  readonly deviceBytes: number;
  /** From `desc` to the end of the last area. */
  readonly totalBytes: number;
}

/** Byte sizes of the split areas (FACTS §1.1): 16Q, 6 + 2Q (with used_event), 6 + 8Q (with avail_event). */
export function splitAreaSizes(size: number): { desc: number; avail: number; used: number } {
  return { desc: 16 * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

const alignUp = (v: number, a: number): number => Math.ceil(v / a) * a;

/** Why `size` is not a valid split queue size, or undefined. */
export function splitSizeProblem(size: number): string | undefined {
  if (!Number.isInteger(size) || size < 1 || size > VIRTQUEUE_MAX_SIZE || (size & (size - 1)) !== 0) {
    return `split queue size must be a power of two from 1 to ${VIRTQUEUE_MAX_SIZE}, got ${size}`;
  }
  return undefined;
}

/** Why `size` is not a valid packed queue size, or undefined. */
export function packedSizeProblem(size: number): string | undefined {
  if (!Number.isInteger(size) || size < 1 || size > VIRTQUEUE_MAX_SIZE) {
    return `packed queue size must be an integer from 1 to ${VIRTQUEUE_MAX_SIZE}, got ${size}`;
  }
  return undefined;
}

/**
 * A contiguous split ring at `base`: descriptor table, available ring right after it, used
 * ring at the next multiple of `align` — Linux's `vring_init(vr, num, p, align)`. The legacy
 * PCI transport uses align 4096 (VIRTIO_PCI_VRING_ALIGN, FACTS §1.1); modern drivers use
 * SMP_CACHE_BYTES; the spec minimum is 4.
 */
export function splitRingLayout(size: number, base: number, align = 4096): VirtqueueLayout {
  const p = splitSizeProblem(size);
  if (p !== undefined) throw new VirqError(VirtioRingErrorCode.BadQueueSize, p, { errno: 'EINVAL', details: { size } });
  if (!Number.isInteger(align) || align < 4 || (align & (align - 1)) !== 0) {
    throw new VirqError(VirtioRingErrorCode.BadLayout, `used-ring alignment must be a power of two ≥ 4, got ${align}`, { errno: 'EINVAL' });
  }
  if (!Number.isSafeInteger(base) || base < 0 || base % 16 !== 0) {
    throw new VirqError(VirtioRingErrorCode.BadLayout, `split ring base must be a 16-byte aligned guest address, got ${base}`, { errno: 'EINVAL' });
  }
  const s = splitAreaSizes(size);
  const used = alignUp(base + s.desc + s.avail, align);
  return { format: 'split', size, desc: base, driver: base + s.desc, device: used, descBytes: s.desc, driverBytes: s.avail, deviceBytes: s.used, totalBytes: used + s.used - base };
}

/** A contiguous packed ring at `base`: descriptors, then the driver and device event structures. */
export function packedRingLayout(size: number, base: number): VirtqueueLayout {
  const p = packedSizeProblem(size);
  if (p !== undefined) throw new VirqError(VirtioRingErrorCode.BadQueueSize, p, { errno: 'EINVAL', details: { size } });
  if (!Number.isSafeInteger(base) || base < 0 || base % 16 !== 0) {
    throw new VirqError(VirtioRingErrorCode.BadLayout, `packed ring base must be a 16-byte aligned guest address, got ${base}`, { errno: 'EINVAL' });
  }
  const driver = base + 16 * size;
  return { format: 'packed', size, desc: base, driver, device: driver + 4, descBytes: 16 * size, driverBytes: 4, deviceBytes: 4, totalBytes: 16 * size + 8 };
}
