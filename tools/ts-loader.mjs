// ESM loader hooks: resolves `@virq/<pkg>` to packages/<pkg>/src/index.ts and `./x.js` to
// `./x.ts` when only the .ts exists, and compiles .ts with swc (legacy decorators +
// decorator metadata, as tsyringe needs). Published packages never use this: they ship dist/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import swc from '@swc/core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const swcOptions = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

export async function resolve(specifier, context, nextResolve) {
  const pkg = /^@virq\/([a-z0-9-]+)$/.exec(specifier);
  if (pkg) {
    for (const base of ['packages', 'apps']) {
      const file = path.join(root, base, pkg[1], 'src', 'index.ts');
      if (fs.existsSync(file)) return { url: pathToFileURL(file).href, shortCircuit: true, format: 'module' };
    }
  }
  if ((specifier.startsWith('./') || specifier.startsWith('../')) && specifier.endsWith('.js') && context.parentURL?.startsWith('file:')) {
    const target = new URL(specifier, context.parentURL);
    const ts = fileURLToPath(target).replace(/\.js$/, '.ts');
    if (!fs.existsSync(fileURLToPath(target)) && fs.existsSync(ts)) {
      return { url: pathToFileURL(ts).href, shortCircuit: true, format: 'module' };
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const file = fileURLToPath(url);
    const out = swc.transformSync(fs.readFileSync(file, 'utf8'), { ...swcOptions, filename: file });
    return { format: 'module', source: out.code, shortCircuit: true };
  }
  return nextLoad(url, context);
}
