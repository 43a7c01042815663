import * as fs from 'node:fs';
import * as path from 'node:path';

export interface SeedLine {
  readonly task: string;
  readonly cpu: number;
  readonly fn: string;
  readonly caller: string;
}

/** Where the seeds live: ../shared/seeds next to the checkout. */
export const SEED_DIR = path.resolve(__dirname, '../../../../../shared/seeds');

/**
 * ../shared/seeds/002_*.txt, the VFIO/irqbypass ftrace capture — or undefined, with the reason
 * printed, when the checkout has no ../shared beside it (a clone elsewhere): the comparison
 * with the capture is then not run.
 */
export function readSeed002(): { filter: Set<string>; lines: SeedLine[] } | undefined {
  const dir = SEED_DIR;
  if (!fs.existsSync(dir)) {
    console.warn(`seed 002 not found: ${dir} does not exist (no ../shared next to this checkout); the seed comparison is skipped`);
    return undefined;
  }
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
