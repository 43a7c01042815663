#!/usr/bin/env node
// Runs the `virq` command from the workspace sources (no build step needed).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const r = spawnSync(process.execPath, ['--import', path.join(root, 'tools/ts-register.mjs'), path.join(root, 'apps/cli/src/main.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
