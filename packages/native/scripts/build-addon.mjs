#!/usr/bin/env node
// Builds the virq_native N-API addon with node-gyp (run by `pnpm install` through the
// package's `install` script, or by hand: `npm run build:addon`). A failed build does not
// fail the install: @virq/native then reports why in nativeSupport() and its tests skip.
// Set VIRQ_NATIVE_STRICT=1 to make a failed build an error (CI).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const strict = process.env.VIRQ_NATIVE_STRICT === '1';

if (process.platform !== 'linux') {
  console.log(`@virq/native: skipping the addon build (platform ${process.platform}; the addon is Linux-only)`);
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [];
  // npm and pnpm export the node-gyp they bundle to lifecycle scripts.
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  candidates.push(path.join(prefix, 'lib/node_modules/node-gyp/bin/node-gyp.js'));
  candidates.push(path.join(prefix, 'lib/node_modules/pnpm/dist/node_modules/node-gyp/bin/node-gyp.js'));
  for (const c of candidates) if (fs.existsSync(c)) return { cmd: process.execPath, pre: [c] };
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return { cmd: which.stdout.trim(), pre: [] };
  return undefined;
}

const gyp = findNodeGyp();
if (!gyp) {
  const msg = '@virq/native: node-gyp not found (install npm or node-gyp); the addon was not built';
  if (strict) { console.error(msg); process.exit(1); }
  console.warn(msg);
  process.exit(0);
}
const args = [...gyp.pre, 'rebuild'];
// Use the installed Node headers when they are there (no download needed).
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (fs.existsSync(path.join(prefix, 'include/node/node_api.h')) && fs.existsSync(path.join(prefix, 'include/node/common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}
const t0 = Date.now();
const r = spawnSync(gyp.cmd, args, { cwd: pkgDir, stdio: 'inherit' });
if (r.status !== 0) {
  const msg = `@virq/native: node-gyp rebuild failed (status ${r.status}); the addon was not built`;
  if (strict) { console.error(msg); process.exit(1); }
  console.warn(msg);
  process.exit(0);
}
console.log(`@virq/native: addon built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
