export { VirtioPciErrorCode } from './errors.js';
export {
  CommonCfg,
  LegacyReg,
  ModernBarLayout,
  VIRTIO_NO_VECTOR,
  VIRTIO_PCI_VENDOR_ID,
  VIRTIO_QUEUE_MAX,
  VirtioBlk,
  VirtioDeviceId,
  VirtioFeature,
  VirtioIsr,
  VirtioNetCtrl,
  VirtioNetFeature,
  VirtioNetHdr,
  VirtioPciCapType,
  VirtioStatus,
  bit,
} from './virtio-constants.js';
export type { VirtioTraceEvent, VirtioTraceKind } from './virtio-trace.js';
export { VirtQueue, type HandleOutput } from './virtqueue.js';
export { VirtioDevice, type VirtQueueState, type VirtioBusTransport, type VirtioDeviceInit, type VirtioDeviceState } from './virtio-device.js';
export { VirtioPciProxy, type VirtioPciProxyInit, type VirtioPciProxyState } from './virtio-pci-proxy.js';
export type { VhostOps, VhostVringAddr } from './vhost-ops.js';
export { VhostDev } from './vhost-dev.js';
export { VirtioNet, type NetBackend, type NetPeer, type NetRxFilter, type NoIrqfdPolicy, type VirtioNetInit } from './virtio-net.js';
export { VirtioBlkDevice, type VirtioBlkInit } from './virtio-blk.js';
export { GuestPageAllocator } from './guest-page-allocator.js';
export { assignBars, type BarWindow } from './pci-firmware.js';
export { GuestVirtioPci, type GuestIrqMode, type GuestVirtioPciInit, type GuestVqInfo } from './guest-virtio-pci.js';
export { GuestVirtioNet, type CtrlCommand, type GuestVirtioNetInit } from './guest-virtio-net.js';
export { GuestVirtioBlk, type BlkCompletion, type BlkRequest } from './guest-virtio-blk.js';
export { BlkIoWorkload, NetRxGenerator, NetTxWorkload, ethernetFrame, type BlkIoWorkloadInit, type NetRxGeneratorInit, type NetTxWorkloadInit } from './workloads.js';
