import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatFtrace, toChromeTrace } from '@virq/core';
import { DEFAULT_PRESET, ProgressBar, loadTopologyFile, parseTopology, presetDocument, renderHtmlReport, renderMermaid, renderMetricsTable, runTopology, type Topology } from '@virq/machine';

export interface RunOptions {
  preset: string | undefined;
  topologyFile: string | undefined;
  seed: number | undefined;
  durationUs: number | undefined;
  perfetto: string | undefined;
  mermaid: string | undefined;
  report: string | undefined;
  quiet: boolean;
}

/** The topology a command works on: a file, a preset, or the default preset; seed/duration overrides. */
export function resolveTopology(o: Pick<RunOptions, 'preset' | 'topologyFile' | 'seed' | 'durationUs'>): Topology {
  const base = o.topologyFile !== undefined ? loadTopologyFile(o.topologyFile) : parseTopology(presetDocument(o.preset ?? DEFAULT_PRESET));
  return { ...base, seed: o.seed ?? base.seed, durationUs: o.durationUs ?? base.durationUs };
}

export function commandRun(o: RunOptions, out: (s: string) => void): number {
  const topology = resolveTopology(o);
  const t0 = Date.now();
  const bar = new ProgressBar('virq run', ' µs of virtual time');
  const r = runTopology(topology, { keepTrace: true, onProgress: (d, t) => bar.update(Math.round(d / 1000), Math.round(t / 1000)) });
  bar.finish();
  const wallMs = Date.now() - t0;
  const m = r.metrics;
  out(`virq run: ${topology.name} — ${topology.vcpus.length} vCPUs, irqchip ${topology.irqchip.kind}, ${topology.devices.map((d) => `${d.name} (${d.kind}${'backend' in d ? `/${d.backend}` : ''})`).join(', ')}; ${topology.durationUs} µs virtual, seed ${topology.seed}`);
  for (const n of r.notes) out(`note: ${n}`);
  if (!o.quiet) {
    out('');
    out('First delivery (device notification → guest handler):');
    out(formatFtrace(r.firstDelivery));
  }
  out(renderMetricsTable([{ label: {}, metrics: m }], 'table'));
  out('');
  out('VM exits by vCPU:');
  for (const [v, reasons] of Object.entries(m.exits.perVcpu)) out(`  vCPU ${v}: ${Object.entries(reasons).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  out('CPU time by actor (virtual):');
  for (const [a, ns] of Object.entries(m.cpuTimeNs).sort((x, y) => y[1] - x[1])) out(`  ${a.padEnd(24)} ${(ns / 1000).toFixed(1).padStart(10)} µs`);
  out(`${m.events} events simulated in ${wallMs} ms of wall time`);
  const perfetto = o.perfetto ?? path.join(os.tmpdir(), `virq-${topology.name}-seed${topology.seed}.perfetto.json`);
  fs.writeFileSync(perfetto, JSON.stringify(toChromeTrace(r.trace ?? [], { topology: topology.name, seed: String(topology.seed) })));
  out(`Perfetto trace: ${perfetto} (open in ui.perfetto.dev)`);
  if (o.mermaid !== undefined) {
    const text = renderMermaid(r.firstDelivery, `${topology.name}: first delivery`);
    if (o.mermaid === '-') out(text);
    else {
      fs.writeFileSync(o.mermaid, text);
      out(`Mermaid sequence diagram: ${o.mermaid}`);
    }
  }
  if (o.report !== undefined) {
    fs.writeFileSync(o.report, renderHtmlReport(`virq run: ${topology.name}`, [{ label: { topology: topology.name }, metrics: m }], r.firstDelivery));
    out(`HTML report: ${o.report}`);
  }
  return 0;
}
