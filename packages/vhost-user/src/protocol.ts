/**
 * The vhost-user protocol's numbers: requests in both directions, header flags, the feature
 * bit that gates protocol features, and the protocol feature bits (FACTS §10.1–10.4, QEMU
 * docs/interop/vhost-user.rst).
 */

/** Front-end → back-end requests (`VhostUserRequest` in QEMU's hw/virtio/vhost-user.c). */
export const VhostUserRequest = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
  GET_SHARED_OBJECT: 41,
  SET_DEVICE_STATE_FD: 42,
  CHECK_DEVICE_STATE: 43,
  GET_SHMEM_CONFIG: 44,
} as const;
export type VhostUserRequestName = keyof typeof VhostUserRequest;
export type VhostUserRequestId = (typeof VhostUserRequest)[VhostUserRequestName];

const requestNames = new Map<number, VhostUserRequestName>(
  (Object.entries(VhostUserRequest) as [VhostUserRequestName, number][]).map(([k, v]) => [v, k]),
);
/** `VHOST_USER_<NAME>` for a request number (as DPDK's debug log prints it), or `UNKNOWN(n)`. */
export function requestName(id: number): string {
  const n = requestNames.get(id);
  return n === undefined ? `UNKNOWN(${id})` : `VHOST_USER_${n}`;
}
export function isKnownRequest(id: number): id is VhostUserRequestId {
  return requestNames.has(id);
}

/** Back-end → front-end requests on the BACKEND_REQ channel (FACTS §10.4). */
export const VhostUserBackendRequest = {
  IOTLB_MSG: 1,
  CONFIG_CHANGE_MSG: 2,
  VRING_HOST_NOTIFIER_MSG: 3,
  VRING_CALL: 4,
  VRING_ERR: 5,
  SHARED_OBJECT_ADD: 6,
  SHARED_OBJECT_REMOVE: 7,
  SHARED_OBJECT_LOOKUP: 8,
  SHMEM_MAP: 9,
  SHMEM_UNMAP: 10,
} as const;
export type VhostUserBackendRequestName = keyof typeof VhostUserBackendRequest;

/** Header flag bits. */
export const VhostUserFlag = {
  /** Bits 1:0: protocol version, must be 1. */
  VERSION_MASK: 0x3,
  VERSION: 0x1,
  REPLY: 0x4,
  NEED_REPLY: 0x8,
} as const;

/** Header: request u32, flags u32, size u32 (host byte order = little endian on x86/arm64). */
export const VHOST_USER_HDR_SIZE = 12;
/** QEMU's VHOST_MEMORY_BASELINE_NREGIONS and the most fds one message carries. */
export const VHOST_MEMORY_BASELINE_NREGIONS = 8;
export const VHOST_USER_MAX_FDS = 8;
/** VHOST_USER_MAX_CONFIG_SIZE. */
export const VHOST_USER_MAX_CONFIG_SIZE = 256;
/** The largest ring a split virtqueue may have (virtio spec: Queue Size ≤ 32768). */
export const VIRTQUEUE_MAX_SIZE = 32768;
/** SET_VRING_KICK/CALL/ERR payload: bits 7:0 ring index, bit 8 "no fd". */
export const VHOST_USER_VRING_IDX_MASK = 0xff;
export const VHOST_USER_VRING_NOFD_MASK = 0x100;

/** Virtio feature bit 30: the back end speaks GET/SET_PROTOCOL_FEATURES. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
/** Virtio feature bit 26: dirty-page logging (live migration). */
export const VHOST_F_LOG_ALL = 26;

/** Protocol feature bits (FACTS §10.2). */
export const VhostUserProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  NET_MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
  SHMEM: 20,
} as const;
export type VhostUserProtocolFeatureName = keyof typeof VhostUserProtocolFeature;

/** Virtio feature bits a net back end cares about (virtio spec §5.1.3, §6). */
export const VirtioFeature = {
  NET_F_CSUM: 0,
  NET_F_GUEST_CSUM: 1,
  NET_F_MTU: 3,
  NET_F_MAC: 5,
  NET_F_MRG_RXBUF: 15,
  NET_F_STATUS: 16,
  NET_F_CTRL_VQ: 17,
  NET_F_GUEST_ANNOUNCE: 21,
  NET_F_MQ: 22,
  F_NOTIFY_ON_EMPTY: 24,
  F_ANY_LAYOUT: 27,
  RING_F_INDIRECT_DESC: 28,
  RING_F_EVENT_IDX: 29,
  F_VERSION_1: 32,
  F_ACCESS_PLATFORM: 33,
  F_RING_PACKED: 34,
  F_IN_ORDER: 35,
} as const;

/** `1n << bit` for a feature mask. */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Device status bits (virtio spec §2.1). */
export const VirtioDeviceStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;
