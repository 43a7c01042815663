import { VirqError, type EventFd, type GsiRoute, type SimContext, type TraceChannel } from '@virq/core';
import type { HostIrqDomain } from './host-irq.js';
import type { IrqBypassConsumer, IrqBypassManager, IrqBypassProducer } from './irq-bypass-manager.js';
import type { KvmIrqfdView, KvmPiPort } from './kvm-port.js';
import type { IrqPostingBackend } from './posting-backend.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';
import { decodeX86Msi, isLowestPriority, isPostableDeliveryMode } from './x86-msi.js';

/** The IRTE decision for one irqfd, as `vmx_pi_update_irte` / `avic_pi_update_irte` made it. */
export type IrteDecision =
  | { readonly mode: 'posted'; readonly vcpuId: number; readonly vector: number }
  | { readonly mode: 'remapped'; readonly reason: 'not-msi' | 'no-route' | 'multi-destination' | 'not-postable' | 'no-vcpu' | 'disconnect' | 'posting-off' };

/** KVM's bypass consumer of one irqfd (`irqfd->consumer`, `irqfd->producer`). */
class IrqfdConsumer implements IrqBypassConsumer {
  producer: IrqBypassProducer | undefined;
  constructor(
    readonly owner: KvmIrqBypass,
    public view: KvmIrqfdView,
  ) {}
  get token(): EventFd {
    return this.view.eventfd;
  }
  addProducer(p: IrqBypassProducer): void {
    this.owner.addProducer(this, p);
  }
  delProducer(p: IrqBypassProducer): void {
    this.owner.delProducer(this, p);
  }
  // x86: kvm_arch_irq_bypass_stop/start are no-ops.
  stop(): void {}
  start(): void {}
}

/**
 * KVM as irqbypass consumer on x86 (virt/kvm/eventfd.c, arch/x86/kvm/x86.c):
 *
 * - `kvm_irqfd_assign` ends with `irq_bypass_register_consumer` (token = the irqfd's
 *   eventfd; failure only logged); `irqfd_shutdown` unregisters it;
 * - `kvm_arch_irq_bypass_add_producer`: remember the producer, `kvm_arch_start_assignment`,
 *   update the IRTE for (producer.irq, irqfd.gsi); on failure end the assignment;
 * - `kvm_arch_irq_bypass_del_producer`: IRTE back to remapped, forget the producer, end the
 *   assignment;
 * - `kvm_arch_update_irqfd_routing` from `kvm_irq_routing_update` for every irqfd that has
 *   a producer.
 *
 * The IRTE update (`vmx_pi_update_irte`, or `avic_pi_update_irte` with the AVIC backend)
 * walks the GSI's MSI routes: a route that is postable (fixed or lowest-priority) and
 * resolves to exactly one vCPU → posted to that vCPU's descriptor with the guest vector;
 * anything else → remapped (the interrupt goes to the host and through the irqfd). A GSI
 * with no MSI route at all is also made remapped (as the 2025 common `kvm_pi_update_irte`
 * does; older kernels left such an IRTE untouched).
 */
export class KvmIrqBypass {
  private readonly consumers = new Map<EventFd, IrqfdConsumer>();
  private readonly decisions = new Map<EventFd, IrteDecision>();
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  /** Consumer registrations that failed (logged, as KVM does). */
  registrationFailures = 0;

  constructor(
    ctx: SimContext,
    readonly manager: IrqBypassManager,
    readonly kvm: KvmPiPort,
    readonly backend: IrqPostingBackend,
    readonly irqs: HostIrqDomain,
  ) {
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('kvm-bypass');
  }

  /** Installs the irqfd hooks in the irqchip (kvm_arch_has_irq_bypass = true). */
  attach(): void {
    this.kvm.setIrqfdBypassHooks({
      irqfdAssigned: (v) => this.irqfdAssigned(v),
      irqfdDeassigned: (v) => this.irqfdDeassigned(v),
      irqfdRoutingUpdated: (v) => this.irqfdRoutingUpdated(v),
    });
  }

  detach(): void {
    this.kvm.setIrqfdBypassHooks(undefined);
  }

  /** End of kvm_irqfd_assign: irq_bypass_register_consumer. */
  irqfdAssigned(view: KvmIrqfdView): void {
    const c = new IrqfdConsumer(this, view);
    try {
      this.manager.registerConsumer(c, 'kvm_irqfd_assign');
      this.consumers.set(view.eventfd, c);
    } catch (e) {
      // "irq bypass consumer (token %p) registration fails: %d" — only logged.
      if (!VirqError.is(e)) throw e;
      this.registrationFailures++;
    }
  }

  /** irqfd_shutdown: irq_bypass_unregister_consumer. */
  irqfdDeassigned(view: KvmIrqfdView): void {
    const c = this.consumers.get(view.eventfd);
    if (c === undefined) return;
    c.view = view;
    this.manager.unregisterConsumer(c, 'irqfd_shutdown');
    this.consumers.delete(view.eventfd);
    this.decisions.delete(view.eventfd);
  }

  /** kvm_irq_routing_update → (irqfd has a producer) → kvm_arch_update_irqfd_routing. */
  irqfdRoutingUpdated(view: KvmIrqfdView): void {
    const c = this.consumers.get(view.eventfd);
    if (c === undefined) return;
    c.view = view;
    const p = c.producer;
    if (p === undefined) return;
    if (this.trace.on) this.trace.emit('kvm.update_irqfd_routing', 'kvm_arch_update_irqfd_routing', 'kvm_irq_routing_update', { host_irq: p.irq, gsi: view.gsi });
    this.updateIrte(c, p.irq, true, 'kvm_irq_routing_update');
  }

