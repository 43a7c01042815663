import { VirqError, checkSnapshot, type Actor, type SimContext, type Snapshot, type TraceChannel } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';
import type { HostCpus } from './host-cpus.js';
import type { PiDescriptorResolver } from './intel-ir.js';
import type { VcpuAffinityInfo } from './interrupt-remapper.js';
import type { KvmPiPort, PiVcpu } from './kvm-port.js';
import { PI_DESC_SIZE, POSTED_INTR_VECTOR, POSTED_INTR_WAKEUP_VECTOR, PiDescriptor, piNdst, type PiDescriptorState } from './pi-descriptor.js';
import type { IrqPostingBackend } from './posting-backend.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';

export interface VmxPostedInterruptsOptions {
  /** Host physical address of vCPU 0's descriptor; vCPU n's is at base + 64·n. */
  descriptorBase?: number;
  /** The IOMMU can post (IRQ_POSTING_CAP). Default true. */
  iommuPostingCapable?: boolean;
}

const VMX_PI_SNAPSHOT = 'irqbypass.vmx-pi';

export interface VmxPiState {
  readonly descriptors: Readonly<Record<number, PiDescriptorState>>;
  /** Host CPU → vCPU ids blocked there with the wakeup vector. */
  readonly wakeupLists: Readonly<Record<number, readonly number[]>>;
  readonly assignedDevices: number;
}

export interface VmxPiCounters {
  /** Notifications the CPU processed in guest mode (PIR → vIRR, no VM exit). */
  processedInGuest: number;
  /** vmx_sync_pir_to_irr calls that found ON set (posts picked up on entry). */
  syncedOnEntry: number;
  /** Wakeup-vector interrupts handled (pi_wakeup_handler runs). */
  wakeupHandlerRuns: number;
  /** vCPUs woken by pi_wakeup_handler. */
  wakeups: number;
  /** __vmx_deliver_posted_interrupt calls (KVM-originated posts). */
  kvmPosts: number;
  /** Notification IPIs KVM sent (kvm_vcpu_trigger_posted_interrupt). */
  kvmNotifications: number;
}

/**
 * VMX posted interrupts, the KVM side (arch/x86/kvm/vmx/posted_intr.c, vmx/common.h):
 *
 * - one `PiDescriptor` per vCPU, created with NV = POSTED_INTR_VECTOR and SN = 1;
 * - `vmx_vcpu_pi_load` (vcpu_load): leave the wakeup list if NV was the wakeup vector;
 *   NDST := this CPU, NV := POSTED_INTR_VECTOR, SN := 0; then ON := 1 if PIR is not empty;
 * - `vmx_vcpu_pi_put` (vcpu_put): blocking with interrupts enabled → `pi_enable_wakeup_handler`
 *   (join this CPU's wakeup list, NV := POSTED_INTR_WAKEUP_VECTOR, self-IPI the wakeup
 *   vector if ON is already set); preempted → SN := 1;
 * - `pi_wakeup_handler` (wakeup vector): wake every listed vCPU whose ON is set;
 * - `vmx_deliver_posted_interrupt` for KVM's own interrupts (irqfd, IPIs, timers with
 *   APICv): PIR, ON, then notification IPI to a vCPU in guest mode or `kvm_vcpu_wake_up`;
 * - `vmx_sync_pir_to_irr` before entry; and the CPU's own posted-interrupt processing when
 *   the notification vector reaches a CPU in guest mode: clear ON, PIR → vIRR, no exit.
 */
export class VmxPostedInterrupts implements PiDescriptorResolver, IrqPostingBackend {
  readonly vendor = 'vmx' as const;
  readonly updateIrteFn = 'vmx_pi_update_irte';
  private readonly descs = new Map<number, PiDescriptor>();
  private readonly byAddress = new Map<number, number>();
  private readonly wakeupLists: PiVcpu[][] = [];
  private readonly onWakeupList = new Map<number, number>();
  private readonly base: number;
  readonly postingCapable: boolean;
  /** kvm_arch_start_assignment count (assigned devices with bypass). */
  assignedDevices = 0;
  readonly counters: VmxPiCounters = { processedInGuest: 0, syncedOnEntry: 0, wakeupHandlerRuns: 0, wakeups: 0, kvmPosts: 0, kvmNotifications: 0 };
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;

