import { TraceRecorder, createSimContext, type SimContext, type TraceEvent } from '@virq/core';
import { MachineErrorCode, machineError } from '../errors.js';
import type { FlowSpec } from './expected.js';
import { FLOW_SPECS } from './expected.js';
import type { FlowDefinition, FlowRun } from './registry.js';

/** The spec of flow `id` from expected.ts. */
export function specOf(id: string): FlowSpec {
  const s = FLOW_SPECS.find((x) => x.id === id);
  if (s === undefined) throw machineError(MachineErrorCode.FlowUnknown, `no expected function order for flow ${id} in expected.ts`);
  return s;
}

/** What a flow's body gets: a fresh context recording every trace event, and a place for notes. */
export interface FlowScope {
  readonly ctx: SimContext;
  readonly variant: string;
  readonly notes: string[];
  /** Index into the trace: events from here on are the flow proper (before: setup). */
  mark(): void;
}

/**
 * Defines a flow: `body` composes its machine on `scope.ctx`, calls `scope.mark()` where the
 * flow starts (setup before it is left out of the returned trace), and drives it.
 */
export function defineFlow(id: string, body: (scope: FlowScope) => void): FlowDefinition {
  const spec = specOf(id);
  const variants = Object.keys(spec.variants);
  return {
    spec,
    run(variant?: string, seed = 1): FlowRun {
      const v = variant ?? variants[0]!;
      if (!variants.includes(v)) {
        throw machineError(MachineErrorCode.FlowUnknown, `flow ${id} has no variant '${v}': its variants are ${variants.join(', ')}`, { id, variant: v, variants });
      }
      const ctx = createSimContext({ seed });
      const rec = new TraceRecorder<TraceEvent>(ctx.trace.events$);
      let from = 0;
      const notes: string[] = [];
      body({ ctx, variant: v, notes, mark: () => void (from = rec.events.length) });
      const trace = rec.events.slice(from);
      rec.stop();
      return { id: spec.id, title: spec.title, variant: v, trace, notes };
    },
  };
}
