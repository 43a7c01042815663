import type { EventFd } from '@virq/core';
import type { VirtqueueDevice } from '@virq/virtio-ring';
import { VIRTIO_NO_VECTOR } from './virtio-constants.js';

/** What a device does when its queue is kicked (QEMU's VirtIOHandleOutput). */
export type HandleOutput = (vq: VirtQueue) => void;

/**
 * The VMM's per-queue state (QEMU's `VirtQueue`): size, MSI-X vector, ring addresses as the
 * driver programmed them, the device-side ring once mapped, and the two notifiers
 * (host: guest → device kick; guest: device → guest interrupt).
 */
export class VirtQueue {
  /** queue_size as the driver set it (0 = no such queue). */
  num: number;
  vector = VIRTIO_NO_VECTOR;
  desc = 0;
  driver = 0;
  device = 0;
  /** Modern transport's queue_enable. */
  enabled = false;
  /** The device-side ring, mapped when the queue is enabled (or the legacy PFN written). */
  ring: VirtqueueDevice | undefined;
  /** last_avail_idx kept across a ring hand-over to a vhost backend. */
  lastAvailIdx = 0;
  /** The ioeventfd EventFd, when the host notifier is set up. */
  hostNotifier: EventFd | undefined;
  /** When true, a kick reaching QEMU sets the host notifier instead of running handleOutput. */
  hostNotifierEnabled = false;
  removeHostWaiter: (() => void) | undefined;
  /** The guest notifier (irqfd or main-loop read) used by vhost backends. */
  guestNotifier: EventFd | undefined;
  removeGuestWaiter: (() => void) | undefined;
  /** Kicks that reached the device's handler. */
  kicks = 0;
  /** Who runs handleOutput now: virtio_queue_notify_vq, or virtio_queue_notify itself without a host notifier. */
  outputCaller = 'virtio_queue_notify_vq';
  /** Interrupts raised for this queue (virtio_irq). */
  irqs = 0;

  constructor(
    readonly index: number,
    /** Largest size the device offers (queue_size reset value). */
    readonly numDefault: number,
    readonly handleOutput: HandleOutput,
  ) {
    this.num = numDefault;
  }

  resetTransport(): void {
    this.num = this.numDefault;
    this.vector = VIRTIO_NO_VECTOR;
    this.desc = 0;
    this.driver = 0;
    this.device = 0;
    this.enabled = false;
    this.ring = undefined;
    this.lastAvailIdx = 0;
  }
}
