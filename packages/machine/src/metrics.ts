import { Histogram, type TraceEvent } from '@virq/core';

/** What a scenario run measured. Every count comes from the run's own events. */
export interface RunMetrics {
  topology: string;
  irqchip: string;
  seed: number;
  virtualTimeNs: number;
  /** Scheduler events executed. */
  events: number;
  exits: {
    total: number;
    byReason: Record<string, number>;
    /** vCPU id (the topology's `vcpus[].id`) → reason → count. */
    perVcpu: Record<string, Record<string, number>>;
  };
  /**
   * Returns from KVM_RUN to the VMM (kvm_userspace_exit), by `kvm_run->exit_reason`: device
   * accesses (KVM_EXIT_IO/MMIO) on every x86 machine; with the userspace irqchip also the LAPIC
   * and IOAPIC accesses and EOIs (MMIO), KVM_EXIT_HLT, KVM_EXIT_IRQ_WINDOW_OPEN and the
   * KVM_EXIT_INTR a QEMU kick causes. (The ARM machine does not trace them.)
   */
  userspaceExits: { total: number; byReason: Record<string, number> };
  /** qemu_cpu_kick: QEMU signalling a vCPU thread to come out and take an interrupt (userspace irqchip). */
  vcpuKicks: number;
  /** Guest → device notifications (virtqueue kicks): written vs suppressed by the ring. */
  kicks: { sent: number; suppressed: number };
  /** Device → guest notifications (used-buffer interrupts): signalled vs suppressed. */
  notifications: { sent: number; suppressed: number };
  interrupts: {
    /** Injected by KVM on entry (vmx_inject_irq / a list register). */
    injected: number;
    /** Delivered without the hypervisor (posted interrupt, direct vLPI). */
    posted: number;
    /**
     * Dropped as already pending: an edge on an IOAPIC pin whose IRR is still set (KVM's
     * ioapic_set_irq returns 0, the `coalesced` of trace_kvm_ioapic_set_irq) and, on GICv4, a
     * vLPI the ITS found already pending. PIC routes are not counted (a Linux guest masks the PIC).
     */
    coalesced: number;
    /** Wake-up vectors / GICv4 doorbells for non-running vCPUs. */
    doorbells: number;
  };
  eventfdSignals: number;
  /** Device event → guest handler. */
  latencyNs: { count: number; p50: number; p99: number; mean: number };
  /** Actor name → virtual CPU time. */
  cpuTimeNs: Record<string, number>;
  /** Latency samples (for histograms in reports). */
  latencySamples: number[];
}

/** Mutable counters a machine fills while it runs. */
export class MetricsCollector {
  readonly exitsByReason = new Map<string, number>();
  readonly exitsPerVcpu = new Map<number, Map<string, number>>();
  exits = 0;
  readonly userspaceExitsByReason = new Map<string, number>();
  userspaceExits = 0;
  vcpuKicks = 0;
  kicksSent = 0;
  kicksSuppressed = 0;
  notificationsSent = 0;
  notificationsSuppressed = 0;
  injected = 0;
  posted = 0;
  coalesced = 0;
  doorbells = 0;
  eventfdSignals = 0;
  readonly latency = new Histogram();

  exit(vcpu: number, reason: string): void {
    this.exits++;
    this.exitsByReason.set(reason, (this.exitsByReason.get(reason) ?? 0) + 1);
    let m = this.exitsPerVcpu.get(vcpu);
    if (m === undefined) this.exitsPerVcpu.set(vcpu, (m = new Map()));
    m.set(reason, (m.get(reason) ?? 0) + 1);
  }

  finish(base: Pick<RunMetrics, 'topology' | 'irqchip' | 'seed' | 'virtualTimeNs' | 'events' | 'cpuTimeNs'>): RunMetrics {
    const perVcpu: Record<string, Record<string, number>> = {};
    for (const [v, m] of [...this.exitsPerVcpu].sort((a, b) => a[0] - b[0])) perVcpu[String(v)] = Object.fromEntries([...m].sort());
    const h = this.latency;
    return {
      ...base,
      exits: { total: this.exits, byReason: Object.fromEntries([...this.exitsByReason].sort()), perVcpu },
      userspaceExits: { total: this.userspaceExits, byReason: Object.fromEntries([...this.userspaceExitsByReason].sort()) },
      vcpuKicks: this.vcpuKicks,
      kicks: { sent: this.kicksSent, suppressed: this.kicksSuppressed },
      notifications: { sent: this.notificationsSent, suppressed: this.notificationsSuppressed },
      interrupts: { injected: this.injected, posted: this.posted, coalesced: this.coalesced, doorbells: this.doorbells },
      eventfdSignals: this.eventfdSignals,
      latencyNs: { count: h.count, p50: h.percentile(50), p99: h.percentile(99), mean: h.mean() },
      latencySamples: [...h.toArray()],
    };
  }
}

