import { VirqError, type Actor, type SimContext, type TraceChannel } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';
import type { HostCpus } from './host-cpus.js';
import type { InterruptRemapper, VcpuAffinityInfo } from './interrupt-remapper.js';
import type { KvmPiPort, PiVcpu } from './kvm-port.js';
import type { IrqPostingBackend } from './posting-backend.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';

/** Host vector of the AMD IOMMU's own interrupt (event / PPR / GA log). A model choice. */
export const AMD_IOMMU_INT_VECTOR = 0xee;

/** An entry of the AVIC physical APIC ID table (one per vCPU). */
export interface AvicPhysIdEntry {
  /** Host physical APIC id of the CPU the vCPU last ran on. */
  hostApicId: number;
  isRunning: boolean;
  valid: boolean;
}

/** AMD IOMMU interrupt-remapping entry, legacy (remapped) or guest virtual APIC (GA) mode. */
export type AmdIrte =
  | { readonly mode: 'remapped'; readonly vector: number; readonly destApicId: number }
  | { readonly mode: 'guest'; readonly vector: number; readonly destApicId: number; readonly isRun: boolean; readonly gaTag: number; readonly vcpuId: number; readonly gaLogIntr: boolean };

/** The GA tag KVM stores in an IRTE: VM id and vCPU id (AVIC_GATAG). */
export function avicGaTag(vmId: number, vcpuId: number): number {
  return ((vmId & 0xffffff) << 8) | (vcpuId & 0xff);
}

/**
 * AMD-Vi interrupt remapping with GA mode (drivers/iommu/amd/iommu.c): remapped entries send
 * the host vector; GA entries set the guest vector's IRR bit in the vCPU's vAPIC backing page
 * and, if IsRun, ring the AVIC doorbell of the destination CPU (the guest takes it with no
 * exit); if not running, write a GA log entry and raise the IOMMU interrupt so KVM's
 * `avic_ga_log_notifier` wakes the vCPU.
 */
export class AmdIommuGaRemapper implements InterruptRemapper {
  readonly kind = 'amd-vi' as const;
  private readonly table = new Map<number, AmdIrte>();
  private readonly hostEntry = new Map<number, AmdIrte>();
  /** GA log: tags not yet consumed by the notifier. */
  readonly gaLog: number[] = [];
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  remapped = 0;
  posted = 0;
  doorbells = 0;
  gaLogEntries = 0;
  private avic: AvicPostedInterrupts | undefined;

  constructor(
    private readonly ctx: SimContext,
    private readonly cpus: HostCpus,
  ) {
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('iommu');
  }

  /** Wires the AVIC side (backing pages and the GA-log notifier). */
  bind(avic: AvicPostedInterrupts): void {
    this.avic = avic;
  }

  setRemapped(index: number, hostVector: number, hostApicId: number): void {
    const e: AmdIrte = { mode: 'remapped', vector: hostVector, destApicId: hostApicId };
    this.hostEntry.set(index, e);
    this.table.set(index, e);
    if (this.trace.on) this.trace.emit('iommu.irte_write', 'modify_irte_ga', 'irq_remapping_alloc', { index, mode: 'remapped', vector: hostVector });
  }

  clear(index: number): void {
    this.table.delete(index);
    this.hostEntry.delete(index);
  }

