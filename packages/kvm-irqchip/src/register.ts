import { Tokens, type IrqPinProvider, type IrqRouting, type MsiSink, type SimContext, type VcpuInterruptTarget, type VmInterruptApi } from '@virq/core';
import { QemuPcIrqchip } from './qemu-pc-irqchip.js';
import { KvmVm, type KvmVmOptions } from './vm.js';

/**
 * The part of a tsyringe `DependencyContainer` this package uses (structural: no runtime
 * dependency on tsyringe; a real container fits).
 */
export interface InstanceRegistry {
  registerInstance<T>(token: symbol, instance: T): unknown;
}

function token(name: string): symbol {
  return Symbol.for(`virq.${name}`);
}

/** Tokens this package adds next to core's (`Symbol.for('virq.…')`, shared with siblings). */
export const KvmIrqchipTokens = {
  /** The VM-fd interrupt ioctls (same token as @virq/arm-gic registers on ARM machines). */
  VmInterruptApi: token('VmInterruptApi'),
  /** The KvmVm itself (vCPUs, chips, hooks for @virq/irqbypass, exit counts). */
  KvmVm: token('kvm-irqchip.KvmVm'),
  /** QEMU's userspace irqchip of a `kernel-irqchip=off` VM (registerQemuUserspaceIrqchip). */
  QemuPcIrqchip: token('kvm-irqchip.QemuPcIrqchip'),
} as const;

/**
 * Builds a `KvmVm` and registers what stands behind core's seams on an x86 machine:
 * `MsiSink` → the LAPIC bus (kvm_set_msi → kvm_irq_delivery_to_apic), `IrqPins` → the GSIs
 * (through the routing table to PIC/IOAPIC pins), `IrqRouting` → KVM_SET_GSI_ROUTING's table,
 * `VcpuInterruptTargets` → the vCPUs, plus the `VmInterruptApi` and the VM.
 */
export function registerKvmIrqchip(container: InstanceRegistry, ctx: SimContext, options: KvmVmOptions): KvmVm {
  const vm = new KvmVm(ctx, options);
  container.registerInstance<MsiSink>(Tokens.MsiSink as symbol, vm);
  container.registerInstance<IrqPinProvider>(Tokens.IrqPins as symbol, vm);
  container.registerInstance<IrqRouting>(Tokens.IrqRouting as symbol, vm);
  container.registerInstance<readonly VcpuInterruptTarget[]>(Tokens.VcpuInterruptTargets as symbol, vm.vcpus());
  container.registerInstance<VmInterruptApi>(KvmIrqchipTokens.VmInterruptApi, vm);
  container.registerInstance<KvmVm>(KvmIrqchipTokens.KvmVm, vm);
  return vm;
}

/**
 * For a VM built with `irqchip: false` (QEMU's `kernel-irqchip=off`): builds QEMU's userspace
 * 8259/IOAPIC/APICs around it and registers them behind the seams in place of KVM's:
 * `MsiSink` → the "apic-msi" region (apic_send_msi), `IrqPins` → gsi_handler's GSIs.
 * `IrqRouting` and `VmInterruptApi` stay the VM's (no routing, no irqfd: it says so).
 */
export function registerQemuUserspaceIrqchip(container: InstanceRegistry, ctx: SimContext, vm: KvmVm): QemuPcIrqchip {
  const q = new QemuPcIrqchip(ctx, vm);
  container.registerInstance<MsiSink>(Tokens.MsiSink as symbol, q);
  container.registerInstance<IrqPinProvider>(Tokens.IrqPins as symbol, q);
  container.registerInstance<QemuPcIrqchip>(KvmIrqchipTokens.QemuPcIrqchip, q);
  return q;
}