  constructor(
    private readonly ctx: SimContext,
    private readonly cpus: HostCpus,
    private readonly kvm: KvmPiPort,
    options: VmxPostedInterruptsOptions = {},
  ) {
    this.base = options.descriptorBase ?? 0x1_0000_0000;
    this.postingCapable = options.iommuPostingCapable ?? true;
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('vmx-pi');
    for (let c = 0; c < cpus.count; c++) this.wakeupLists.push([]);
    cpus.registerSysvec(POSTED_INTR_VECTOR, 'sysvec_kvm_posted_intr_ipi', () => {
      // The notification hit the host (CPU in root mode): nothing to do, the vCPU will
      // sync PIR → IRR on its next entry.
    });
    cpus.registerSysvec(POSTED_INTR_WAKEUP_VECTOR, 'sysvec_kvm_posted_intr_wakeup_ipi', (cpu, _v, on) => this.piWakeupHandler(cpu, on));
    cpus.setPostedInterruptProcessor(POSTED_INTR_VECTOR, (vcpu, cpu) => this.hwProcess(vcpu, cpu));
  }

  /** Connects the hooks of the irqchip (vcpu_load/put, APICv delivery, PIR sync on entry). */
  attach(): void {
    this.kvm.setVcpuSchedHooks({
      vcpuLoad: (v, cpu) => this.vcpuPiLoad(v, cpu),
      vcpuPut: (v, reason) => this.vcpuPiPut(v, reason),
    });
    this.kvm.setPostedInterruptDelivery((id, vector) => this.deliverPostedInterrupt(id, vector));
    this.kvm.setPirSync((id, caller) => this.syncPirToIrr(id, caller));
  }

  detach(): void {
    this.kvm.setVcpuSchedHooks(undefined);
    this.kvm.setPostedInterruptDelivery(undefined);
    this.kvm.setPirSync(undefined);
  }

  /** The vCPU's descriptor (created on first use). */
  descriptor(vcpuId: number): PiDescriptor {
    let d = this.descs.get(vcpuId);
    if (d === undefined) {
      if (!Number.isInteger(vcpuId) || vcpuId < 0) {
        throw new VirqError(IrqBypassErrorCode.VcpuUnknown, `vCPU id must be an integer ≥ 0, got ${vcpuId}`, { errno: 'EINVAL' });
      }
      const addr = this.base + vcpuId * PI_DESC_SIZE;
      d = new PiDescriptor(addr);
      d.updateControl({ nv: POSTED_INTR_VECTOR, sn: true });
      this.descs.set(vcpuId, d);
      this.byAddress.set(addr, vcpuId);
    }
    return d;
  }

  descriptorAt(address: number): { desc: PiDescriptor; vcpuId: number } | undefined {
    const id = this.byAddress.get(address);
    return id === undefined ? undefined : { desc: this.descs.get(id)!, vcpuId: id };
  }

  /** vmx_needs_pi_wakeup: APICv with VT-d posting in use. */
  get needsPiWakeup(): boolean {
    return this.kvm.apicvActive && this.postingCapable && this.assignedDevices > 0;
  }

  /** vmx_can_use_vtd_pi: APICv on, IOMMU posting capability, an assigned device. */
  canPost(): boolean {
    return this.needsPiWakeup;
  }

  /** kvm_arch_start_assignment (first device: blocked vCPUs must now use the wakeup vector). */
  startAssignment(): void {
    this.assignedDevices++;
  }

  endAssignment(): void {
    if (this.assignedDevices > 0) this.assignedDevices--;
  }

  /** `struct vcpu_data` for intel_ir_set_vcpu_affinity. */
  postingInfo(vcpuId: number, vector: number): VcpuAffinityInfo {
    return { kind: 'vmx', piDescAddr: this.descriptor(vcpuId).address, vector };
  }

  /** vCPUs on a host CPU's wakeup list. */
  wakeupList(cpu: number): readonly number[] {
    return this.wakeupLists[cpu]!.map((v) => v.vcpuId);
  }