  /** amd_ir_set_vcpu_affinity. */
  setVcpuAffinity(index: number, info: VcpuAffinityInfo | null): void {
    const host = this.hostEntry.get(index);
    if (host === undefined) throw new VirqError(IrqBypassErrorCode.IrteInvalid, `AMD IRTE ${index} is not allocated`, { errno: 'EINVAL' });
    if (info === null) {
      this.table.set(index, host);
      if (this.trace.on) this.trace.emit('iommu.irte_write', 'amd_iommu_deactivate_guest_mode', 'amd_ir_set_vcpu_affinity', { index });
      return;
    }
    if (info.kind !== 'avic') {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, 'an AMD IOMMU cannot take Intel posted-interrupt descriptors; configure the VMX consumer with the Intel IOMMU', { errno: 'EINVAL' });
    }
    this.table.set(index, { mode: 'guest', vector: info.vector, destApicId: info.hostApicId, isRun: info.isRunning, gaTag: info.gaTag, vcpuId: info.vcpuId, gaLogIntr: true });
    if (this.trace.on) this.trace.emit('iommu.irte_write', 'amd_iommu_activate_guest_mode', 'amd_ir_set_vcpu_affinity', { index, vcpu: info.vcpuId, vector: info.vector, is_run: info.isRunning });
  }

  /** amd_iommu_update_ga: new destination / IsRun for a GA-mode entry (vCPU load/put). */
  updateGa(index: number, hostApicId: number, isRun: boolean): void {
    const e = this.table.get(index);
    if (e === undefined || e.mode !== 'guest') return;
    this.table.set(index, { ...e, destApicId: hostApicId, isRun });
  }

  handleMsi(index: number): void {
    const e = this.table.get(index);
    if (e === undefined) {
      if (this.trace.on) this.trace.emit('iommu.fault', 'hw:amdvi_irte_fault', undefined, { index, reason: 'irte-not-present' });
      return;
    }
    if (e.mode === 'remapped') {
      this.remapped++;
      if (this.trace.on) this.trace.emit('iommu.remap', 'hw:amdvi_remap_interrupt', undefined, { index, vector: e.vector });
      this.cpus.raise(this.cpus.cpuOfApicId(e.destApicId), e.vector, this.ctx.costs.ns.hostIpi);
      return;
    }
    this.posted++;
    const avic = this.avic;
    if (avic === undefined) throw new VirqError(IrqBypassErrorCode.ConfigInvalid, 'AMD IOMMU GA mode used without an AVIC model bound');
    avic.setBackingPageIrr(e.vcpuId, e.vector);
    if (this.trace.on) this.trace.emit('iommu.post', 'hw:amdvi_ga_interrupt', undefined, { index, vcpu: e.vcpuId, vector: e.vector, is_run: e.isRun });
    if (e.isRun) {
      this.doorbells++;
      avic.doorbell(this.cpus.cpuOfApicId(e.destApicId));
      return;
    }
    this.gaLogEntries++;
    this.gaLog.push(e.gaTag);
    if (this.trace.on) this.trace.emit('iommu.ga_log', 'hw:amdvi_ga_log_write', undefined, { ga_tag: e.gaTag });
    this.cpus.raise(0, AMD_IOMMU_INT_VECTOR, this.ctx.costs.ns.hostIpi);
  }

  modeOf(index: number): 'remapped' | 'posted' | 'absent' {
    const e = this.table.get(index);
    return e === undefined ? 'absent' : e.mode === 'guest' ? 'posted' : 'remapped';
  }

  postedTarget(index: number): { vcpuId: number; vector: number } | undefined {
    const e = this.table.get(index);
    return e?.mode === 'guest' ? { vcpuId: e.vcpuId, vector: e.vector } : undefined;
  }

  entry(index: number): AmdIrte | undefined {
    return this.table.get(index);
  }
}

/**
 * AVIC, the KVM side (arch/x86/kvm/svm/avic.c): the physical APIC ID table (IsRunning, host
 * APIC id per vCPU), each vCPU's backing-page IRR, `avic_vcpu_load`/`avic_vcpu_put` keeping
 * IsRunning and every attached IRTE's IsRun/destination in step
 * (`avic_update_iommu_vcpu_affinity`), `avic_ga_log_notifier`, and `avic_pi_update_irte` as
 * the alternative to `vmx_pi_update_irte` (same postability rules). KVM-originated
 * interrupts use the doorbell (`avic_deliver_interrupt`).
 */
export class AvicPostedInterrupts implements IrqPostingBackend {
  readonly vendor = 'avic' as const;
  readonly updateIrteFn = 'avic_pi_update_irte';
  private readonly physIdTable = new Map<number, AvicPhysIdEntry>();
  private readonly backingIrr = new Map<number, Set<number>>();
  /** svm->ir_list: IRTE indexes attached to each vCPU. */
  private readonly irList = new Map<number, Set<number>>();
  private readonly irteOwner = new Map<number, number>();
  assignedDevices = 0;
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  readonly counters = { processedInGuest: 0, syncedOnEntry: 0, gaLogWakeups: 0, kvmDoorbells: 0 };

