import fs from 'node:fs';
import { DEFAULT_PRESET, ProgressBar, compareTopologies, parseVary, presetDocument, renderHtmlReport, renderMetricsTable, type TableFormat } from '@virq/machine';
import { parseTopologyDocument } from './topology-doc.js';

export interface CompareCliOptions {
  topologyFile: string | undefined;
  preset: string | undefined;
  vary: string[];
  format: TableFormat;
  workers: number | undefined;
  report: string | undefined;
}

export async function commandCompare(o: CompareCliOptions, out: (s: string) => void): Promise<number> {
  const doc = o.topologyFile !== undefined ? parseTopologyDocument(o.topologyFile) : presetDocument(o.preset ?? DEFAULT_PRESET);
  const dims = o.vary.map(parseVary);
  const bar = new ProgressBar('virq compare', ' cells');
  const rows = await compareTopologies(doc, dims, { ...(o.workers !== undefined ? { workers: o.workers } : {}), onProgress: (d, t) => bar.update(d, t) });
  bar.finish();
  out(renderMetricsTable(rows, o.format));
  if (o.report !== undefined) {
    fs.writeFileSync(o.report, renderHtmlReport(`virq compare: ${String(doc['name'] ?? o.topologyFile ?? o.preset)}`, rows));
    out(`HTML report: ${o.report}`);
  }
  return 0;
}
