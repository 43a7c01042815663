import { createSimContext, type SimContext, type TraceEvent } from '@virq/core';
import { MetricsCollector, TraceMetricsCounter, type RunMetrics } from './metrics.js';
import { archOf, type Topology } from './topology.js';
import { X86Machine } from './x86/x86-machine.js';
import { ArmMachine } from './arm/arm-machine.js';
import type { ComposedMachine } from './machine.js';
import { FirstDeliveryRecorder } from './first-delivery.js';

export interface ScenarioResult {
  metrics: RunMetrics;
  /** The first device-to-guest delivery: from the first device notification to the guest handler. */
  firstDelivery: TraceEvent[];
  /** Every event, when `keepTrace` was asked for. */
  trace: TraceEvent[] | undefined;
  /** Effective settings and fallbacks the machine chose (e.g. "irqfd off: F8 path"). */
  notes: string[];
  /**
   * Interrupts a device raised more than 0.5 ms before the end of the run that the guest never
   * took (coalescing aside: a raise while one is pending adds nothing). Always empty unless the
   * model lost one; a run that finds some says so in its notes.
   */
  lostInterrupts: Array<{ name: string; vcpu: number; vector: number; since: number }>;
  ctx: SimContext;
}

export interface RunOptions {
  /** Keep the whole trace (for --perfetto and reports). */
  keepTrace?: boolean;
  /** Called as virtual time advances (the run goes in 1% slices when given). */
  onProgress?: (doneNs: number, totalNs: number) => void;
}

/** A raised interrupt still not taken this long before the end of a run was lost. */
const LOST_AFTER_NS = 500_000;

/**
 * Builds the topology's machine, runs its workload for `durationUs` of virtual time, and
 * measures it. Every number comes from the run's own trace and actors; the same topology
 * and seed give the same result.
 */
export function runTopology(topology: Topology, options: RunOptions = {}): ScenarioResult {
  const ctx = createSimContext({ seed: topology.seed, costs: topology.costs });
  const m = new MetricsCollector();
  const counter = new TraceMetricsCounter(m);
  const all: TraceEvent[] | undefined = options.keepTrace ? [] : undefined;
  const first = new FirstDeliveryRecorder();
  const durationNs = topology.durationUs * 1000;
  const machine: ComposedMachine = archOf(topology.irqchip.kind) === 'x86' ? new X86Machine(ctx, topology) : new ArmMachine(ctx, topology);
  // CPU time spent building the machine (an ARM guest's driver probe runs in the constructor)
  // is not the run's: each actor's is counted from here.
  const cpuAtStart = new Map(ctx.scheduler.allActors().map((a) => [a, a.cpuTimeNs]));
  // Boot (firmware, driver probe) is done; the measurement starts here.
  const sub = ctx.trace.events$.subscribe((e) => {
    all?.push(e);
    first.observe(e);
    machine.observe(e);
    counter.observe(e);
  });
  machine.irqs.onLatency = (ns) => m.latency.record(ns);
  machine.irqs.onRaised = (vcpu, vector, now) => first.raised(vcpu, vector, now, ctx.scheduler.current);
  machine.start();
  machine.startWorkload(durationNs);
  if (options.onProgress === undefined) {
    ctx.scheduler.runUntil(durationNs);
  } else {
    const slice = Math.max(1, Math.ceil(durationNs / 100));
    for (let t = slice; ; t = Math.min(durationNs, t + slice)) {
      ctx.scheduler.runUntil(t);
      options.onProgress(t, durationNs);
      if (t === durationNs) break;
    }
  }
  machine.finish();
  sub.unsubscribe();
  const lostInterrupts = machine.irqs.pendingSince(durationNs - LOST_AFTER_NS);
  const notes = [...machine.notes];
  if (lostInterrupts.length > 0) notes.push(`model error: ${lostInterrupts.length} interrupt(s) raised but never taken: ${lostInterrupts.map((l) => `${l.name} (vCPU ${l.vcpu}, vector ${l.vector}, since ${l.since} ns)`).join(', ')}`);
  counter.flush();
  const cpuTimeNs: Record<string, number> = {};
  for (const a of ctx.scheduler.allActors()) {
    const ns = a.cpuTimeNs - (cpuAtStart.get(a) ?? 0);
    if (ns > 0) cpuTimeNs[a.name] = (cpuTimeNs[a.name] ?? 0) + ns;
  }
  const metrics = m.finish({ topology: topology.name, irqchip: topology.irqchip.kind, seed: topology.seed, virtualTimeNs: durationNs, events: ctx.scheduler.executed, cpuTimeNs });
  // kvm_exit names the vCPU by its position (KVM's vcpu_idx); report it by the topology's id.
  const perVcpu: Record<string, Record<string, number>> = {};
  for (const [idx, reasons] of Object.entries(metrics.exits.perVcpu)) perVcpu[String(topology.vcpus[Number(idx)]?.id ?? idx)] = reasons;
  metrics.exits.perVcpu = perVcpu;
  return { metrics, firstDelivery: first.delivery, trace: all, notes, lostInterrupts, ctx };
}
