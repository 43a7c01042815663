import fs from 'node:fs';
import { Histogram, formatFtrace, toChromeTrace } from '@virq/core';
import { runPingPong } from './pingpong.js';

export interface RunOptions {
  seed: number;
  rounds: number;
  perfetto: string | undefined;
  quiet: boolean;
}

export function commandRun(opts: RunOptions, out: (s: string) => void): number {
  const r = runPingPong(opts.seed, opts.rounds);
  const perRound = r.trace.length / Math.max(1, r.roundTripsNs.length);
  if (!opts.quiet) {
    out('First delivery (kick → backend → call → injection → handler):');
    out(formatFtrace(r.trace.slice(0, Math.ceil(perRound))));
  }
  const h = new Histogram();
  for (const v of r.roundTripsNs) h.record(v);
  out(`rounds: ${r.roundTripsNs.length}  kicks: ${r.kicks}  calls: ${r.calls}  virtual time: ${r.ctx.scheduler.now} ns  events: ${r.ctx.scheduler.executed}`);
  out(`round trip: p50 ${h.percentile(50)} ns  p99 ${h.percentile(99)} ns`);
  out('CPU time per actor:');
  for (const a of r.ctx.scheduler.allActors()) out(`  ${a.name.padEnd(12)} ${String(a.cpuTimeNs).padStart(10)} ns`);
  if (opts.perfetto !== undefined) {
    fs.writeFileSync(opts.perfetto, JSON.stringify(toChromeTrace(r.trace, { seed: String(opts.seed) })));
    out(`Perfetto trace written to ${opts.perfetto} (open in ui.perfetto.dev)`);
  }
  return 0;
}
