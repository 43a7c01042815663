/**
 * P3 throughput comparison (../shared/realvm/P3.md): DPDK's virtio-user front end (a second
 * testpmd, one busy core) drives, alternately, DPDK's vhost PMD and our vhost-user-net back
 * end (`bin/vhost-user-net.mjs --poll`, pinned to the other core by p3-bench.sh), on the
 * same machine in the same run. Prints per-test medians, per-pair ratios and their median.
 *   cd packages/vhost-user && npm run bench:p3 -- [SECS=5] [ROUNDS=3] [TESTS="txonly rt loop"]
 * Needs dpdk-testpmd (dpdk-dev, librte-net-vhost23, librte-net-virtio23, librte-mempool-ring23).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const REALVM = '/work/shared/realvm';
const secs = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
const tests = (process.argv[4] ?? 'txonly rt loop').split(/\s+/).filter(Boolean);
const ours = [process.execPath, path.join(here, '..', 'bin', 'vhost-user-net.mjs'), '--poll', '--socket'];

if (spawnSync('sh', ['-c', 'command -v dpdk-testpmd']).status !== 0) {
  process.stdout.write('p3: dpdk-testpmd is not installed (apt-get install dpdk-dev librte-net-vhost23 librte-net-virtio23 librte-mempool-ring23); nothing measured\n');
  process.exit(0);
}
const dir = mkdtempSync(path.join(tmpdir(), 'virq-p3-'));
for (const f of readdirSync(REALVM)) if (f !== 'out') cpSync(path.join(REALVM, f), path.join(dir, f), { recursive: true });

type Row = Record<string, string>;
function p3(backend: string[]): Row[] {
  const r = spawnSync('./p3-bench.sh', [String(secs), '1', ...backend], { cwd: dir, env: { ...process.env, P3_TESTS: tests.join(' ') }, encoding: 'utf8', timeout: 600_000 });
  const outs = readdirSync(path.join(dir, 'out')).filter((d) => d.startsWith('p3-')).sort();
  const tsv = path.join(dir, 'out', outs[outs.length - 1]!, 'results.tsv');
  if (!existsSync(tsv)) throw new Error(`p3-bench.sh produced no results: ${r.stdout}\n${r.stderr}`);
  const [head, ...lines] = readFileSync(tsv, 'utf8').trim().split('\n');
  const cols = head!.split('\t');
  return lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i]!, v])));
}

const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const col = (t: string): string => (t === 'txonly' ? 'fe_tx_pps' : 'fe_rx_pps');
const res: Record<string, { dpdk: number[]; virq: number[] }> = {};
for (const t of tests) res[t] = { dpdk: [], virq: [] };
for (let i = 0; i < rounds; i++) {
  // Alternate which back end goes first in each round (noisy shared host).
  const order = i % 2 === 0 ? (['dpdk', 'virq'] as const) : (['virq', 'dpdk'] as const);
  for (const who of order) {
    for (const row of p3(who === 'dpdk' ? [] : ours)) res[row['test']!]![who].push(Number(row[col(row['test']!)]));
  }
  process.stdout.write(`round ${i + 1}/${rounds}: ${tests.map((t) => `${t} dpdk=${(res[t]!.dpdk.at(-1)! / 1e6).toFixed(2)}M virq=${(res[t]!.virq.at(-1)! / 1e6).toFixed(2)}M`).join('  ')}\n`);
}
process.stdout.write(`\nP3, ${rounds} alternating rounds × ${secs} s, one busy core each (front end core 0, back end core 1)\n`);
process.stdout.write('test    measured                     DPDK vhost PMD   virq (TS, --poll)   ratio of medians   median per-pair ratio\n');
for (const t of tests) {
  const { dpdk, virq } = res[t]!;
  const pairs = dpdk.map((d, i) => virq[i]! / d);
  const what = t === 'txonly' ? 'front end → back end pps' : t === 'rt' ? 'back end → front end pps' : 'round trips/s (128 in flight)';
  process.stdout.write(`${t.padEnd(7)} ${what.padEnd(28)} ${(median(dpdk) / 1e6).toFixed(2).padStart(10)} Mpps ${(median(virq) / 1e6).toFixed(2).padStart(13)} Mpps ${(median(virq) / median(dpdk)).toFixed(2).padStart(14)}× ${median(pairs).toFixed(2).padStart(18)}×\n`);
}
rmSync(dir, { recursive: true, force: true });
