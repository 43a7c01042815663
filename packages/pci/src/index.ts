export { PciErrorCode } from './errors.js';
export { CompositeRegion, type AccessSize, type MmioRegion } from './mmio-region.js';
export { MsiCapability, type MsiInit } from './msi.js';
export { MsixTable, type MsixInit, type MsixState, type MsixVectorNotifiers } from './msix.js';
export { PciBus, pciBdf, type PciAccess } from './pci-bus.js';
export { PCIE_CONFIG_SPACE_SIZE, PCI_CONFIG_SPACE_SIZE, PciConfigSpace } from './pci-config-space.js';
export { PciDevice, type BarMapListener, type ConfigWriteHook, type PciBar, type PciBarInit, type PciDeviceInit, type PciDeviceState } from './pci-device.js';
export { MsiCap, Msix, PciBarFlag, PciCapId, PciCommand, PciReg, PciStatus } from './pci-regs.js';
export type { PciTraceEvent, PciTraceKind } from './pci-trace.js';