  /** vmx_vcpu_pi_load. */
  vcpuPiLoad(vcpu: PiVcpu, cpu: number): void {
    this.cpus.setLoaded(cpu, vcpu);
    if (!this.kvm.apicvActive || !this.postingCapable) return;
    const pid = this.descriptor(vcpu.vcpuId);
    if (pid.nv === POSTED_INTR_WAKEUP_VECTOR) this.leaveWakeupList(vcpu);
    pid.updateControl({ nv: POSTED_INTR_VECTOR, ndst: piNdst(this.cpus.apicId(cpu), this.cpus.x2apic), sn: false });
    if (!pid.pirEmpty) pid.testAndSetOn();
    if (this.trace.on) this.trace.emit('pi.load', 'vmx_vcpu_pi_load', 'vmx_vcpu_load', { vcpu: vcpu.vcpuId, cpu, ndst: pid.ndst, on: pid.on }, undefined, vcpu.actor);
  }

  /** vmx_vcpu_pi_put. */
  vcpuPiPut(vcpu: PiVcpu, reason: 'preempted' | 'blocking' | 'exit'): void {
    const cpu = vcpu.hostCpu;
    if (cpu >= 0 && cpu < this.cpus.count && this.cpus.loadedVcpu(cpu) === vcpu) this.cpus.setLoaded(cpu, undefined);
    if (!this.kvm.apicvActive || !this.postingCapable) return;
    const pid = this.descriptor(vcpu.vcpuId);
    if (this.trace.on) this.trace.emit('pi.put', 'vmx_vcpu_pi_put', 'vmx_vcpu_put', { vcpu: vcpu.vcpuId, reason }, undefined, vcpu.actor);
    if (reason === 'blocking' && this.needsPiWakeup && cpu >= 0) this.enableWakeupHandler(vcpu, cpu, pid);
    if (reason === 'preempted') pid.setSn();
  }

  /** vmx_deliver_posted_interrupt → __vmx_deliver_posted_interrupt. Returns false without APICv. */
  deliverPostedInterrupt(vcpuId: number, vector: number): boolean {
    if (!this.kvm.apicvActive) return false;
    const vcpu = this.kvm.vcpu(vcpuId);
    if (vcpu === undefined) return false;
    const pid = this.descriptor(vcpuId);
    this.counters.kvmPosts++;
    if (this.trace.on) this.trace.emit('pi.deliver', '__vmx_deliver_posted_interrupt', 'vmx_deliver_posted_interrupt', { vcpu: vcpuId, vector });
    if (pid.testAndSetPir(vector)) return true;
    if (pid.testAndSetOn()) return true;
    // kvm_vcpu_trigger_posted_interrupt
    const running = this.ctx.scheduler.current;
    if (vcpu.mode === 'in-guest') {
      if (running !== vcpu.actor) {
        this.counters.kvmNotifications++;
        if (this.trace.on) this.trace.emit('pi.notify', 'kvm_vcpu_trigger_posted_interrupt', '__vmx_deliver_posted_interrupt', { vcpu: vcpuId, cpu: vcpu.hostCpu, nv: POSTED_INTR_VECTOR });
        this.cpus.raise(vcpu.hostCpu, POSTED_INTR_VECTOR, this.ctx.costs.ns.hostIpi);
      }
      return true;
    }
    vcpu.wakeUp();
    return true;
  }

  /** vmx_sync_pir_to_irr: run before entry (and by apic_has_interrupt_for_ppr). Returns the vectors moved to the IRR. */
  syncPirToIrr(vcpuId: number, caller = 'vcpu_enter_guest'): number[] {
    const pid = this.descs.get(vcpuId);
    if (pid === undefined || !pid.testAndClearOn()) return [];
    const vectors = pid.takePir();
    const vcpu = this.kvm.vcpu(vcpuId);
    this.counters.syncedOnEntry++;
    if (this.trace.on) this.trace.emit('pi.sync_pir_to_irr', 'vmx_sync_pir_to_irr', caller, { vcpu: vcpuId, vectors: vectors.join(',') }, undefined, vcpu?.actor);
    if (vectors.length > 0) vcpu?.syncPirToIrr(vectors);
    return vectors;
  }