  /** kvm_arch_irq_bypass_add_producer. */
  addProducer(c: IrqfdConsumer, p: IrqBypassProducer): void {
    if (this.trace.on) this.trace.emit('kvm.add_producer', 'kvm_arch_irq_bypass_add_producer', '__connect', { host_irq: p.irq, gsi: c.view.gsi });
    c.producer = p;
    this.backend.startAssignment();
    try {
      this.updateIrte(c, p.irq, true, 'kvm_arch_irq_bypass_add_producer');
    } catch (e) {
      this.backend.endAssignment();
      c.producer = undefined;
      throw e;
    }
  }

  /** kvm_arch_irq_bypass_del_producer. */
  delProducer(c: IrqfdConsumer, p: IrqBypassProducer): void {
    if (this.trace.on) this.trace.emit('kvm.del_producer', 'kvm_arch_irq_bypass_del_producer', '__disconnect', { host_irq: p.irq, gsi: c.view.gsi });
    c.producer = undefined;
    this.updateIrte(c, p.irq, false, 'kvm_arch_irq_bypass_del_producer');
    this.backend.endAssignment();
  }

  /** The last IRTE decision for an irqfd (undefined: never connected or disconnected). */
  decisionOf(eventfd: EventFd): IrteDecision | undefined {
    return this.decisions.get(eventfd);
  }

  /** The producer connected to an irqfd, if any. */
  producerOf(eventfd: EventFd): IrqBypassProducer | undefined {
    return this.consumers.get(eventfd)?.producer;
  }

  /**
   * What the IRTE of an irqfd with a producer must be for a set of routes — the reference the
   * consistency property checks against (kvm_intr_is_single_vcpu + kvm_irq_is_postable).
   */
  expectedDecision(routes: readonly GsiRoute[]): IrteDecision {
    if (!this.backend.canPost()) return { mode: 'remapped', reason: 'posting-off' };
    const msis = routes.filter((r): r is Extract<GsiRoute, { type: 'msi' }> => r.type === 'msi');
    if (msis.length === 0) return { mode: 'remapped', reason: routes.length === 0 ? 'no-route' : 'not-msi' };
    let d: IrteDecision = { mode: 'remapped', reason: 'no-route' };
    for (const r of msis) d = this.decide(r);
    return d;
  }

  private decide(r: Extract<GsiRoute, { type: 'msi' }>): IrteDecision {
    const irq = decodeX86Msi(r.msi);
    if (!isPostableDeliveryMode(irq)) return { mode: 'remapped', reason: 'not-postable' };
    const vcpus = this.kvm.destinationVcpus(irq.destId, irq.logical, isLowestPriority(irq), irq.vector);
    if (vcpus.length !== 1) return { mode: 'remapped', reason: vcpus.length === 0 ? 'no-vcpu' : 'multi-destination' };
    return { mode: 'posted', vcpuId: vcpus[0]!, vector: irq.vector };
  }

  /** vmx_pi_update_irte / avic_pi_update_irte (kvm_pi_update_irte). */
  private updateIrte(c: IrqfdConsumer, hostIrq: number, set: boolean, caller: string): void {
    const fn = this.backend.updateIrteFn;
    const gsi = c.view.gsi;
    if (this.trace.on) this.trace.emit('kvm.pi_update_irte', fn, caller, { host_irq: hostIrq, gsi, set });
    if (!this.backend.canPost()) {
      this.decisions.set(c.view.eventfd, { mode: 'remapped', reason: 'posting-off' });
      return;
    }
    const index = this.irqs.irteIndexOf(hostIrq);
    if (!set) {
      this.irqs.setVcpuAffinity(hostIrq, null, fn);
      this.backend.irteTargetChanged?.(hostIrq, index, undefined);
      this.decisions.set(c.view.eventfd, { mode: 'remapped', reason: 'disconnect' });
      return;
    }
    const routes = this.kvm.routesOf(gsi);
    const msis = routes.filter((r): r is Extract<GsiRoute, { type: 'msi' }> => r.type === 'msi');
    if (msis.length === 0) {
      this.irqs.setVcpuAffinity(hostIrq, null, fn);
      this.backend.irteTargetChanged?.(hostIrq, index, undefined);
      this.decisions.set(c.view.eventfd, { mode: 'remapped', reason: routes.length === 0 ? 'no-route' : 'not-msi' });
      return;
    }
    for (const r of msis) {
      const d = this.decide(r);
      if (d.mode === 'remapped') {
        this.irqs.setVcpuAffinity(hostIrq, null, fn);
        this.backend.irteTargetChanged?.(hostIrq, index, undefined);
      } else {
        if (this.trace.on) this.trace.emit('kvm.irte_update', 'kvm_pi_irte_update', fn, { host_irq: hostIrq, vcpu: d.vcpuId, gsi, vector: d.vector, set });
        this.irqs.setVcpuAffinity(hostIrq, this.backend.postingInfo(d.vcpuId, d.vector), fn);
        this.backend.irteTargetChanged?.(hostIrq, index, d.vcpuId);
      }
      this.decisions.set(c.view.eventfd, d);
    }
  }
}
