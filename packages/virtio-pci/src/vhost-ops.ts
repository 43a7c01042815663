import type { EventFd, GuestMemory } from '@virq/core';

/** VHOST_SET_VRING_ADDR's payload (struct vhost_vring_addr) in guest-physical terms. */
export interface VhostVringAddr {
  readonly index: number;
  readonly desc: number;
  /** Available ring (split) / driver event area (packed). */
  readonly avail: number;
  /** Used ring (split) / device event area (packed). */
  readonly used: number;
  /** VHOST_VRING_F_LOG. */
  readonly flags: number;
}

/**
 * The seam between QEMU's vhost front end (hw/virtio/vhost.c, which lives here) and a vhost
 * back end: QEMU's `VhostOps`. Kernel vhost implements it with ioctls (VHOST_SET_VRING_*),
 * vhost-user with messages (VHOST_USER_SET_VRING_*). `index` is the virtio queue index
 * (vhost-user uses it as is; a kernel vhost-net device subtracts its pair's first queue).
 * Methods throw a VirqError when the back end refuses; the front end then falls back to the
 * in-VMM device ("falling back on userspace virtio").
 */
export interface VhostOps {
  readonly backendType: 'kernel' | 'user';
  readonly name: string;
  /** VHOST_SET_OWNER / VHOST_USER_SET_OWNER. */
  setOwner(): void;
  /** VHOST_GET_FEATURES. */
  getFeatures(): bigint;
  /** VHOST_SET_FEATURES: the features the guest acked (masked to the back end's). */
  setFeatures(features: bigint): void;
  /** VHOST_SET_MEM_TABLE: the guest's memory. */
  setMemTable(mem: GuestMemory): void;
  /** VHOST_SET_VRING_NUM. */
  setVringNum(index: number, num: number): void;
  /** VHOST_SET_VRING_BASE: where the back end starts popping (last_avail_idx). */
  setVringBase(index: number, base: number): void;
  /** VHOST_SET_VRING_ADDR. */
  setVringAddr(addr: VhostVringAddr): void;
  /** VHOST_SET_VRING_KICK: the host notifier (an ioeventfd) or undefined (fd -1, polling). */
  setVringKick(index: number, fd: EventFd | undefined): void;
  /** VHOST_SET_VRING_CALL: the guest notifier, the masked notifier, or undefined (fd -1: no interrupt). */
  setVringCall(index: number, fd: EventFd | undefined): void;
  /** VHOST_GET_VRING_BASE: stops the ring and returns its last_avail_idx. */
  getVringBase(index: number): number;
  /** VHOST_USER_SET_VRING_ENABLE (vhost-user only). */
  setVringEnable?(index: number, enable: boolean): void;
  /** VHOST_NET_SET_BACKEND (kernel vhost-net): attach or detach the tap for a ring. */
  setNetBackend?(index: number, attach: boolean): void;
}
