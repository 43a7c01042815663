import { Histogram } from '@virq/core';

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
    /** vCPU id → reason → count. */
    perVcpu: Record<string, Record<string, number>>;
  };
  /** Guest → device notifications (virtqueue kicks): written vs suppressed by the ring. */
  kicks: { sent: number; suppressed: number };
  /** Device → guest notifications (used-buffer interrupts): signalled vs suppressed. */
  notifications: { sent: number; suppressed: number };
  interrupts: {
    /** Injected by KVM on entry (vmx_inject_irq / a list register). */
    injected: number;
    /** Delivered without the hypervisor (posted interrupt, direct vLPI). */
    posted: number;
    /** Dropped as already pending (KVM_IRQ_LINE_STATUS 0, IRR already set). */
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
