import type { Actor, SimContext, TraceEvent } from '@virq/core';
import type { DependencyContainer } from 'tsyringe';
import type { GuestIrqDomain } from './guest/irq-domain.js';
import type { Topology } from './topology.js';

/** What the scenario runner needs of a composed machine, whatever its architecture. */
export interface ComposedMachine {
  readonly ctx: SimContext;
  readonly topology: Topology;
  /** This machine's DI container (core Tokens → its controller's implementations). */
  readonly container: DependencyContainer;
  readonly irqs: GuestIrqDomain;
  /** QEMU's main loop thread. */
  readonly mainLoop: Actor;
  /** Effective settings and fallbacks the machine chose. */
  readonly notes: string[];
  /** Starts the vCPU run loops. */
  start(): void;
  /** Schedules the topology's workload over [0, durationNs). */
  startWorkload(durationNs: number): void;
  /** Sees every trace event of the run (latency bookkeeping). */
  observe(e: TraceEvent): void;
  /** The run is over: settle what is accounted lazily (CPU time of running threads). */
  finish(): void;
}
