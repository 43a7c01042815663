import { VirqError, type Actor, type SimContext, type TraceChannel } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';
import type { PiVcpu } from './kvm-port.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';

/** A handler of a host interrupt vector, run on the CPU that took it. */
export type HostVectorHandler = (cpu: number, vector: number, on: Actor) => void;

/**
 * What a CPU in VMX non-root mode does itself when the posted-interrupt notification vector
 * arrives (SDM "posted-interrupt processing"). Installed by the posted-interrupt model.
 */
export type PostedInterruptProcessor = (vcpu: PiVcpu, cpu: number) => void;

export interface HostCpusOptions {
  /** Number of host CPUs. */
  count: number;
  /** x2APIC host (NDST holds the full id) or xAPIC (id << 8). Default true. */
  x2apic?: boolean;
}

/**
 * The host's physical CPUs as interrupt targets: which vCPU each one has loaded, the
 * per-CPU vector table (`vector_irq`) and the system vectors (posted-interrupt notification
 * and wakeup). An interrupt to a CPU is an event on that CPU's actor:
 *
 * - the CPU runs a vCPU in guest mode and the vector is the notification vector the VMCS
 *   names → posted-interrupt processing in hardware, no VM exit;
 * - the CPU runs a vCPU in guest mode, any other vector → an EXTERNAL_INTERRUPT VM exit on
 *   that vCPU, then the host handler runs in the vCPU thread's context
 *   (handle_external_interrupt_irqoff);
 * - otherwise the host handler runs on the CPU.
 *
 * Host APIC ids equal CPU numbers.
 */
export class HostCpus {
  readonly count: number;
  readonly x2apic: boolean;
  private readonly actors: Actor[] = [];
  private readonly loaded: (PiVcpu | undefined)[] = [];
  private readonly sysvecs = new Map<number, { name: string; handler: HostVectorHandler; device: boolean }>();
  private readonly vectorIrq: Map<number, HostVectorHandler>[] = [];
  private piProcessor: { vector: number; fn: PostedInterruptProcessor } | undefined;
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  /** Interrupts taken per CPU, and how many of them forced a VM exit. */
  readonly interrupts: number[] = [];
  externalInterruptExits = 0;

  constructor(
    private readonly ctx: SimContext,
    options: HostCpusOptions,
  ) {
    if (!Number.isInteger(options.count) || options.count < 1 || options.count > 8192) {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, `host CPU count must be 1–8192, got ${options.count}`, { errno: 'EINVAL' });
    }
    this.count = options.count;
    this.x2apic = options.x2apic ?? true;
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('host');
    for (let c = 0; c < this.count; c++) {
      this.actors.push(ctx.scheduler.actor({ name: `irq/cpu${c}`, kind: 'host-cpu', cpu: c }));
      this.loaded.push(undefined);
      this.vectorIrq.push(new Map());
      this.interrupts.push(0);
    }
  }

  actor(cpu: number): Actor {
    this.check(cpu);
    return this.actors[cpu]!;
  }

  apicId(cpu: number): number {
    this.check(cpu);
    return cpu;
  }

  /** The CPU whose APIC id is `apicId` (identity here). */
  cpuOfApicId(apicId: number): number {
    this.check(apicId);
    return apicId;
  }

  /** The vCPU loaded on `cpu` (vcpu_load … vcpu_put), if any. */
  loadedVcpu(cpu: number): PiVcpu | undefined {
    return this.loaded[cpu];
  }

  setLoaded(cpu: number, vcpu: PiVcpu | undefined): void {
    this.check(cpu);
    this.loaded[cpu] = vcpu;
  }

  /**
   * Registers a system vector handler (sysvec_kvm_posted_intr_ipi …): its own IDT entry,
   * asm_<name> → <name>, not common_interrupt.
   */
  registerSysvec(vector: number, name: string, handler: HostVectorHandler): void {
    this.sysvecs.set(vector, { name, handler, device: false });
  }

  /**
   * Registers a device interrupt that takes `vector` on whichever CPU it lands (an IOMMU's own
   * MSI, say): common_interrupt → handle_edge_irq → the driver's handler `name`.
   */
  registerDeviceVector(vector: number, name: string, handler: HostVectorHandler): void {
    this.sysvecs.set(vector, { name, handler, device: true });
  }

  /** Installs the hardware's posted-interrupt processing for notification vector `vector`. */
  setPostedInterruptProcessor(vector: number, fn: PostedInterruptProcessor | undefined): void {
    this.piProcessor = fn === undefined ? undefined : { vector, fn };
  }

  /** Binds a device vector on one CPU to a handler (the per-CPU vector_irq table). */
  bindVector(cpu: number, vector: number, handler: HostVectorHandler): void {
    this.check(cpu);
    this.vectorIrq[cpu]!.set(vector, handler);
  }

  unbindVector(cpu: number, vector: number): void {
    this.vectorIrq[cpu]?.delete(vector);
  }

  vectorBound(cpu: number, vector: number): boolean {
    return this.vectorIrq[cpu]?.has(vector) ?? false;
  }

  /**
   * An interrupt message with `vector` for `cpu` (from the IOMMU, an IPI, a notification).
   * It arrives `delayNs` later as an event on the CPU.
   */
  raise(cpu: number, vector: number, delayNs = 0): void {
    this.check(cpu);
    this.ctx.scheduler.after(delayNs, this.actors[cpu]!, (a: { cpu: number; vector: number }) => this.take(a.cpu, a.vector), { cpu, vector });
  }

  private take(cpu: number, vector: number): void {
    this.interrupts[cpu]!++;
    const vcpu = this.loaded[cpu];
    const inGuest = vcpu !== undefined && vcpu.mode === 'in-guest' && vcpu.hostCpu === cpu;
    if (inGuest && this.piProcessor !== undefined && this.piProcessor.vector === vector) {
      this.piProcessor.fn(vcpu, cpu);
      return;
    }
    let on = this.actors[cpu]!;
    if (inGuest) {
      this.externalInterruptExits++;
      vcpu.externalInterruptExit(vector);
      on = vcpu.actor;
    }
    const sys = this.sysvecs.get(vector);
    if (sys !== undefined && !sys.device) {
      if (this.trace.on) this.trace.emit('host.sysvec', sys.name, 'asm_' + sys.name, { cpu, vector }, undefined, on);
      sys.handler(cpu, vector, on);
      return;
    }
    if (this.trace.on) this.trace.emit('host.irq_enter', 'common_interrupt', 'asm_common_interrupt', { cpu, vector }, undefined, on);
    if (sys !== undefined) {
      if (this.trace.on) {
        this.trace.emit('host.irq_handler', 'handle_edge_irq', '__common_interrupt', { cpu, vector }, undefined, on);
        this.trace.emit('host.irq_handler', sys.name, '__handle_irq_event_percpu', { cpu, vector }, undefined, on);
      }
      sys.handler(cpu, vector, on);
      return;
    }
    const h = this.vectorIrq[cpu]!.get(vector);
    if (h === undefined) {
      // A vector nobody owns: Linux logs "No irq handler for vector" and acks it.
      if (this.trace.on) this.trace.emit('host.irq_handler', 'spurious_interrupt', 'common_interrupt', { cpu, vector }, undefined, on);
      return;
    }
    h(cpu, vector, on);
  }

  private check(cpu: number): void {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.count) {
      throw new VirqError(IrqBypassErrorCode.VcpuUnknown, `host CPU ${cpu} does not exist (this host has ${this.count})`, { errno: 'EINVAL' });
    }
  }
}
