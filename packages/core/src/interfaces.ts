import type { InjectionToken } from 'tsyringe';
import type { CostModel } from './cost.js';
import type { IrqPin } from './irq-line.js';
import type { GuestMemory } from './memory.js';
import type { MsiMessage, MsiSink } from './msi.js';
import type { Scheduler } from './scheduler.js';
import type { TraceBus } from './trace.js';
import type { VmInterruptApi } from './vm-interrupt-api.js';

/** An entry of the GSI routing table (`struct kvm_irq_routing_entry`). */
export type GsiRoute =
  | { readonly gsi: number; readonly type: 'irqchip'; readonly irqchip: number; readonly pin: number }
  | { readonly gsi: number; readonly type: 'msi'; readonly msi: MsiMessage };

/**
 * The GSI routing table that irqfds and KVM_IRQ_LINE use (KVM_SET_GSI_ROUTING semantics:
 * a whole new table replaces the old one). On ARM the same shape routes to SPIs and ITS.
 */
export interface IrqRouting {
  setGsiRouting(entries: readonly GsiRoute[]): void;
  /** The entries for one GSI (0, 1 or several: GSI 0–15 map to both PIC and IOAPIC on x86). */
  routesOf(gsi: number): readonly GsiRoute[];
  /** kvm_set_irq: drives `gsi` from `sourceId`; returns < 0 ignored, 0 coalesced, > 0 CPUs. */
  setIrq(gsi: number, level: boolean, sourceId: number): number;
}

/**
 * A vCPU's interrupt front end: the LAPIC (with its posted-interrupt descriptor) on x86, the
 * redistributor + virtual CPU interface on ARM. What a machine needs to know of any vCPU.
 */
export interface VcpuInterruptTarget {
  readonly vcpuId: number;
  readonly arch: 'x86' | 'arm64';
  /** Whether an interrupt is pending that the guest could take now. */
  hasPendingInterrupt(): boolean;
}

/** A wired-interrupt controller's pins by number (PIC/IOAPIC pins, GIC SPIs). */
export interface IrqPinProvider {
  pin(n: number): IrqPin;
}

function token<T>(name: string): InjectionToken<T> {
  return Symbol.for(`virq.${name}`) as InjectionToken<T>;
}

/** tsyringe tokens for the seams of ARCHITECTURE.md. A machine registers what stands behind each. */
export const Tokens = {
  Scheduler: token<Scheduler>('Scheduler'),
  CostModel: token<CostModel>('CostModel'),
  GuestMemory: token<GuestMemory>('GuestMemory'),
  TraceBus: token<TraceBus>('TraceBus'),
  MsiSink: token<MsiSink>('MsiSink'),
  IrqPins: token<IrqPinProvider>('IrqPins'),
  IrqRouting: token<IrqRouting>('IrqRouting'),
  VcpuInterruptTargets: token<readonly VcpuInterruptTarget[]>('VcpuInterruptTargets'),
  /** The VM's interrupt ioctls (x86 kvm-irqchip or ARM vGIC): what QEMU-side device wiring uses. */
  VmInterruptApi: token<VmInterruptApi>('VmInterruptApi'),
} as const;
