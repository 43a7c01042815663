import { type IrqPinProvider, type IrqRouting, type MsiSink, type SimContext, Tokens, type VcpuInterruptTarget, type VmInterruptApi } from '@virq/core';
import type { ArmHost } from './arm-host.js';
import { ArmVm, type ArmVmOptions } from './arm-vm.js';

/**
 * The part of a tsyringe `DependencyContainer` this package uses (structural, so the
 * package needs no runtime dependency on tsyringe; a real container fits).
 */
export interface InstanceRegistry {
  registerInstance<T>(token: symbol, instance: T): unknown;
}

function token(name: string): symbol {
  return Symbol.for(`virq.${name}`);
}

/** Tokens this package adds next to core's (same `Symbol.for` naming, so siblings can share them). */
export const ArmGicTokens = {
  /** The VM-fd interrupt ioctls (KVM_IRQFD, KVM_IOEVENTFD, KVM_SIGNAL_MSI, KVM_IRQ_LINE, KVM_SET_GSI_ROUTING). */
  VmInterruptApi: token('VmInterruptApi'),
  /** The ArmVm itself (forwarding entry points for the irqbypass consumer, vCPUs, exit counts). */
  ArmVm: token('arm-gic.ArmVm'),
  /** The host side (physical GIC, host ITS, host interrupt handlers). */
  ArmHost: token('arm-gic.ArmHost'),
} as const;

/**
 * Builds an `ArmVm` and registers what stands behind core's seams on an ARM machine:
 * `MsiSink` → the vITS (GITS_TRANSLATER), `IrqPins` → the SPIs (pin n = INTID 32 + n),
 * `IrqRouting` and `VmInterruptApi` → the vGIC's irqfd/routing layer,
 * `VcpuInterruptTargets` → the vCPUs, plus the VM and its host.
 */
export function registerArmGic(container: InstanceRegistry, ctx: SimContext, options: ArmVmOptions): ArmVm {
  const vm = new ArmVm(ctx, options);
  container.registerInstance<MsiSink>(Tokens.MsiSink as symbol, vm.msiSink);
  container.registerInstance<IrqPinProvider>(Tokens.IrqPins as symbol, vm.gic);
  container.registerInstance<IrqRouting>(Tokens.IrqRouting as symbol, vm.irqfd);
  container.registerInstance<readonly VcpuInterruptTarget[]>(Tokens.VcpuInterruptTargets as symbol, vm.vcpus);
  container.registerInstance<VmInterruptApi>(ArmGicTokens.VmInterruptApi, vm.interruptApi);
  container.registerInstance<ArmVm>(ArmGicTokens.ArmVm, vm);
  container.registerInstance<ArmHost>(ArmGicTokens.ArmHost, vm.host);
  return vm;
}
