/**
 * Numbers of the virtio PCI transport and of the net/blk devices (FACTS §1.5, §1.6, §3;
 * Linux include/uapi/linux/virtio_{config,pci,net,blk}.h).
 */

/** Device status bits (FACTS §1.6). */
export const VirtioStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

/** Transport feature bit positions (FACTS §1.5). */
export const VirtioFeature = {
  NOTIFY_ON_EMPTY: 24,
  ANY_LAYOUT: 27,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  /** Reused by vhost-user as VHOST_USER_F_PROTOCOL_FEATURES; a guest must not set it. */
  BAD_FEATURE: 30,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  NOTIFICATION_DATA: 38,
  RING_RESET: 40,
} as const;

/** virtio_pci_cap cfg_type values (FACTS §3.2). */
export const VirtioPciCapType = {
  COMMON_CFG: 1,
  NOTIFY_CFG: 2,
  ISR_CFG: 3,
  DEVICE_CFG: 4,
  PCI_CFG: 5,
} as const;

/** struct virtio_pci_common_cfg offsets (FACTS §3.3). */
export const CommonCfg = {
  DFSELECT: 0,
  DF: 4,
  GFSELECT: 8,
  GF: 12,
  MSIX: 16,
  NUMQ: 18,
  STATUS: 20,
  CFGGENERATION: 21,
  Q_SELECT: 22,
  Q_SIZE: 24,
  Q_MSIX: 26,
  Q_ENABLE: 28,
  Q_NOFF: 30,
  Q_DESCLO: 32,
  Q_DESCHI: 36,
  Q_AVAILLO: 40,
  Q_AVAILHI: 44,
  Q_USEDLO: 48,
  Q_USEDHI: 52,
  Q_NDATA: 56,
  Q_RESET: 58,
  SIZE: 60,
} as const;

/** Legacy (transitional) I/O BAR 0 registers (FACTS §3.7). */
export const LegacyReg = {
  HOST_FEATURES: 0,
  GUEST_FEATURES: 4,
  QUEUE_PFN: 8,
  QUEUE_NUM: 12,
  QUEUE_SEL: 14,
  QUEUE_NOTIFY: 16,
  STATUS: 18,
  ISR: 19,
  MSI_CONFIG_VECTOR: 20,
  MSI_QUEUE_VECTOR: 22,
  /** Device config starts here without MSI-X, at 24 with MSI-X enabled. */
  CONFIG_NO_MSIX: 20,
  CONFIG_MSIX: 24,
  QUEUE_ADDR_SHIFT: 12,
  VRING_ALIGN: 4096,
} as const;

/** VIRTIO_MSI_NO_VECTOR. */
export const VIRTIO_NO_VECTOR = 0xffff;

/** ISR status bits (FACTS §3.5). */
export const VirtioIsr = {
  QUEUE: 1,
  CONFIG: 2,
} as const;

/** QEMU's VIRTIO_QUEUE_MAX. */
export const VIRTIO_QUEUE_MAX = 1024;

/** PCI identity (FACTS §3.1). */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
export const VirtioDeviceId = {
  NET: 1,
  BLOCK: 2,
} as const;

/** QEMU's modern memory BAR layout (FACTS §3.4): 4-KiB regions in BAR 4. */
export const ModernBarLayout = {
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  REGION_SIZE: 0x1000,
} as const;

/** virtio-net feature bits. */
export const VirtioNetFeature = {
  CSUM: 0,
  GUEST_CSUM: 1,
  CTRL_GUEST_OFFLOADS: 2,
  MTU: 3,
  MAC: 5,
  GUEST_TSO4: 7,
  HOST_TSO4: 11,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  CTRL_RX_EXTRA: 20,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
} as const;

/** virtio-net control classes and commands (F2). */
export const VirtioNetCtrl = {
  OK: 0,
  ERR: 1,
  CLASS_RX: 0,
  RX_PROMISC: 0,
  RX_ALLMULTI: 1,
  RX_ALLUNI: 2,
  RX_NOMULTI: 3,
  RX_NOUNI: 4,
  RX_NOBCAST: 5,
  CLASS_MAC: 1,
  MAC_TABLE_SET: 0,
  MAC_ADDR_SET: 1,
  CLASS_VLAN: 2,
  CLASS_ANNOUNCE: 3,
  CLASS_MQ: 4,
  MQ_VQ_PAIRS_SET: 0,
  MQ_VQ_PAIRS_MIN: 1,
  MQ_VQ_PAIRS_MAX: 0x8000,
} as const;

/** struct virtio_net_hdr: 10 bytes, 12 with num_buffers (MRG_RXBUF or VERSION_1). */
export const VirtioNetHdr = {
  FLAGS: 0,
  GSO_TYPE: 1,
  HDR_LEN: 2,
  GSO_SIZE: 4,
  CSUM_START: 6,
  CSUM_OFFSET: 8,
  NUM_BUFFERS: 10,
  SIZE: 10,
  SIZE_MRG: 12,
} as const;

/** virtio-blk feature bits, request types and status values. */
export const VirtioBlk = {
  F_SIZE_MAX: 1,
  F_SEG_MAX: 2,
  F_RO: 5,
  F_BLK_SIZE: 6,
  F_FLUSH: 9,
  F_MQ: 12,
  T_IN: 0,
  T_OUT: 1,
  T_FLUSH: 4,
  T_GET_ID: 8,
  S_OK: 0,
  S_IOERR: 1,
  S_UNSUPP: 2,
  SECTOR_SIZE: 512,
  ID_BYTES: 20,
  /** struct virtio_blk_outhdr: type u32, ioprio u32, sector u64. */
  OUTHDR_SIZE: 16,
} as const;

export function bit(n: number): bigint {
  return 1n << BigInt(n);
}
