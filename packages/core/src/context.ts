import { CostModel } from './cost.js';
import { Scheduler } from './scheduler.js';
import { TraceBus } from './trace.js';

/**
 * What every simulated component is built with: the clock, the cost table and the trace bus
 * of one machine. Packages take a `SimContext` in their constructors (or resolve the same
 * three from the DI container) so a machine can hand one set to all of them.
 */
export interface SimContext {
  readonly scheduler: Scheduler;
  readonly costs: CostModel;
  readonly trace: TraceBus;
}

export interface SimContextOptions {
  seed?: number;
  costs?: Partial<Record<string, number>>;
}

export function createSimContext(options: SimContextOptions = {}): SimContext {
  const scheduler = new Scheduler({ seed: options.seed ?? 1 });
  return { scheduler, costs: new CostModel(options.costs ?? {}), trace: new TraceBus(scheduler) };
}
