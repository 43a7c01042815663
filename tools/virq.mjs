#!/usr/bin/env node
// Runs the `virq` command from the workspace sources (no build step needed), in this very
// process: the TypeScript loader is registered, then the CLI's entry module is imported. Being
// one process matters for `virq vhost-user-net`, which must get SIGINT itself to print its
// counters and exit 0 (the realvm scripts' contract).
import { register } from 'node:module';

register('./ts-loader.mjs', import.meta.url);
await import(new URL('../apps/cli/src/main.ts', import.meta.url).href);
