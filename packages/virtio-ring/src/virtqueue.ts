import type { GuestMemory, Snapshot, VirqError } from '@virq/core';
import type { DescriptorChain, Segment } from './descriptor-chain.js';
import type { VirtqueueDeviceConfig } from './device-config.js';
import type { VirtqueueDriverConfig } from './driver-config.js';
import type { VirtqueueStatus } from './errors.js';
import { PackedVirtqueueDevice } from './packed-device.js';
import { PackedVirtqueueDriver } from './packed-driver.js';
import { toRingFeatures } from './ring-features.js';
import { SplitVirtqueueDevice } from './split-device.js';
import { SplitVirtqueueDriver } from './split-driver.js';

/** What a guest driver model uses, whichever ring format was negotiated. */
export interface VirtqueueDriver<T = unknown> {
  readonly size: number;
  readonly index: number;
  readonly numFree: number;
  readonly broken: boolean;
  lastLen: number;
  addOutbuf(gpa: number, len: number, token: T): boolean;
  addInbuf(gpa: number, len: number, token: T): boolean;
  addSgs(out: readonly Segment[], inn: readonly Segment[], token: T): boolean;
  kickPrepare(): boolean;
  notify(): boolean;
  kick(): boolean;
  moreUsed(): boolean;
  getBuf(): T | undefined;
  disableCb(): void;
  enableCbPrepare(): number;
  poll(opaque: number): boolean;
  enableCb(): boolean;
  enableCbDelayed(): boolean;
  interrupt(): boolean;
  snapshot(): Snapshot<unknown>;
}

/** What a device model / vhost back end uses, whichever ring format was negotiated. */
export interface VirtqueueDevice {
  readonly size: number;
  readonly index: number;
  readonly status: VirtqueueStatus;
  readonly error: VirqError | undefined;
  readonly broken: boolean;
  readonly inFlight: number;
  readonly mem: GuestMemory;
  isEmpty(): boolean;
  pop(into?: DescriptorChain): DescriptorChain | null;
  fill(chain: DescriptorChain, len: number): void;
  flush(): number;
  push(chain: DescriptorChain, len: number): void;
  shouldNotify(): boolean;
  notify(): boolean;
  disableNotification(): void;
  enableNotification(): boolean;
  readFromChain(chain: DescriptorChain, dst: Uint8Array, offset?: number): number;
  writeToChain(chain: DescriptorChain, src: Uint8Array, offset?: number): number;
  getVringBase(): number;
  setVringBase(base: number): void;
  /** After a back end stopped: re-read where its used ring got to (QEMU virtio_queue_update_used_idx). */
  updateUsedIdx(): void;
  /** Puts the last `count` popped chains back (QEMU virtqueue_unpop); false when it cannot. */
  unpop(count?: number): boolean;
  reset(): void;
  snapshot(): Snapshot<unknown>;
  restore(snapshot: Snapshot<never>): void;
}

/** A split or packed driver queue, per VIRTIO_F_RING_PACKED in `config.features`. */
export function createVirtqueueDriver<T = unknown>(mem: GuestMemory, config: VirtqueueDriverConfig): VirtqueueDriver<T> {
  return toRingFeatures(config.features).packed ? new PackedVirtqueueDriver<T>(mem, config) : new SplitVirtqueueDriver<T>(mem, config);
}

/** A split or packed device queue, per VIRTIO_F_RING_PACKED in `config.features`. */
export function createVirtqueueDevice(mem: GuestMemory, config: VirtqueueDeviceConfig): VirtqueueDevice {
  return toRingFeatures(config.features).packed ? new PackedVirtqueueDevice(mem, config) : new SplitVirtqueueDevice(mem, config);
}
