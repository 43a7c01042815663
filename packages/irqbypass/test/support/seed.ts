import * as fs from 'node:fs';
import * as path from 'node:path';

export interface SeedLine {
  readonly task: string;
  readonly cpu: number;
  readonly fn: string;
  readonly caller: string;
}

/** /work/shared/seeds/002_*.txt, the VFIO/irqbypass ftrace capture. */
export function readSeed002(): { filter: Set<string>; lines: SeedLine[] } {
  const dir = path.resolve(__dirname, '../../../../../shared/seeds');
  const file = fs.readdirSync(dir).find((f) => f.startsWith('002_'));
  if (file === undefined) throw new Error(`seed 002 not found in ${dir}`);
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  const rows = text.split('\n');
  const filter = new Set<string>();
  const start = rows.findIndex((r) => r.trim() === '# cat set_ftrace_filter');
  for (let i = start + 1; i < rows.length; i++) {
    const m = /^(\w+) \[\w+\]$/.exec(rows[i]!.trim());
    if (m === null) break;
    filter.add(m[1]!);
  }
  const lines: SeedLine[] = [];
  for (const r of rows) {
    const m = /^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+[\d.]+:\s+(\w+) <-(\w+)\s*$/.exec(r);
    if (m !== null) lines.push({ task: m[1]!, cpu: Number(m[3]), fn: m[4]!, caller: m[5]! });
  }
  return { filter, lines };
}
