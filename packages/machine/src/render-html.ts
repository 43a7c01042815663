import { formatFtrace, type TraceEvent } from '@virq/core';
import { renderMetricsTable, type TableRow } from './render-table.js';

/**
 * A self-contained HTML report: the metrics table, a latency histogram per run (inline SVG,
 * no scripts, no network), and the first delivery's trace.
 */
export function renderHtmlReport(title: string, rows: readonly TableRow[], firstDelivery: readonly TraceEvent[] = []): string {
  const md = renderMetricsTable(rows, 'csv').split('\n').map((l) => l.split(','));
  const [head, ...body] = md;
  const table = `<table><thead><tr>${head!.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  const charts = rows
    .map((r) => {
      const name = Object.entries(r.label).map(([k, v]) => `${k}=${v}`).join(' ') || r.metrics.topology;
      return `<figure><figcaption>${esc(name)}: device event → guest handler latency (${r.metrics.latencyNs.count} samples)</figcaption>${histogramSvg(r.metrics.latencySamples)}</figure>`;
    })
    .join('\n');
  const trace = firstDelivery.length ? `<h2>First delivery</h2><pre>${esc(formatFtrace(firstDelivery))}</pre>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:1em 2em 1em 0}figcaption{font-size:12px;color:#555}
pre{background:#f8f8f8;padding:1em;overflow:auto;font-size:12px}
</style></head><body>
<h1>${esc(title)}</h1>
<h2>Metrics</h2>
${table}
<h2>Latency histograms</h2>
${charts}
${trace}
</body></html>
`;
}

function histogramSvg(samples: readonly number[]): string {
  const W = 360;
  const H = 160;
  if (samples.length === 0) return `<svg width="${W}" height="40" role="img"><text x="4" y="24">no samples</text></svg>`;
  const sorted = [...samples].sort((a, b) => a - b);
  const lo = sorted[0]!;
  const hi = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.999) - 1)]!;
  const nb = 30;
  const width = Math.max(1, (hi - lo) / nb);
  const counts = new Array<number>(nb).fill(0);
  for (const v of sorted) counts[Math.min(nb - 1, Math.floor((v - lo) / width))]!++;
  const max = Math.max(...counts);
  const bw = (W - 40) / nb;
  const bars = counts
    .map((c, i) => {
      const h = max === 0 ? 0 : Math.round((c / max) * (H - 40));
      return `<rect x="${(30 + i * bw).toFixed(1)}" y="${H - 20 - h}" width="${(bw - 1).toFixed(1)}" height="${h}" fill="#4a7bd0"><title>${Math.round(lo + i * width)}–${Math.round(lo + (i + 1) * width)} ns: ${c}</title></rect>`;
    })
    .join('');
  return `<svg width="${W}" height="${H}" role="img" xmlns="http://www.w3.org/2000/svg"><line x1="30" y1="${H - 20}" x2="${W - 10}" y2="${H - 20}" stroke="#999"/>${bars}<text x="30" y="${H - 4}" font-size="11">${Math.round(lo)} ns</text><text x="${W - 10}" y="${H - 4}" font-size="11" text-anchor="end">${Math.round(hi)} ns</text></svg>`;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
