import { createSimContext, type SimContext, type TraceEvent } from '@virq/core';
import { MetricsCollector, TraceMetricsCounter, type RunMetrics } from './metrics.js';
import { archOf, type Topology } from './topology.js';
import { X86Machine } from './x86/x86-machine.js';
import { ArmMachine } from './arm/arm-machine.js';
import type { ComposedMachine } from './machine.js';

export interface ScenarioResult {
  metrics: RunMetrics;
  /** The first device-to-guest delivery: from the first device notification to the guest handler. */
  firstDelivery: TraceEvent[];
  /** Every event, when `keepTrace` was asked for. */
  trace: TraceEvent[] | undefined;
  /** Effective settings and fallbacks the machine chose (e.g. "irqfd off: F8 path"). */
  notes: string[];
  ctx: SimContext;
}

export interface RunOptions {
  /** Keep the whole trace (for --perfetto and reports). */
  keepTrace?: boolean;
  /** Called as virtual time advances (the run goes in 1% slices when given). */
  onProgress?: (doneNs: number, totalNs: number) => void;
}

/** Functions that mark a device starting a delivery toward the guest. */
const DELIVERY_START = new Set(['pit_irq_timer', 'apic_send_ipi', 'vgic_v3_dispatch_sgi', 'vhost_vring_call_split', 'vhost_signal', 'virtio_notify', 'vfio_msihandler', 'hw:vtd_post_interrupt', 'serial_update_irq', 'vgic_its_inject_cached_translation', 'vgic_its_trigger_msi', 'kvm_vgic_inject_irq', 'hw:its_translate', 'hw:amdvi_ga_interrupt']);
/** The guest handler's EOI ends a delivery (x86 LAPIC EOI, virtualised or trapped; GIC ICV_EOIR1). */
const DELIVERY_END = new Set(['native_apic_mem_eoi', 'gic_eoi_irq']);
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
  const first: TraceEvent[] = [];
  let firstState: 'wait' | 'open' | 'done' = 'wait';
  const durationNs = topology.durationUs * 1000;
  const machine: ComposedMachine = archOf(topology.irqchip.kind) === 'x86' ? new X86Machine(ctx, topology) : new ArmMachine(ctx, topology);
  // Boot (firmware, driver probe) is done; the measurement starts here.
  const sub = ctx.trace.events$.subscribe((e) => {
    all?.push(e);
    machine.observe(e);
    // A device-side decision not to notify (vhost_vring_call_split traces it too) starts nothing.
    if (firstState === 'wait' && DELIVERY_START.has(e.fn) && !(e.kind === 'vring.should_notify' && (e.args as { notify?: boolean }).notify === false)) firstState = 'open';
    if (firstState === 'open') {
      first.push(e);
      if (DELIVERY_END.has(e.fn) || first.length >= 400) firstState = 'done';
    }
    counter.observe(e);
  });
  machine.irqs.onLatency = (ns) => m.latency.record(ns);
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
  counter.flush();
  const cpuTimeNs: Record<string, number> = {};
  for (const a of ctx.scheduler.allActors()) if (a.cpuTimeNs > 0) cpuTimeNs[a.name] = (cpuTimeNs[a.name] ?? 0) + a.cpuTimeNs;
  const metrics = m.finish({ topology: topology.name, irqchip: topology.irqchip.kind, seed: topology.seed, virtualTimeNs: durationNs, events: ctx.scheduler.executed, cpuTimeNs });
  // kvm_exit names the vCPU by its position (KVM's vcpu_idx); report it by the topology's id.
  const perVcpu: Record<string, Record<string, number>> = {};
  for (const [idx, reasons] of Object.entries(metrics.exits.perVcpu)) perVcpu[String(topology.vcpus[Number(idx)]?.id ?? idx)] = reasons;
  metrics.exits.perVcpu = perVcpu;
  return { metrics, firstDelivery: firstState === 'wait' ? [] : first, trace: all, notes: machine.notes, ctx };
}
