#!/usr/bin/env node
// The README's test command: typecheck every package (one tsc over the workspace), lint them
// (tools/lint.mjs), then run every jest project once, and print one closing line
// `tests: N passed, N failed, N skipped`. Extra arguments go to jest (e.g. a path filter).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status ?? 1;
const extra = process.argv.slice(2);
let failed = false;

if (extra.length === 0) {
  console.log('== typecheck (tsc over the workspace)');
  if (run(bin('tsc'), ['-p', 'tsconfig.json']) !== 0) failed = true;
  console.log('== lint');
  for (const base of ['packages', 'apps']) {
    for (const d of fs.readdirSync(path.join(root, base))) {
      if (run(process.execPath, [path.join(root, 'tools/lint.mjs'), path.join(base, d)]) !== 0) failed = true;
    }
  }
}
console.log('== jest');
const out = path.join(root, '.test-results.json');
fs.rmSync(out, { force: true });
const status = run(bin('jest'), ['--maxWorkers=2', '--json', `--outputFile=${out}`, ...extra]);
if (!fs.existsSync(out)) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const r = JSON.parse(fs.readFileSync(out, 'utf8'));
const skipped = r.numPendingTests + r.numTodoTests;
const suitesFailed = r.numFailedTestSuites;
if (suitesFailed > 0) console.log(`${suitesFailed} test suite(s) failed to run or had failures`);
if (failed) console.log('typecheck or lint failed (see above)');
const failures = r.numFailedTests + (failed ? 1 : 0) + (r.numRuntimeErrorTestSuites ?? 0);
console.log(`tests: ${r.numPassedTests} passed, ${failures} failed, ${skipped} skipped`);
process.exit(status !== 0 || failed || failures > 0 ? 1 : 0);