  /** Versioned state: every descriptor, the wakeup lists, the assignment count. */
  snapshot(): Snapshot<VmxPiState> {
    const descriptors: Record<number, PiDescriptorState> = {};
    for (const [id, d] of this.descs) descriptors[id] = d.snapshot();
    const wakeupLists: Record<number, number[]> = {};
    this.wakeupLists.forEach((l, cpu) => {
      if (l.length > 0) wakeupLists[cpu] = l.map((v) => v.vcpuId);
    });
    return { type: VMX_PI_SNAPSHOT, version: 1, state: { descriptors, wakeupLists, assignedDevices: this.assignedDevices } };
  }

  /** Puts descriptors and wakeup lists back (the vCPUs must exist in the irqchip). */
  restore(snapshot: Snapshot<VmxPiState>): void {
    const st = checkSnapshot(snapshot, VMX_PI_SNAPSHOT, 1);
    for (const [id, ds] of Object.entries(st.descriptors)) this.descriptor(Number(id)).restore(ds);
    for (const l of this.wakeupLists) l.length = 0;
    this.onWakeupList.clear();
    for (const [cpu, ids] of Object.entries(st.wakeupLists)) {
      for (const id of ids) {
        const v = this.kvm.vcpu(id);
        if (v === undefined) throw new VirqError(IrqBypassErrorCode.VcpuUnknown, `snapshot puts vCPU ${id} on a wakeup list but the VM has no such vCPU`, { errno: 'EINVAL' });
        this.wakeupLists[Number(cpu)]!.push(v);
        this.onWakeupList.set(id, Number(cpu));
      }
    }
    this.assignedDevices = st.assignedDevices;
  }

  /** The CPU's posted-interrupt processing (no exit): clear ON, PIR → vIRR. */
  private hwProcess(vcpu: PiVcpu, cpu: number): void {
    const pid = this.descs.get(vcpu.vcpuId);
    if (pid === undefined || !pid.testAndClearOn()) return;
    const vectors = pid.takePir();
    this.counters.processedInGuest++;
    if (this.trace.on) this.trace.emit('pi.hw_sync', 'hw:posted_interrupt_processing', undefined, { vcpu: vcpu.vcpuId, cpu, vectors: vectors.join(',') }, this.ctx.costs.ns.postedInterruptNotify, vcpu.actor);
    if (vectors.length > 0) vcpu.syncPirToIrr(vectors);
  }

  private enableWakeupHandler(vcpu: PiVcpu, cpu: number, pid: PiDescriptor): void {
    this.wakeupLists[cpu]!.push(vcpu);
    this.onWakeupList.set(vcpu.vcpuId, cpu);
    pid.updateControl({ nv: POSTED_INTR_WAKEUP_VECTOR });
    if (this.trace.on) this.trace.emit('pi.put', 'pi_enable_wakeup_handler', 'vmx_vcpu_pi_put', { vcpu: vcpu.vcpuId, cpu, on: pid.on }, undefined, vcpu.actor);
    // A post that raced with the NV change arrived with the old vector: resend as wakeup.
    if (pid.on) this.cpus.raise(cpu, POSTED_INTR_WAKEUP_VECTOR);
  }

  private leaveWakeupList(vcpu: PiVcpu): void {
    const cpu = this.onWakeupList.get(vcpu.vcpuId);
    if (cpu === undefined) return;
    const list = this.wakeupLists[cpu]!;
    const i = list.indexOf(vcpu);
    if (i >= 0) list.splice(i, 1);
    this.onWakeupList.delete(vcpu.vcpuId);
  }

  /** pi_wakeup_handler: wake the vCPUs blocked on this CPU that have a notification. */
  private piWakeupHandler(cpu: number, on: Actor): void {
    this.counters.wakeupHandlerRuns++;
    if (this.trace.on) this.trace.emit('pi.wakeup', 'pi_wakeup_handler', 'sysvec_kvm_posted_intr_wakeup_ipi', { cpu }, undefined, on);
    for (const v of [...this.wakeupLists[cpu]!]) {
      if (this.descs.get(v.vcpuId)?.on === true) {
        this.counters.wakeups++;
        v.wakeUp(); // kvm_vcpu_wake_up, traced by the irqchip's vCPU
      }
    }
  }
}
