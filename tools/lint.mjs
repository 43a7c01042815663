#!/usr/bin/env node
// virq's conventions, checked on a package's src/ (ARCHITECTURE.md "Conventions"):
// no default exports, no `any`, no import of another package's internals (only `@virq/<name>`),
// no relative import that leaves the package, and relative imports written with `.js` (ESM).
import fs from 'node:fs';
import path from 'node:path';

const pkgDir = path.resolve(process.argv[2] ?? '.');
const problems = [];
function walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts')) check(p);
  }
}
function check(file) {
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const at = `${path.relative(process.cwd(), file)}:${i + 1}`;
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*export\s+default\b/.test(code)) problems.push(`${at}: default export (use named exports)`);
    if (/(:\s*any\b|\bas\s+any\b|<any>|\bany\[\])/.test(code)) problems.push(`${at}: \`any\` (use unknown or a real type)`);
    const m = /(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/.exec(code);
    if (m) {
      const spec = m[1];
      if (/^@virq\/[^/]+\/.+/.test(spec)) problems.push(`${at}: imports another package's internals (${spec}); use its public index`);
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        if (!target.startsWith(pkgDir + path.sep)) problems.push(`${at}: relative import leaves the package (${spec})`);
        if (file.includes(`${path.sep}src${path.sep}`) && !/\.(js|json)$/.test(spec)) problems.push(`${at}: relative import without .js extension (${spec})`);
      }
    }
  });
}
for (const sub of ['src', 'test', 'bench']) {
  const d = path.join(pkgDir, sub);
  if (fs.existsSync(d)) walk(d);
}
if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`lint: ${problems.length} problem(s) in ${path.basename(pkgDir)}`);
  process.exit(1);
}
console.log(`lint: ${path.basename(pkgDir)} ok`);
