/**
 * PCI configuration-space register offsets and bits (include/uapi/linux/pci_regs.h). Only
 * the ones this package models are listed.
 */
export const PciReg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CLASS_DEVICE: 0x0a,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BASE_ADDRESS_0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/** PCI_COMMAND bits. */
export const PciCommand = {
  IO: 0x1,
  MEMORY: 0x2,
  MASTER: 0x4,
  SERR: 0x100,
  INTX_DISABLE: 0x400,
} as const;

/** PCI_STATUS bits. */
export const PciStatus = {
  /** Interrupt status: the function asserts INTx (read-only mirror). */
  INTERRUPT: 0x8,
  /** Capabilities list present (PCI_STATUS_CAP_LIST). */
  CAP_LIST: 0x10,
} as const;

/** Capability IDs (PCI_CAP_ID_*). */
export const PciCapId = {
  PM: 0x01,
  MSI: 0x05,
  VNDR: 0x09,
  EXP: 0x10,
  MSIX: 0x11,
} as const;

/** BAR register low bits (PCI_BASE_ADDRESS_*). */
export const PciBarFlag = {
  SPACE_IO: 0x1,
  MEM_TYPE_64: 0x4,
  MEM_PREFETCH: 0x8,
} as const;

/** MSI-X capability layout (FACTS §4.1; pci_regs.h PCI_MSIX_*). */
export const Msix = {
  /** Message Control (16-bit) at cap + 2. */
  FLAGS: 2,
  /** The byte of Message Control holding Enable and Function Mask (QEMU's MSIX_CONTROL_OFFSET). */
  CONTROL_OFFSET: 3,
  TABLE: 4,
  PBA: 8,
  CAP_SIZE: 12,
  FLAGS_QSIZE: 0x07ff,
  FLAGS_MASKALL: 0x4000,
  FLAGS_ENABLE: 0x8000,
  /** The same two bits seen in the byte at CONTROL_OFFSET. */
  ENABLE_MASK: 0x80,
  MASKALL_MASK: 0x40,
  BIR_MASK: 0x7,
  ENTRY_SIZE: 16,
  ENTRY_LOWER_ADDR: 0,
  ENTRY_UPPER_ADDR: 4,
  ENTRY_DATA: 8,
  ENTRY_VECTOR_CTRL: 12,
  ENTRY_CTRL_MASKBIT: 0x1,
  MAX_VECTORS: 2048,
} as const;

/** MSI capability layout (pci_regs.h PCI_MSI_*). */
export const MsiCap = {
  FLAGS: 2,
  FLAGS_ENABLE: 0x0001,
  FLAGS_QMASK: 0x000e,
  FLAGS_QSIZE: 0x0070,
  FLAGS_64BIT: 0x0080,
  FLAGS_MASKBIT: 0x0100,
  ADDRESS_LO: 4,
  ADDRESS_HI: 8,
  DATA_32: 8,
  DATA_64: 12,
  MASK_32: 12,
  MASK_64: 16,
  PENDING_32: 16,
  PENDING_64: 20,
} as const;
