import type { VhostOps } from '@virq/virtio-pci';
export { VhostKernelNetOps, VhostUserNetOps, bit } from '@virq/vhost-user';
/** The seam type our adapters implement. */
export type VhostOpsLike = VhostOps;
