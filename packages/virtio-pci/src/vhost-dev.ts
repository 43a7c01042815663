import { EventFd, type SimContext, type TraceChannel } from '@virq/core';
import { VIRTIO_NO_VECTOR } from './virtio-constants.js';
import type { VirtioDevice } from './virtio-device.js';
import type { VirtioTraceEvent } from './virtio-trace.js';
import type { VhostOps } from './vhost-ops.js';

/**
 * QEMU's vhost front end for one back-end device (`struct vhost_dev`, hw/virtio/vhost.c):
 * a contiguous range of the virtio device's queues [vqIndex, vqIndex + nvqs) handed to a
 * back end through `VhostOps`, with a masked notifier per queue (where the call fd points
 * while the guest has the vector masked).
 */
export class VhostDev {
  readonly masked: EventFd[];
  started = false;
  private owned = false;
  private readonly trace: TraceChannel<VirtioTraceEvent>;

  constructor(
    readonly ctx: SimContext,
    readonly ops: VhostOps,
    readonly vqIndex: number,
    readonly nvqs: number,
  ) {
    this.trace = ctx.trace.channel<VirtioTraceEvent>('virtio-pci');
    this.masked = Array.from({ length: nvqs }, (_, i) => new EventFd(ctx.scheduler, { name: `vhost-vq${vqIndex + i}-masked` }));
  }

  /** Traces a VhostOps call as QEMU's backend function (vhost_kernel_* ioctls / vhost_user_* messages). */
  private op(fn: string, caller: string, args: Record<string, number | string | boolean>): void {
    if (!this.trace.on) return;
    const real = fn.replace(/^vhost_/, this.ops.backendType === 'kernel' ? 'vhost_kernel_' : 'vhost_user_');
    this.trace.emit('vhost.op', real, caller, { backend: this.ops.name, ...args });
  }

  /** vhost_dev_init's VHOST_SET_OWNER (once). */
  init(): void {
    if (this.owned) return;
    this.op('vhost_set_owner', 'vhost_dev_init', {});
    this.ops.setOwner();
    this.owned = true;
  }

  /** vhost_dev_start: features, memory table, then every ring (vhost_virtqueue_start). */
  start(vdev: VirtioDevice): void {
    this.init();
    this.started = true;
    const features = vdev.guestFeatures & this.ops.getFeatures();
    this.op('vhost_set_features', 'vhost_dev_set_features', { features: `0x${features.toString(16)}` });
    this.ops.setFeatures(features);
    this.op('vhost_set_mem_table', 'vhost_dev_start', {});
    this.ops.setMemTable(vdev.mem);
    for (let i = 0; i < this.nvqs; i++) this.virtqueueStart(vdev, this.vqIndex + i);
  }

  /**
   * vhost_virtqueue_start: NUM, BASE (last_avail_idx), ADDR, KICK (the host notifier);
   * then, without guest-notifier masking, CALL with the guest notifier; and CALL with no fd
   * for a queue that has no MSI-X vector while the transport uses guest notifiers.
   */
  private virtqueueStart(vdev: VirtioDevice, idx: number): void {
    const vq = vdev.queues[idx]!;
    if (vq.desc === 0) return; // queue not set up by the driver
    const caller = 'vhost_virtqueue_start';
    this.op('vhost_set_vring_num', caller, { index: idx, num: vq.num });
    this.ops.setVringNum(idx, vq.num);
    const base = vdev.lastAvailIdx(idx);
    this.op('vhost_set_vring_base', caller, { index: idx, num: base });
    this.ops.setVringBase(idx, base);
    this.op('vhost_set_vring_addr', 'vhost_virtqueue_set_addr', { index: idx, desc: vq.desc, avail: vq.driver, used: vq.device });
    this.ops.setVringAddr({ index: idx, desc: vq.desc, avail: vq.driver, used: vq.device, flags: 0 });
    this.op('vhost_set_vring_kick', caller, { index: idx, fd: vq.hostNotifier?.fd ?? -1 });
    this.ops.setVringKick(idx, vq.hostNotifier);
    this.masked[idx - this.vqIndex]!.testAndClear();
    if (!vdev.useGuestNotifierMask) this.mask(vdev, idx, false, caller);
    if (vdev.transport?.queryGuestNotifiers() === true && vq.vector === VIRTIO_NO_VECTOR) {
      this.op('vhost_set_vring_call', caller, { index: idx, fd: -1 });
      this.ops.setVringCall(idx, undefined);
    }
  }

  /** vhost_virtqueue_mask: the call fd becomes the masked notifier (mask) or the guest notifier. */
  mask(vdev: VirtioDevice, idx: number, mask: boolean, caller = 'vhost_net_virtqueue_mask'): void {
    const fd = mask ? this.masked[idx - this.vqIndex] : vdev.queues[idx]!.guestNotifier;
    this.op('vhost_set_vring_call', caller, { index: idx, fd: fd?.fd ?? -1, masked: mask });
    this.ops.setVringCall(idx, fd);
  }

  /** vhost_virtqueue_pending: the masked notifier fired (test and clear). */
  pending(idx: number): boolean {
    return this.masked[idx - this.vqIndex]!.testAndClear() > 0;
  }

  /** vhost_dev_stop: every ring's GET_VRING_BASE goes back into the VMM's queue state. */
  stop(vdev: VirtioDevice): void {
    if (!this.started) return;
    for (let i = 0; i < this.nvqs; i++) {
      const idx = this.vqIndex + i;
      const vq = vdev.queues[idx]!;
      if (vq.desc === 0) continue;
      const base = this.ops.getVringBase(idx);
      this.op('vhost_get_vring_base', 'vhost_virtqueue_stop', { index: idx, num: base });
      vq.lastAvailIdx = base;
      vdev.mapRing(vq);
      // virtio_queue_update_used_idx: the used index is where the back end left it in memory
      // (it differs from last_avail_idx when chains were in flight).
      vq.ring?.updateUsedIdx();
    }
    this.started = false;
  }
}
