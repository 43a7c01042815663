import { METRIC_COLUMNS, type RunMetrics } from './metrics.js';

export type TableFormat = 'table' | 'markdown' | 'csv' | 'json';

export interface TableRow {
  /** The settings that make this row (`irqfd=on posted=off`). */
  label: Record<string, string>;
  metrics: RunMetrics;
}

/** The metrics of several runs side by side, one row per run. */
export function renderMetricsTable(rows: readonly TableRow[], format: TableFormat): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.label)))];
  const reasons = [...new Set(rows.flatMap((r) => Object.keys(r.metrics.exits.byReason)))].sort();
  const user = [...new Set(rows.flatMap((r) => Object.keys(r.metrics.userspaceExits.byReason)))].sort();
  const header = [...keys, ...METRIC_COLUMNS.map((c) => c.name), ...reasons.map((r) => `exit ${r}`), ...user.map((r) => `user ${r.replace(/^KVM_EXIT_/, '')}`)];
  const body = rows.map((r) => [
    ...keys.map((k) => r.label[k] ?? ''),
    ...METRIC_COLUMNS.map((c) => fmt(c.get(r.metrics))),
    ...reasons.map((x) => String(r.metrics.exits.byReason[x] ?? 0)),
    ...user.map((x) => String(r.metrics.userspaceExits.byReason[x] ?? 0)),
  ]);
  switch (format) {
    case 'json':
      return JSON.stringify(rows.map((r) => ({ ...r.label, metrics: { ...r.metrics, latencySamples: undefined } })), null, 2);
    case 'csv':
      return [header, ...body].map((line) => line.map(csvCell).join(',')).join('\n');
    case 'markdown':
      return [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i < keys.length ? '---' : '---:')).join(' | ')} |`, ...body.map((l) => `| ${l.join(' | ')} |`)].join('\n');
    case 'table': {
      const widths = header.map((h, i) => Math.max(h.length, ...body.map((l) => l[i]!.length)));
      const line = (cells: string[]): string => cells.map((c, i) => (i < keys.length ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
      return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
    }
  }
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return '-';
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
