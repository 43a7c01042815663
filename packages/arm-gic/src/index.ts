export { ActivePriorities } from './active-priorities.js';
export { KvmArchTimer } from './arch-timer.js';
export { ArmHost, type ArmHostOptions, type HostIrqHandler, type HostIrqResult, type PhysicalIrqSink } from './arm-host.js';
export { ARM_EXIT_EC, ArmVcpu, type ArmExitReason, type ArmGuestBehaviour, type ArmVcpuHost, type ArmVcpuLoadPutListener, type ArmVcpuState, type GuestMmioAccess } from './arm-vcpu.js';
export { ArmVm, VIRT_GIC_LAYOUT, type ArmVgicLayout, type ArmVmOptions } from './arm-vm.js';
export { GicCpuInterface } from './cpu-interface.js';
export { GicDistributor } from './distributor.js';
export { GicErrorCode, GicGuestFault } from './errors.js';
export { Gicv3, type GicDelivery, type GicVersion, type Gicv3Options } from './gic.js';
export { GicIrq, type IrqTrigger } from './gic-irq.js';
export { GUEST_DEFAULT_PRIORITY, GuestGicDriver } from './guest-gic-driver.js';
export { ItsCommand, ItsCommandWords, ItsError, ItsOpcode, itsErrorName, itsOpcodeName, type ItsErrorName, type ItsOpcodeName } from './its-command.js';
export { ItsDriver, type ItsDriverLayout } from './its-driver.js';
export { Its, type Ite, type ItsDevice, type ItsFlavor, type ItsForwardingHooks, type ItsOptions, type TranslateResult } from './its.js';
export { GicRedistributor } from './redistributor.js';
export { ArmGicTokens, registerArmGic, type InstanceRegistry } from './register.js';
export * from './registers.js';
export { Vgic, VgicCpu } from './vgic.js';
export {
  KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_TYPE_PPI, KVM_ARM_IRQ_TYPE_SPI, KVM_IRQCHIP_NUM_PINS, KVM_MAX_IRQ_ROUTES, VgicIrqfd, armIrqLine,
  type ArmIrqfdBypassHooks, type ArmIrqfdView,
} from './vgic-irqfd.js';
export { VgicV4 } from './vgic-v4.js';
export {
  LR_ACTIVE, LR_INVALID, LR_PENDING, LR_PENDING_ACTIVE, VirtualCpuInterface, decodeListRegister, encodeListRegister, type ListRegister,
} from './virtual-cpu-interface.js';
export { Vpe, type VlpiOutcome, type VpeListener } from './vpe.js';
