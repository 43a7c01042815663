// `node --import ./tools/ts-register.mjs file.ts` runs virq's TypeScript sources directly
// (benchmarks, the in-repo `virq` command, worker threads): see ts-loader.mjs.
import { register } from 'node:module';
register('./ts-loader.mjs', import.meta.url);
