#!/usr/bin/env node
// Creates the skeleton of a workspace package: node tools/new-package.mjs <dir> <name> "<description>" [dep ...]
// Deps starting with @virq/ become workspace:* links; others are taken as name@range.
import fs from 'node:fs';
import path from 'node:path';

const [dir, name, description, ...deps] = process.argv.slice(2);
if (!dir || !name || !description) {
  console.error('usage: new-package.mjs <dir> <name> "<description>" [dep ...]');
  process.exit(2);
}
const depth = dir.split('/').length;
const up = '../'.repeat(depth);
const dependencies = {};
for (const d of deps) {
  if (d.startsWith('@virq/')) dependencies[d] = 'workspace:*';
  else {
    const at = d.lastIndexOf('@');
    dependencies[d.slice(0, at)] = d.slice(at + 1);
  }
}
fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
fs.mkdirSync(path.join(dir, 'test'), { recursive: true });
fs.mkdirSync(path.join(dir, 'bench'), { recursive: true });
const pkg = {
  name,
  version: '0.1.0',
  description,
  license: 'MIT',
  type: 'module',
  main: './dist/index.js',
  types: './dist/index.d.ts',
  exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
  files: ['dist', 'README.md'],
  sideEffects: false,
  scripts: {
    build: 'tsc -p tsconfig.build.json',
    typecheck: 'tsc -p tsconfig.json --noEmit',
    test: 'jest',
    lint: `node ${up}tools/lint.mjs .`,
    bench: `node --import ${up}tools/ts-register.mjs bench/main.ts`,
  },
  dependencies,
  publishConfig: { access: 'public' },
};
const write = (f, s) => { if (!fs.existsSync(path.join(dir, f))) fs.writeFileSync(path.join(dir, f), s); };
write('package.json', JSON.stringify(pkg, null, 2) + '\n');
write('tsconfig.json', JSON.stringify({ extends: `${up}tsconfig.base.json`, compilerOptions: { rootDir: up.slice(0, -1), noEmit: true, types: ['node', 'jest'] }, include: ['src', 'test', 'bench'] }, null, 2) + '\n');
write('tsconfig.build.json', JSON.stringify({ extends: `${up}tsconfig.base.json`, compilerOptions: { rootDir: 'src', outDir: 'dist', paths: {}, noEmit: false }, include: ['src'] }, null, 2) + '\n');
write('jest.config.cjs', `module.exports = { ...require('${up}jest.preset.cjs'), displayName: '${name}' };\n`);
