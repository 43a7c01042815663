import type { VirqError } from '@virq/core';
import type { VirtqueueAddresses } from './layout.js';
import type { RingFeatures } from './ring-features.js';
import type { VirtioRingTrace } from './trace-events.js';

/**
 * Whose device-side code a queue stands for. It only changes the function names in the trace
 * (and QEMU's legacy NOTIFY_ON_EMPTY rule), because QEMU, DPDK and kernel vhost implement
 * the same ring rules.
 */
export type DeviceFlavor = 'qemu' | 'dpdk' | 'vhost-kernel';

/** Configuration of a device-side queue (what QEMU's VirtQueue / DPDK's vhost_virtqueue hold). */
export interface VirtqueueDeviceConfig extends VirtqueueAddresses {
  /** Queue size (queue_size / SET_VRING_NUM). */
  readonly size: number;
  /** Negotiated features: a 64-bit feature word or the ring-relevant subset. */
  readonly features?: Partial<RingFeatures> | bigint | number;
  /** Queue index within the device (for traces and errors). */
  readonly index?: number;
  readonly flavor?: DeviceFlavor;
  /** Where events go; none when omitted (real mode, worker threads). */
  readonly trace?: VirtioRingTrace;
  /** The used-buffer notification itself (virtio_irq / write to the call eventfd). */
  readonly call?: () => void;
  /** Told once when the queue enters NEEDS_RESET (QEMU's virtio_error → DEVICE_NEEDS_RESET). */
  readonly onError?: (error: VirqError) => void;
  /** Most segments one chain may have (default 1024, QEMU's VIRTQUEUE_MAX_SIZE). */
  readonly maxSegments?: number;
  /** Accept device-writable descriptors before readable ones (default false: QEMU refuses). */
  readonly anyOrder?: boolean;
}

/** The real function names each flavor's steps are traced as. */
export interface DeviceFunctionNames {
  readonly pop: string;
  readonly fill: string;
  readonly flush: string;
  readonly shouldNotify: string;
  readonly call: string;
  readonly callCaller: string;
  readonly enableNotify: string;
  readonly disableNotify: string;
  readonly error: string;
  readonly reset: string;
}

export function deviceFunctionNames(flavor: DeviceFlavor, packed: boolean): DeviceFunctionNames {
  switch (flavor) {
    case 'dpdk':
      return {
        pop: packed ? 'fill_vec_buf_packed' : 'fill_vec_buf_split',
        fill: packed ? 'vhost_shadow_enqueue_packed' : 'update_shadow_used_ring_split',
        flush: packed ? 'vhost_flush_enqueue_shadow_packed' : 'flush_shadow_used_ring_split',
        shouldNotify: packed ? 'vhost_vring_call_packed' : 'vhost_vring_call_split',
        call: 'eventfd_write',
        callCaller: packed ? 'vhost_vring_call_packed' : 'vhost_vring_call_split',
        enableNotify: 'rte_vhost_enable_guest_notification',
        disableNotify: 'rte_vhost_enable_guest_notification',
        error: 'VHOST_DATA_LOG',
        reset: 'vhost_user_reset_owner',
      };
    case 'vhost-kernel':
      return {
        pop: 'vhost_get_vq_desc',
        fill: 'vhost_add_used',
        flush: 'vhost_add_used_n',
        shouldNotify: 'vhost_notify',
        call: 'vhost_signal',
        callCaller: 'vhost_add_used_and_signal_n',
        enableNotify: 'vhost_enable_notify',
        disableNotify: 'vhost_disable_notify',
        error: 'vq_err',
        reset: 'vhost_vq_reset',
      };
    default:
      return {
        pop: 'virtqueue_pop',
        fill: 'virtqueue_fill',
        flush: 'virtqueue_flush',
        shouldNotify: packed ? 'virtio_packed_should_notify' : 'virtio_split_should_notify',
        call: 'virtio_irq',
        callCaller: 'virtio_notify',
        enableNotify: 'virtio_queue_set_notification',
        disableNotify: 'virtio_queue_set_notification',
        error: 'virtio_error',
        reset: 'virtio_queue_reset',
      };
  }
}
