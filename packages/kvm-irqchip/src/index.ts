export { KvmErrorCode } from './errors.js';
export { KvmVm, KVM_VM_SNAPSHOT_TYPE, KVM_VM_SNAPSHOT_VERSION, type KvmVmOptions, type KvmIrqchipStateJson, type KvmVmSnapshotState, type UserspaceExit } from './vm.js';
export type { ExitReason } from './vmx-exit-counts.js';
export { KvmVcpu, MP_STATE, MP_STATE_NAMES, type VcpuMode, type VcpuSchedHooks, type VcpuEventsJson, type KvmUserspaceExitReason, type VcpuUserspaceLoop } from './vcpu.js';
export { IdleGuest, type GuestModel, type GuestOp } from './guest-model.js';
export { KvmLapic, type LapicStateJson } from './lapic.js';
export { KvmLapicTimer, MSR_IA32_TSC_DEADLINE, type LapicTimerOwner } from './lapic-timer.js';
export { APIC, APIC_DEFAULT_PHYS_BASE, DM, SHORTHAND } from './lapic-registers.js';
export type { LapicIrq, DestMap } from './lapic-irq.js';
export { ApicMap, type ApicLogicalMode } from './apic-map.js';
export { KvmIoapic, IOAPIC_NUM_PINS, IOAPIC_DEFAULT_BASE_ADDRESS, RTC_GSI, encodeRedirEntry, type IoapicStateJson, type RedirEntryJson } from './ioapic.js';
export { KvmPic, PIC_FIELDS, type PicStateJson, type PicStateRaw } from './i8259.js';
export {
  IrqRoutingTable, KVM_MAX_IRQ_ROUTES, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC, toGsiRoute,
  type KvmRoutingEntry, type KernelRoute,
} from './irq-routing.js';
export {
  KvmIrqfd, IrqfdResampler, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_USERSPACE_IRQ_SOURCE_ID, KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID,
  type KvmIrqfdView, type IrqfdBypassHooks, type IrqAckNotifier, type KvmIrqfdArgs,
} from './irqfd.js';
export { KvmIoBus, kvmIoBusCmp, type KvmIoDevice, type KvmIoRange } from './kvm-io-bus.js';
export { KvmPit, KVM_MIN_TIMER_PERIOD_US, KVM_PIT_BASE_ADDRESS, KVM_PIT_FREQ, KVM_PIT_IRQ_SOURCE_ID, KVM_PIT_MEM_LENGTH, type KvmPitOptions } from './kvm-pit.js';
export { IoeventfdBus, KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_PIO, KVM_IOEVENTFD_FLAG_DEASSIGN, type KvmIoeventfdArgs, type Ioeventfd } from './ioeventfd.js';
export { msiToLapicIrq } from './x86-msi.js';
export {
  GoldenReplayer, replayGoldenScenario, replayGoldenFile, runGoldenCli, firstDifference,
  type GoldenScenario, type GoldenStep, type GoldenScenarioResult,
} from './golden-replay.js';
export { QemuIrq } from './qemu-irq.js';
export { PcGsi, QemuPic, QemuPit, HpetLegacy, ISA_NUM_IRQS } from './userspace-irqchip.js';
export { registerKvmIrqchip, registerQemuUserspaceIrqchip, KvmIrqchipTokens, type InstanceRegistry } from './register.js';
export { QemuApic, QemuApicBus, CPU_INTERRUPT_HARD, CPU_INTERRUPT_POLL, APIC_SV_ENABLE, QEMU_APIC_DEFAULT_ADDRESS, QEMU_APIC_SPACE_SIZE, type QemuApicCpu } from './qemu-apic.js';
export { QemuIoapic, QEMU_IOAPIC_BASE, QEMU_IOAPIC_NUM_PINS } from './qemu-ioapic.js';
export { QemuKvmCpu } from './qemu-kvm-vcpu-loop.js';
export { QemuPcIrqchip } from './qemu-pc-irqchip.js';
