/**
 * Error codes of @virq/virtio-ring. Device-side codes describe what a (possibly hostile)
 * driver wrote; they never escape as exceptions: the queue goes to NEEDS_RESET and reports
 * the error (QEMU's `virtio_error`). Configuration codes are thrown to the user who passed
 * the bad configuration.
 */
export const VirtioRingErrorCode = {
  // --- configuration (thrown) ---
  /** Queue size not allowed for the format (split: power of two ≤ 32768; packed: 1..32768). */
  BadQueueSize: 'vring.bad-queue-size',
  /** A ring area is misaligned, outside guest memory, or split across regions. */
  BadLayout: 'vring.bad-layout',
  /** A driver-side call with arguments the caller must fix (no buffers, zero length …). */
  BadArgument: 'vring.bad-argument',
  /** snapshot/restore misuse. */
  BadSnapshot: 'vring.bad-snapshot',
  // --- guest-driven (device side → NEEDS_RESET) ---
  /** avail.idx more than queue-size ahead of last_avail_idx ("Guest moved used index", CVE-2016-5403 class). */
  AvailIdxJump: 'vring.avail-idx-jump',
  /** More buffers popped than the queue holds ("Virtqueue size exceeded"). */
  QueueOverrun: 'vring.queue-overrun',
  /** avail.ring[] head ≥ queue size ("Guest says index %u is available"), or a packed buffer id ≥ size. */
  HeadOutOfRange: 'vring.head-out-of-range',
  /** A descriptor's `next` ≥ the table size ("Desc next is %u"). */
  NextOutOfRange: 'vring.next-out-of-range',
  /** Walking a table visited more descriptors than it has ("Looped descriptor"). */
  DescLoop: 'vring.desc-loop',
  /** A chain with more segments than the device accepts, or a packed chain longer than the ring. */
  ChainTooLong: 'vring.chain-too-long',
  /** A descriptor's [addr, addr+len) is not guest memory ("bogus descriptor"). */
  DescOutOfMemory: 'vring.desc-out-of-memory',
  /** A zero-length buffer ("zero sized buffers are not allowed"). */
  ZeroLength: 'vring.zero-length',
  /** The chain's lengths add up past 2^32 − 1. */
  LengthOverflow: 'vring.length-overflow',
  /** INDIRECT set inside an indirect table. */
  NestedIndirect: 'vring.nested-indirect',
  /** Indirect table length zero or not a multiple of 16 ("Invalid size for indirect buffer table"). */
  IndirectBadSize: 'vring.indirect-bad-size',
  /** Indirect table not mappable (outside guest memory, split across regions, misaligned). */
  IndirectUnmappable: 'vring.indirect-unmappable',
  /** A device-writable descriptor before a readable one ("Incorrect order for descriptors"). */
  DescOrder: 'vring.desc-order',
  // --- device-driven (driver side → broken, Linux BAD_RING) ---
  /** used.ring[].id / packed used id ≥ queue size. */
  UsedIdOutOfRange: 'vring.used-id-out-of-range',
  /** used id that is not the head of an outstanding buffer. */
  UsedIdNotHead: 'vring.used-id-not-head',
  /** used.idx moved more than the number of outstanding buffers. */
  UsedIdxJump: 'vring.used-idx-jump',
} as const;
export type VirtioRingErrorCode = (typeof VirtioRingErrorCode)[keyof typeof VirtioRingErrorCode];

/** State of a queue as virtio's status byte would report it. */
export type VirtqueueStatus = 'ok' | 'needs-reset';
