// One jest run over every package (what `pnpm test` and CI use); each package also has its
// own jest.config.cjs for `nx test <pkg>`.
const fs = require('node:fs');
const path = require('node:path');
const dirs = ['packages', 'apps'].flatMap((d) =>
  fs.existsSync(d) ? fs.readdirSync(d).map((n) => path.join(d, n)) : [],
).filter((d) => fs.existsSync(path.join(d, 'jest.config.cjs')));
module.exports = { projects: dirs.map((d) => `<rootDir>/${d}`) };
