import type { EventFd } from '@virq/core';

/** VFIO_DEVICE_SET_IRQS = _IO(';', 100 + 10) (include/uapi/linux/vfio.h). */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;
export const VFIO_DEVICE_GET_IRQ_INFO = (VFIO_TYPE << 8) | (VFIO_BASE + 9);
export const VFIO_DEVICE_SET_IRQS = (VFIO_TYPE << 8) | (VFIO_BASE + 10);

/** `vfio_irq_set.flags`: exactly one DATA_* and one ACTION_*. */
export const VfioIrqSetFlag = {
  DATA_NONE: 1 << 0,
  DATA_BOOL: 1 << 1,
  DATA_EVENTFD: 1 << 2,
  ACTION_MASK: 1 << 3,
  ACTION_UNMASK: 1 << 4,
  ACTION_TRIGGER: 1 << 5,
} as const;
export const VFIO_IRQ_SET_DATA_TYPE_MASK = 0x7;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK = 0x38;

/** `vfio_irq_info.flags`. */
export const VfioIrqInfoFlag = {
  EVENTFD: 1 << 0,
  MASKABLE: 1 << 1,
  AUTOMASKED: 1 << 2,
  NORESIZE: 1 << 3,
} as const;

/** vfio-pci IRQ indexes. */
export const VfioPciIrqIndex = {
  INTX: 0,
  MSI: 1,
  MSIX: 2,
  ERR: 3,
  REQ: 4,
} as const;
export type VfioPciIrqIndex = (typeof VfioPciIrqIndex)[keyof typeof VfioPciIrqIndex];
export const VFIO_PCI_NUM_IRQS = 5;

/**
 * `struct vfio_irq_set` with its data: per sub-index an EventFd (or -1 / null to unassign)
 * for DATA_EVENTFD, a boolean for DATA_BOOL, nothing for DATA_NONE.
 */
export interface VfioIrqSet {
  readonly flags: number;
  readonly index: number;
  readonly start: number;
  readonly count: number;
  readonly data?: readonly (EventFd | null)[] | readonly boolean[];
}

/** `struct vfio_irq_info`. */
export interface VfioIrqInfo {
  readonly index: number;
  readonly flags: number;
  readonly count: number;
}
