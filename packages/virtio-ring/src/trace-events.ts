import type { TraceChannel, TraceEvent } from '@virq/core';

/**
 * The events a virtqueue emits, keyed by kind. Each event's `fn` is the real function the
 * step stands for (Linux drivers/virtio/virtio_ring.c on the driver side; QEMU
 * hw/virtio/virtio.c, DPDK lib/vhost or Linux drivers/vhost on the device side, per the
 * device's `flavor`). Indexes are the free-running u16 ring indexes (split) or slot
 * indexes with their wrap counter (packed).
 */
export type VirtioRingEventArgs = {
  /** virtqueue_add: a buffer made available. */
  'vring.add': { queue: number; head: number; out: number; in: number; availIdx: number; indirect: boolean };
  /** virtqueue_kick_prepare: the notification decision. `event` is avail_event / off_wrap, -1 when flags decided. */
  'vring.kick_prepare': { queue: number; oldIdx: number; newIdx: number; event: number; flags: number; needsKick: boolean };
  /** virtqueue_notify: the transport's notify (vp_notify) was called. */
  'vring.notify': { queue: number; availIdx: number };
  /** vring_interrupt: the used-buffer notification reached the driver. */
  'vring.interrupt': { queue: number; lastUsedIdx: number; more: boolean };
  /** virtqueue_get_buf_ctx: a used buffer reclaimed. */
  'vring.get_buf': { queue: number; id: number; len: number; lastUsedIdx: number };
  /** virtqueue_disable_cb / virtqueue_enable_cb*: the driver's used-buffer suppression. */
  'vring.set_cb': { queue: number; enabled: boolean; usedEvent: number; pending: boolean };
  /** virtqueue_pop (QEMU) / fill_vec_buf_split (DPDK) / vhost_get_vq_desc: a chain taken. */
  'vring.pop': { queue: number; head: number; lastAvailIdx: number; availIdx: number; out: number; in: number; indirect: boolean };
  /** virtqueue_fill: a used element written (not yet visible). */
  'vring.fill': { queue: number; id: number; len: number; usedIdx: number };
  /** virtqueue_flush: used idx published. */
  'vring.flush': { queue: number; count: number; oldUsedIdx: number; newUsedIdx: number };
  /** virtio_queue_set_notification / vhost_enable_notify: the device's kick suppression. */
  'vring.set_notification': { queue: number; enabled: boolean; availEvent: number; pending: boolean };
  /** virtio_should_notify / vhost_vring_call_split / vhost_notify: the interrupt decision. */
  'vring.should_notify': { queue: number; oldIdx: number; newIdx: number; event: number; flags: number; notify: boolean };
  /** virtio_notify / vhost_vring_call / vhost_signal: the used-buffer notification sent. */
  'vring.call': { queue: number; usedIdx: number };
  /** virtio_error: the device side found bad driver input and needs a reset. */
  'vring.error': { queue: number; code: string; message: string };
  /** BAD_RING on the driver side: the device wrote something impossible; the queue is broken. */
  'vring.broken': { queue: number; code: string; message: string };
  /** virtio_queue_reset / vring_reset: a side back to its initial state. */
  'vring.reset': { queue: number };
};

export type VirtioRingEventKind = keyof VirtioRingEventArgs;

/** The discriminated union of every event on a virtqueue's `events$`. */
export type VirtioRingEvent = { [K in VirtioRingEventKind]: TraceEvent<K, VirtioRingEventArgs[K]> }[VirtioRingEventKind];

/** The trace channel a queue emits on (`ctx.trace.channel<VirtioRingEvent>('virtio-ring')`). */
export type VirtioRingTrace = TraceChannel<VirtioRingEvent>;
