import { VirqError, type Actor, type SimContext, type TraceChannel } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';
import type { HostCpus } from './host-cpus.js';
import type { InterruptRemapper, VcpuAffinityInfo } from './interrupt-remapper.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';

/** An irq handler (`irq_handler_t`): runs on the CPU that took the interrupt, on `on`. */
export type IrqHandler = (irq: number, on: Actor) => void;

interface IrqDesc {
  readonly irq: number;
  readonly cpu: number;
  readonly vector: number;
  readonly irteIndex: number;
  readonly sourceId: number;
  action: { name: string; handler: IrqHandler } | undefined;
  count: number;
}

/**
 * The host's IRQ layer for MSI/MSI-X of devices behind an interrupt-remapping IOMMU: Linux IRQ
 * numbers (what `pci_irq_vector` returns), each with a host vector on one host CPU and a
 * remapping-table entry; `request_irq` / `free_irq`; `irq_set_vcpu_affinity`, which the IOMMU
 * driver implements by rewriting the entry in posted (or GA) format.
 */
export class HostIrqDomain {
  private readonly descs = new Map<number, IrqDesc>();
  private nextIrq = 120;
  private nextIrte = 0;
  private readonly nextVector: number[] = [];
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;

  constructor(
    private readonly ctx: SimContext,
    readonly cpus: HostCpus,
    readonly remapper: InterruptRemapper,
  ) {
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('host');
    for (let c = 0; c < cpus.count; c++) this.nextVector.push(0x21);
  }

  /**
   * pci_alloc_irq_vectors for one MSI/MSI-X vector: a new IRQ number, a host vector on `cpu`
   * (the IRQ's affinity), and an IRTE in remapped mode.
   */
  allocMsiIrq(cpu: number, sourceId: number): number {
    const apic = this.cpus.apicId(cpu);
    let vector = this.nextVector[cpu]!;
    while (vector <= 0xdf && this.cpus.vectorBound(cpu, vector)) vector++;
    if (vector > 0xdf) {
      throw new VirqError(IrqBypassErrorCode.VfioNoVector, `host CPU ${cpu} has no free device vector left (0x21–0xdf in use)`, { errno: 'ENOSPC' });
    }
    this.nextVector[cpu] = vector + 1;
    const irq = this.nextIrq++;
    const desc: IrqDesc = { irq, cpu, vector, irteIndex: this.nextIrte++, sourceId, action: undefined, count: 0 };
    this.descs.set(irq, desc);
    this.cpus.bindVector(cpu, vector, (_c, _v, on) => this.handleIrq(desc, on));
    this.remapper.setRemapped(desc.irteIndex, vector, apic, sourceId);
    return irq;
  }

  /** pci_free_irq_vectors for one IRQ. */
  freeMsiIrq(irq: number): void {
    const d = this.descs.get(irq);
    if (d === undefined) return;
    this.cpus.unbindVector(d.cpu, d.vector);
    this.remapper.clear(d.irteIndex);
    if (this.nextVector[d.cpu]! > d.vector) this.nextVector[d.cpu] = d.vector;
    this.descs.delete(irq);
  }

  /** request_irq. EBUSY when the IRQ already has a handler (no IRQF_SHARED here). */
  requestIrq(irq: number, handler: IrqHandler, name: string, caller: string): void {
    const d = this.desc(irq);
    if (this.trace.on) this.trace.emit('host.request_irq', 'request_irq', caller, { irq, name });
    if (d.action !== undefined) {
      throw new VirqError(IrqBypassErrorCode.HostIrqBusy, `request_irq(${irq}): already owned by "${d.action.name}"`, { errno: 'EBUSY' });
    }
    d.action = { name, handler };
  }

  /** free_irq. */
  freeIrq(irq: number, caller: string): void {
    const d = this.desc(irq);
    if (this.trace.on) this.trace.emit('host.free_irq', 'free_irq', caller, { irq });
    d.action = undefined;
  }

  /** irq_set_vcpu_affinity: hands the posting information to the IOMMU driver. */
  setVcpuAffinity(irq: number, info: VcpuAffinityInfo | null, caller: string): void {
    const d = this.desc(irq);
    if (this.trace.on) this.trace.emit('host.irq_set_vcpu_affinity', 'irq_set_vcpu_affinity', caller, { irq, posted: info !== null });
    this.remapper.setVcpuAffinity(d.irteIndex, info);
  }

  /** The device raised this IRQ's MSI: the message goes to the IOMMU (interrupt remapping). */
  deviceMsi(irq: number): void {
    this.remapper.handleMsi(this.desc(irq).irteIndex);
  }

  irteIndexOf(irq: number): number {
    return this.desc(irq).irteIndex;
  }

  hostCpuOf(irq: number): number {
    return this.desc(irq).cpu;
  }

  hostVectorOf(irq: number): number {
    return this.desc(irq).vector;
  }

  /** /proc/interrupts count of an IRQ (times its handler ran). */
  countOf(irq: number): number {
    return this.desc(irq).count;
  }

  hasHandler(irq: number): boolean {
    return this.descs.get(irq)?.action !== undefined;
  }

  private handleIrq(d: IrqDesc, on: Actor): void {
    d.count++;
    if (this.trace.on) this.trace.emit('host.irq_handler', 'handle_edge_irq', '__common_interrupt', { irq: d.irq }, undefined, on);
    if (d.action === undefined) return; // no handler: the interrupt is acked and dropped
    d.action.handler(d.irq, on);
  }

  private desc(irq: number): IrqDesc {
    const d = this.descs.get(irq);
    if (d === undefined) throw new VirqError(IrqBypassErrorCode.HostIrqUnknown, `host IRQ ${irq} is not allocated`, { errno: 'EINVAL' });
    return d;
  }
}