/** The columns of comparison tables: a name and how to read it from a run. */
export const METRIC_COLUMNS: ReadonlyArray<{ name: string; get: (m: RunMetrics) => number }> = [
  { name: 'exits', get: (m) => m.exits.total },
  { name: 'exits/ms', get: (m) => round2(m.exits.total / (m.virtualTimeNs / 1e6)) },
  { name: 'to user', get: (m) => m.userspaceExits.total },
  { name: 'vcpu kicks', get: (m) => m.vcpuKicks },
  { name: 'kicks', get: (m) => m.kicks.sent },
  { name: 'kicks suppr', get: (m) => m.kicks.suppressed },
  { name: 'irqs sent', get: (m) => m.notifications.sent },
  { name: 'irqs suppr', get: (m) => m.notifications.suppressed },
  { name: 'injected', get: (m) => m.interrupts.injected },
  { name: 'posted', get: (m) => m.interrupts.posted },
  { name: 'coalesced', get: (m) => m.interrupts.coalesced },
  { name: 'doorbells', get: (m) => m.interrupts.doorbells },
  { name: 'eventfd sig', get: (m) => m.eventfdSignals },
  { name: 'lat p50 ns', get: (m) => m.latencyNs.p50 },
  { name: 'lat p99 ns', get: (m) => m.latencyNs.p99 },
];

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * One per interrupt delivered without KVM injecting it: KVM-originated posted interrupts
 * (APICv: vmx_deliver_posted_interrupt — irqbypass's `__vmx_deliver_posted_interrupt` below it
 * is the same interrupt and is not counted), device interrupts posted by the IOMMU (VT-d / AMD-Vi
 * GA mode, hardware steps of @virq/irqbypass, whether or not the vCPU runs), and on GICv4 the
 * ITS's translation to a vLPI (`hw:its_translate` with `virtual`, counted below).
 */
const POSTED = new Set(['vmx_deliver_posted_interrupt', 'svm_complete_interrupt_delivery', 'hw:vtd_post_interrupt', 'hw:amdvi_ga_interrupt']);
const DOORBELLS = new Set(['pi_wakeup_handler', 'avic_ga_log_notifier', 'vgic_v4_doorbell_handler']);
/**
 * One per interrupt KVM injects: VMCS event injection on x86 (`vmx_inject_irq`); on ARM one per
 * interrupt the guest acknowledges from a list register KVM wrote (`gic_handle_irq` with
 * `from: 'lr'`, below) — counting `vgic_queue_irq_unlock` missed every LPI made pending again
 * while still listed (a third of a virtio-net rx queue's interrupts).
 */
const INJECTED = new Set(['vmx_inject_irq']);

/**
 * The counting rules: turns the run's trace events (as the packages emit them) into the
 * counters of a MetricsCollector. Stateful only for IOAPIC coalescing, whose outcome shows as
 * the absence of `ioapic_service` right after `ioapic_set_irq`.
 */
export class TraceMetricsCounter {
  /** An IOAPIC pin that saw a rising level and has not (yet) been serviced. */
  private ioapicPending = -1;

  constructor(private readonly m: MetricsCollector) {}

  observe(e: TraceEvent): void {
    const m = this.m;
    if (this.ioapicPending >= 0) {
      // kvm-irqchip's ioapic_set_irq goes straight to ioapic_service unless the edge found
      // the pin's IRR already set (or the RTC's EOI still pending): then it returns 0.
      if (!(e.fn === 'ioapic_service' && (e.args as { pin?: number }).pin === this.ioapicPending)) m.coalesced++;
      this.ioapicPending = -1;
    }
    switch (e.fn) {
      case 'kvm_exit': {
        const a = e.args as { vcpu?: number; reason?: string };
        m.exit(a.vcpu ?? -1, String(a.reason));
        return;
      }
      case 'kvm_userspace_exit': {
        const r = String((e.args as { reason?: string }).reason);
        m.userspaceExits++;
        m.userspaceExitsByReason.set(r, (m.userspaceExitsByReason.get(r) ?? 0) + 1);
        return;
      }
      case 'qemu_cpu_kick':
        m.vcpuKicks++;
        return;
      case 'ioapic_set_irq': {
        const a = e.args as { pin?: number; level?: number };
        if (a.level === 1 && a.pin !== undefined) this.ioapicPending = a.pin;
        return;
      }
      // One count per eventfd write: the ioeventfd's (ioeventfd_write; x86's kvm-irqchip also
      // traces the eventfd_signal below it, ARM's vgic does not, so that one is skipped),
      // VFIO's and vhost's eventfd_signal, a DPDK-style back end's eventfd_write, vhost-net's
      // vhost_signal. An eventfd_signal carrying `error` reports a failed write, not a signal.
      case 'ioeventfd_write':
      case 'eventfd_write':
      case 'vhost_signal':
        m.eventfdSignals++;
        return;
      case 'eventfd_signal': {
        if (e.caller !== 'ioeventfd_write' && (e.args as { error?: string }).error === undefined) m.eventfdSignals++;
        return;
      }
      case 'gic_handle_irq': {
        if ((e.args as { from?: string }).from === 'lr') m.injected++;
        return;
      }
      case 'hw:its_translate': {
        const a = e.args as { virtual?: boolean; outcome?: string };
        if (a.virtual === true) {
          if (a.outcome === 'latched') m.coalesced++;
          else if (a.outcome === 'direct' || a.outcome === 'doorbell') m.posted++;
        }
        return;
      }
      default:
        if (e.kind === 'vring.kick_prepare') {
          if ((e.args as { needsKick: boolean }).needsKick) m.kicksSent++;
          else m.kicksSuppressed++;
        } else if (e.kind === 'vring.should_notify') {
          if ((e.args as { notify: boolean }).notify) m.notificationsSent++;
          else m.notificationsSuppressed++;
        } else if (INJECTED.has(e.fn)) m.injected++;
        else if (POSTED.has(e.fn)) m.posted++;
        else if (DOORBELLS.has(e.fn)) m.doorbells++;
    }
  }

  /** Settles a pending IOAPIC edge at the end of a run. */
  flush(): void {
    if (this.ioapicPending >= 0) this.m.coalesced++;
    this.ioapicPending = -1;
  }
}