  constructor(
    private readonly ctx: SimContext,
    private readonly cpus: HostCpus,
    private readonly kvm: KvmPiPort,
    private readonly iommu: AmdIommuGaRemapper,
    readonly vmId = 1,
  ) {
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('avic');
    iommu.bind(this);
    cpus.registerDeviceVector(AMD_IOMMU_INT_VECTOR, 'amd_iommu_int_handler', (_c, _v, on) => this.gaLogNotifier(on));
  }

  attach(): void {
    this.kvm.setVcpuSchedHooks({
      vcpuLoad: (v, cpu) => this.vcpuLoad(v, cpu),
      vcpuPut: (v) => this.vcpuPut(v),
    });
    this.kvm.setPostedInterruptDelivery((id, vector) => this.deliverInterrupt(id, vector), 'svm_complete_interrupt_delivery', 'svm_deliver_interrupt');
    this.kvm.setPirSync((id) => this.syncOnEntry(id));
  }

  detach(): void {
    this.kvm.setVcpuSchedHooks(undefined);
    this.kvm.setPostedInterruptDelivery(undefined);
    this.kvm.setPirSync(undefined);
  }

  physIdEntry(vcpuId: number): AvicPhysIdEntry {
    let e = this.physIdTable.get(vcpuId);
    if (e === undefined) {
      e = { hostApicId: 0, isRunning: false, valid: true };
      this.physIdTable.set(vcpuId, e);
    }
    return e;
  }

  canPost(): boolean {
    return this.kvm.apicvActive && this.assignedDevices > 0;
  }

  startAssignment(): void {
    this.assignedDevices++;
  }

  endAssignment(): void {
    if (this.assignedDevices > 0) this.assignedDevices--;
  }

  postingInfo(vcpuId: number, vector: number): VcpuAffinityInfo {
    const e = this.physIdEntry(vcpuId);
    return { kind: 'avic', gaTag: avicGaTag(this.vmId, vcpuId), vector, vcpuId, hostApicId: e.hostApicId, isRunning: e.isRunning };
  }

  /** svm_ir_list_add / svm_ir_list_del. */
  irteTargetChanged(_hostIrq: number, index: number, vcpuId: number | undefined): void {
    const prev = this.irteOwner.get(index);
    if (prev !== undefined) this.irList.get(prev)?.delete(index);
    this.irteOwner.delete(index);
    if (vcpuId === undefined) return;
    let s = this.irList.get(vcpuId);
    if (s === undefined) {
      s = new Set();
      this.irList.set(vcpuId, s);
    }
    s.add(index);
    this.irteOwner.set(index, vcpuId);
  }

  /** avic_vcpu_load. */
  vcpuLoad(vcpu: PiVcpu, cpu: number): void {
    this.cpus.setLoaded(cpu, vcpu);
    if (!this.kvm.apicvActive) return;
    const e = this.physIdEntry(vcpu.vcpuId);
    e.hostApicId = this.cpus.apicId(cpu);
    e.isRunning = true;
    this.updateIommuAffinity(vcpu.vcpuId, e);
    if (this.trace.on) this.trace.emit('avic.is_running', 'avic_vcpu_load', 'svm_vcpu_load', { vcpu: vcpu.vcpuId, cpu, is_running: true }, undefined, vcpu.actor);
  }

  /** avic_vcpu_put (also used when blocking). */
  vcpuPut(vcpu: PiVcpu): void {
    const cpu = vcpu.hostCpu;
    if (cpu >= 0 && cpu < this.cpus.count && this.cpus.loadedVcpu(cpu) === vcpu) this.cpus.setLoaded(cpu, undefined);
    if (!this.kvm.apicvActive) return;
    const e = this.physIdEntry(vcpu.vcpuId);
    e.isRunning = false;
    this.updateIommuAffinity(vcpu.vcpuId, e);
    if (this.trace.on) this.trace.emit('avic.is_running', 'avic_vcpu_put', 'svm_vcpu_put', { vcpu: vcpu.vcpuId, is_running: false }, undefined, vcpu.actor);
  }

