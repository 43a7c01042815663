import type { CostModel, Scheduler, Actor, VirqError } from '@virq/core';
import type { LapicBus } from './lapic.js';
import type { KvmVcpu, VcpuSchedHooks } from './vcpu.js';

/** What a vCPU needs of its VM (implemented by KvmVm). */
export interface VcpuHost {
  readonly scheduler: Scheduler;
  readonly costs: CostModel;
  readonly lapicBus: LapicBus;
  readonly irqchipInKernel: boolean;
  readonly smmSupported: boolean;
  readonly apicvActive: boolean;
  readonly cpuid: { readonly x2apic: boolean; readonly tscDeadline: boolean; readonly maxPhysAddr: number };
  readonly tracing: boolean;
  readonly schedHooks: VcpuSchedHooks | undefined;
  readonly pirSync: ((vcpuId: number, caller: string) => void) | undefined;
  trace(fn: string, caller: string | undefined, args: Readonly<Record<string, number | string | boolean>>, durNs?: number, actor?: Actor): void;
  deliverPosted(vcpu: KvmVcpu, vector: number): void;
  picHasInterrupt(): boolean;
  picReadIrq(): number;
  ioapicHandlesEoi(vcpu: KvmVcpu): boolean;
  /** KVM_REQ_SCAN_IOAPIC processing at vcpu_enter_guest (vcpu_scan_ioapic). */
  scanIoapicOnEntry(vcpu: KvmVcpu): void;
  /** A guest port access: handled in the kernel (ioeventfd, PIC) or exits to userspace. */
  /** `applied`: the access already reached its (userspace) device; only the exit remains. */
  guestPio(vcpu: KvmVcpu, write: boolean, port: number, len: number, value: number, applied?: boolean): { value: number; toUserspace: boolean };
  guestMmio(vcpu: KvmVcpu, write: boolean, addr: number, len: number, value: number, applied?: boolean): { value: number; toUserspace: boolean };
  /** A len-0 MMIO ioeventfd covers `addr` (KVM_FAST_MMIO_BUS: no instruction decode). */
  fastMmioMatch(addr: number): boolean;
  guestActor(vcpu: KvmVcpu): Actor;
  noGuestError(vcpuId: number): VirqError;
}
