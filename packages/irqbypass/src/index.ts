export { AssignedPciDevice, type AssignedDeviceInit, type AssignedDeviceSink } from './assigned-device.js';
export { IrqBypassErrorCode } from './errors.js';
export { HostCpus, type HostCpusOptions, type HostVectorHandler, type PostedInterruptProcessor } from './host-cpus.js';
export { HostIrqDomain, type IrqHandler } from './host-irq.js';
export { IntelInterruptRemapper, type IntelIrEntryState, type IntelIrState, type PiDescriptorResolver } from './intel-ir.js';
export type { InterruptRemapper, VcpuAffinityInfo } from './interrupt-remapper.js';
export {
  IrqBypassManager,
  type IrqBypassConsumer,
  type IrqBypassProducer,
  type IrqBypassToken,
  type IrqBypassTraceEvent,
} from './irq-bypass-manager.js';
export { KvmIrqBypass, type IrteDecision } from './kvm-irq-bypass.js';
export type { IrqfdBypassHooks, KvmIrqfdView, KvmPiPort, PiVcpu, VcpuMode, VcpuSchedHooks } from './kvm-port.js';
export {
  PI_DESC_SIZE,
  PID_CONTROL_OFFSET,
  PID_NDST_SHIFT,
  PID_NV_SHIFT,
  PID_ON_BIT,
  PID_SN_BIT,
  POSTED_INTR_NESTED_VECTOR,
  POSTED_INTR_VECTOR,
  POSTED_INTR_WAKEUP_VECTOR,
  PiDescriptor,
  piNdst,
  type PiDescriptorState,
} from './pi-descriptor.js';
export type { IrqPostingBackend } from './posting-backend.js';
export { QemuVfioPci, type QemuVfioPciInit, type VfioMsiVectorState } from './qemu-vfio-pci.js';
export type { IrqBypassPkgTraceEvent, IrqBypassPkgTraceKind } from './trace-events.js';
export { VfioPciCore, type VfioIrqType, type VfioPciCoreOptions } from './vfio-pci-core.js';
export {
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_NUM_IRQS,
  VfioIrqInfoFlag,
  VfioIrqSetFlag,
  VfioPciIrqIndex,
  type VfioIrqInfo,
  type VfioIrqSet,
} from './vfio-uapi.js';
export { VmxPostedInterrupts, type VmxPiCounters, type VmxPiState, type VmxPostedInterruptsOptions } from './vmx-posted-intr.js';
export { decodeIrte, encodeIrte, formatIrte, irteToBigInt, type Irte, type IrteWords, type PostedIrte, type RemappedIrte } from './vtd-irte.js';
export { decodeX86Msi, isLowestPriority, isPostableDeliveryMode, x86MsiFixed, type X86MsiIrq } from './x86-msi.js';
export { IrqBypassHost, type IrqBypassHostOptions } from './irq-bypass-host.js';
export { AMD_IOMMU_INT_VECTOR, AmdIommuGaRemapper, AvicPostedInterrupts, avicGaTag, type AmdIrte, type AvicPhysIdEntry } from './avic.js';
export { IrqBypassTokens, registerIrqBypass, type IrqBypassDiToken, type ValueRegistry } from './register.js';