  /** The IOMMU (or KVM) set a vector in the vCPU's backing-page IRR. */
  setBackingPageIrr(vcpuId: number, vector: number): void {
    let s = this.backingIrr.get(vcpuId);
    if (s === undefined) {
      s = new Set();
      this.backingIrr.set(vcpuId, s);
    }
    s.add(vector);
  }

  /** The AVIC doorbell reaches `cpu`: a vCPU in guest mode there evaluates its IRR, no exit. */
  doorbell(cpu: number): void {
    this.ctx.scheduler.after(this.ctx.costs.ns.postedInterruptNotify, this.cpus.actor(cpu), () => {
      const v = this.cpus.loadedVcpu(cpu);
      if (this.trace.on) this.trace.emit('avic.doorbell', 'hw:avic_doorbell', undefined, { cpu, vcpu: v?.vcpuId ?? -1 });
      if (v === undefined || v.mode !== 'in-guest' || v.hostCpu !== cpu) return; // picked up on the next VMRUN
      const vectors = this.takeIrr(v.vcpuId);
      if (vectors.length === 0) return;
      this.counters.processedInGuest++;
      v.syncPirToIrr(vectors);
    });
  }

  /** avic_deliver_interrupt (KVM-originated): IRR in the backing page, then doorbell or wake. */
  deliverInterrupt(vcpuId: number, vector: number): boolean {
    if (!this.kvm.apicvActive) return false;
    const vcpu = this.kvm.vcpu(vcpuId);
    if (vcpu === undefined) return false;
    this.setBackingPageIrr(vcpuId, vector);
    if (vcpu.mode === 'in-guest') {
      if (this.ctx.scheduler.current !== vcpu.actor) {
        this.counters.kvmDoorbells++;
        this.doorbell(vcpu.hostCpu);
      }
    } else {
      vcpu.wakeUp();
    }
    return true;
  }

  /** On VMRUN the CPU evaluates the backing page's IRR. */
  syncOnEntry(vcpuId: number): void {
    const vectors = this.takeIrr(vcpuId);
    if (vectors.length === 0) return;
    this.counters.syncedOnEntry++;
    this.kvm.vcpu(vcpuId)?.syncPirToIrr(vectors);
  }

  /** Pending vectors in a vCPU's backing page. */
  backingPageIrr(vcpuId: number): number[] {
    return [...(this.backingIrr.get(vcpuId) ?? [])].sort((a, b) => a - b);
  }

  private takeIrr(vcpuId: number): number[] {
    const s = this.backingIrr.get(vcpuId);
    if (s === undefined || s.size === 0) return [];
    const out = [...s].sort((a, b) => a - b);
    s.clear();
    return out;
  }

  /** avic_update_iommu_vcpu_affinity. */
  private updateIommuAffinity(vcpuId: number, e: AvicPhysIdEntry): void {
    for (const index of this.irList.get(vcpuId) ?? []) this.iommu.updateGa(index, e.hostApicId, e.isRunning);
  }

  /** avic_ga_log_notifier: wake the vCPU named by each logged GA tag. */
  private gaLogNotifier(on: Actor): void {
    if (this.trace.on) this.trace.emit('iommu.ga_log', 'iommu_poll_ga_log', 'amd_iommu_int_thread', { entries: this.iommu.gaLog.length }, undefined, on);
    while (this.iommu.gaLog.length > 0) {
      const tag = this.iommu.gaLog.shift()!;
      const vcpuId = tag & 0xff;
      if (this.trace.on) this.trace.emit('pi.wakeup', 'avic_ga_log_notifier', 'iommu_poll_ga_log', { ga_tag: tag, vcpu: vcpuId }, undefined, on);
      const v = this.kvm.vcpu(vcpuId);
      if (v !== undefined) {
        this.counters.gaLogWakeups++;
        v.wakeUp();
      }
    }
  }
}
