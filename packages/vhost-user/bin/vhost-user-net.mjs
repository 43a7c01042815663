#!/usr/bin/env node
// Runs `virq vhost-user-net` straight from the TypeScript sources (until apps/cli wires it):
//   node packages/vhost-user/bin/vhost-user-net.mjs --socket /tmp/vu.sock [--mode icmpecho] [--poll]
// bench.sh / p3-bench.sh call it as `CMD SOCK`, so a trailing bare path is the socket.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
await import(pathToFileURL(path.join(here, '..', '..', '..', 'tools', 'ts-register.mjs')).href);
const { runVhostUserNetCli } = await import(pathToFileURL(path.join(here, '..', 'src', 'index.ts')).href);
process.exitCode = await runVhostUserNetCli(process.argv.slice(2));
