/**
 * Bit values of the virtio 1.2 ring structures (FACTS §1.1, §2.1, §2.3) and the feature bit
 * positions the ring cares about (FACTS §1.5). Names are the ones in Linux's
 * include/uapi/linux/virtio_ring.h and virtio_config.h.
 */

/** Split and packed descriptor flags. */
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
/** Packed ring only: the AVAIL and USED ownership bits. */
export const VRING_PACKED_DESC_F_AVAIL = 1 << 7;
export const VRING_PACKED_DESC_F_USED = 1 << 15;

/** avail.flags bit 0: the driver asks for no used-buffer notifications (split, no EVENT_IDX). */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags bit 0: the device asks for no available-buffer notifications (split, no EVENT_IDX). */
export const VRING_USED_F_NO_NOTIFY = 1;

/** Packed event suppression `flags` values. */
export const VRING_PACKED_EVENT_FLAG_ENABLE = 0;
export const VRING_PACKED_EVENT_FLAG_DISABLE = 1;
export const VRING_PACKED_EVENT_FLAG_DESC = 2;
/** Bit of the packed event suppression `off_wrap` word that holds the wrap counter. */
export const VRING_PACKED_EVENT_F_WRAP_CTR = 15;

/** Feature bit positions (not masks). */
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VIRTIO_F_ANY_LAYOUT = 27;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_F_ORDER_PLATFORM = 36;
export const VIRTIO_F_NOTIFICATION_DATA = 38;
export const VIRTIO_F_RING_RESET = 40;

/** Largest queue size of either ring format (virtio 1.2 §2.7 / §2.8: 2^15). */
export const VIRTQUEUE_MAX_SIZE = 32768;

/** Bytes of one descriptor (split and packed). */
export const VRING_DESC_SIZE = 16;

/**
 * Default cap on the number of segments one chain may have (direct + indirect): QEMU's
 * VIRTQUEUE_MAX_SIZE (1024) bounds its iovec arrays, and Linux vhost's UIO_MAXIOV is 1024.
 */
export const DEFAULT_MAX_SEGMENTS = 1024;
