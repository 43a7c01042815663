import { VIRTIO_F_IN_ORDER, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_RING_PACKED, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from './constants.js';

/** The negotiated features that change what the ring code does. */
export interface RingFeatures {
  /** VIRTIO_RING_F_EVENT_IDX (29): used_event / avail_event instead of the flag hints. */
  readonly eventIdx: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC (28): the driver may use indirect tables. */
  readonly indirectDesc: boolean;
  /** VIRTIO_F_IN_ORDER (35): buffers are used in the order they were made available. */
  readonly inOrder: boolean;
  /** VIRTIO_F_NOTIFY_ON_EMPTY (24, legacy): interrupt when the queue runs empty. */
  readonly notifyOnEmpty: boolean;
  /** VIRTIO_F_RING_PACKED (34). */
  readonly packed: boolean;
}

export const NO_RING_FEATURES: RingFeatures = { eventIdx: false, indirectDesc: false, inOrder: false, notifyOnEmpty: false, packed: false };

/** Ring features out of a negotiated 64-bit feature word (bigint, or a number below 2^53). */
export function ringFeatures(features: bigint | number): RingFeatures {
  const f = typeof features === 'bigint' ? features : BigInt(features);
  const has = (bit: number): boolean => ((f >> BigInt(bit)) & 1n) === 1n;
  return {
    eventIdx: has(VIRTIO_RING_F_EVENT_IDX),
    indirectDesc: has(VIRTIO_RING_F_INDIRECT_DESC),
    inOrder: has(VIRTIO_F_IN_ORDER),
    notifyOnEmpty: has(VIRTIO_F_NOTIFY_ON_EMPTY),
    packed: has(VIRTIO_F_RING_PACKED),
  };
}

/** Accepts either form a caller has at hand. */
export function toRingFeatures(f: RingFeatures | Partial<RingFeatures> | bigint | number | undefined): RingFeatures {
  if (f === undefined) return NO_RING_FEATURES;
  if (typeof f === 'bigint' || typeof f === 'number') return ringFeatures(f);
  return { ...NO_RING_FEATURES, ...f };
}
