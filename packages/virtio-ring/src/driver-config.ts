import type { VirtqueueAddresses } from './layout.js';
import type { RingFeatures } from './ring-features.js';
import type { VirtioRingTrace } from './trace-events.js';

/** Configuration of a driver-side queue (what Linux's vring_virtqueue is created with). */
export interface VirtqueueDriverConfig extends VirtqueueAddresses {
  readonly size: number;
  /** Negotiated features: a 64-bit feature word or the ring-relevant subset. */
  readonly features?: Partial<RingFeatures> | bigint | number;
  readonly index?: number;
  readonly trace?: VirtioRingTrace;
  /**
   * The transport's notify (Linux `vq->notify`, i.e. vp_notify writing the queue index to
   * the notify address). Returning false marks the queue broken, as in virtqueue_notify.
   */
  readonly notify?: () => boolean | void;
  /** The driver's used-buffer callback (`vq->callback`, e.g. skb_xmit_done), run by `interrupt()`. */
  readonly callback?: () => void;
  /**
   * Guest memory for indirect tables (needs VIRTIO_RING_F_INDIRECT_DESC): `maxEntries`
   * descriptors per buffer, one table per possible buffer (size × maxEntries × 16 bytes,
   * 16-byte aligned, in one region). Without it the driver never uses indirect tables.
   */
  readonly indirectArea?: { readonly gpa: number; readonly maxEntries: number };
  /**
   * Split ring: when avail.idx is published. 'immediate' (default) stores it after every add,
   * as Linux has since "virtio: expose added descriptors immediately" (2012).
   * 'on-kick' stores it once per batch in `kickPrepare()` — the spec's batched algorithm
   * (FACTS §1.3 steps 3–5) and pre-2012 Linux — so a batch costs one release store instead of
   * one per buffer (in JS every such store is a sequentially consistent Atomics.store).
   * Packed rings publish each chain with its head's flags and ignore this.
   */
  readonly availPublish?: 'immediate' | 'on-kick';
}
