import { parseArgs } from 'node:util';
import { VirqError } from '@virq/core';
import { presetNames, runGoldenCli, runVhostUserNetCli, varyKnobs, type TableFormat } from '@virq/machine';
import { commandCompare } from './commands/compare.js';
import { commandFlow, commandFlows } from './commands/flows.js';
import { commandRun } from './commands/run.js';

export const HELP = `virq — notifications and interrupts in virtualization, modelled and measured

Usage:
  virq run [TOPOLOGY.yaml|json] [--preset NAME] [--seed N] [--duration-us N]
           [--perfetto FILE] [--mermaid FILE|-] [--report FILE.html] [--quiet]
      Build the machine (default: preset x86-q35 — 2 vCPUs, virtio-net on vhost-user, a VFIO
      NIC with posted interrupts, a serial port on IRQ 4), run its workload, print the first
      delivery's trace (ftrace style), the metrics, and write a Perfetto trace.
  virq compare [TOPOLOGY|--preset NAME] --vary KEY=V1,V2 [--vary ...]
           [--format table|markdown|csv|json] [--workers N] [--report FILE.html]
      Run the matrix of settings (one worker thread per core) and print the metrics side by side.
      Keys: ${varyKnobs().join(', ')}.
  virq flows                      List the 19 flows of FLOWS.md.
  virq flow ID [--variant V] [--seed N] [--perfetto FILE] [--mermaid FILE|-]
      Run one flow (F1..F19) and print its trace; checks the order against FLOWS.md.
  virq presets                    List the built-in machines.
  virq golden FILE...             Replay recorded KVM irqchip scenarios; one line each, then
                                  "N passed, M failed".
  virq vhost-user-net --socket PATH [--client] [--mode macswap|loopback|icmpecho|count]
           [--poll] [--reconnect] [--queues N]
      Serve a real vhost-user-net front end (QEMU) on a Unix socket until SIGINT.
  virq help

Presets: ${presetNames().join(', ')}.
`;

type Out = (s: string) => void;

/** Runs the `virq` command line; returns the exit status. */
export async function runCli(argv: readonly string[], out: Out = (s) => console.log(s), err: Out = (s) => console.error(s)): Promise<number> {
  const [command = 'help', ...rest] = argv;
  // `virq <command> --help` (or -h): the usage, not an unknown-option error.
  if (rest.some((a) => a === '--help' || a === '-h') && !rest.includes('--')) {
    out(HELP);
    return 0;
  }
  try {
    switch (command) {
      case 'run': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: {
            preset: { type: 'string' },
            seed: { type: 'string' },
            'duration-us': { type: 'string' },
            perfetto: { type: 'string' },
            mermaid: { type: 'string' },
            report: { type: 'string' },
            quiet: { type: 'boolean' },
          },
          strict: true,
        });
        if (positionals.length > 1) throw usage('run takes at most one topology file');
        if (positionals.length === 1 && values.preset !== undefined) throw usage('run takes a topology file or --preset, not both');
        return commandRun(
          {
            preset: values.preset,
            topologyFile: positionals[0],
            // The same ranges a topology file has (topology.seed, topology.durationUs): an
            // override must not bypass them (a 10^12 µs run would never end).
            seed: optInt('seed', values.seed, 0, 2 ** 32 - 1),
            durationUs: optInt('duration-us', values['duration-us'], 1, 60_000_000),
            perfetto: values.perfetto,
            mermaid: values.mermaid,
            report: values.report,
            quiet: values.quiet ?? false,
          },
          out,
        );
      }
      case 'compare': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: { preset: { type: 'string' }, vary: { type: 'string', multiple: true }, format: { type: 'string' }, workers: { type: 'string' }, report: { type: 'string' } },
          strict: true,
        });
        const format = (values.format ?? 'table') as TableFormat;
        if (!['table', 'markdown', 'csv', 'json'].includes(format)) throw usage(`--format takes table, markdown, csv or json, got "${format}"`);
        if ((values.vary ?? []).length === 0) throw usage('compare needs at least one --vary KEY=V1,V2');
        if (positionals.length > 1) throw usage('compare takes at most one topology file');
        if (positionals.length === 1 && values.preset !== undefined) throw usage('compare takes a topology file or --preset, not both');
        return await commandCompare({ topologyFile: positionals[0], preset: values.preset, vary: values.vary ?? [], format, workers: optInt('workers', values.workers, 0, 256), report: values.report }, out);
      }
      case 'flows':
        return commandFlows(out);
      case 'flow': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: { variant: { type: 'string' }, seed: { type: 'string' }, perfetto: { type: 'string' }, mermaid: { type: 'string' } },
          strict: true,
        });
        if (positionals.length !== 1) throw usage('flow takes one id, e.g. `virq flow F11`');
        return commandFlow(positionals[0]!, { variant: values.variant, seed: optInt('seed', values.seed, 0, 2 ** 32 - 1) ?? 1, perfetto: values.perfetto, mermaid: values.mermaid }, out);
      }
      case 'presets':
        for (const p of presetNames()) out(p);
        return 0;
      case 'golden': {
        if (rest.length === 0) throw usage('golden takes one or more recorded scenario files');
        const r = runGoldenCli(rest);
        for (const l of r.lines) out(l);
        return r.failed === 0 ? 0 : 1;
      }
      case 'vhost-user-net':
        return await runVhostUserNetCli([...rest]);
      case 'help':
      case '--help':
      case '-h':
        out(HELP);
        return 0;
      default:
        err(`virq: unknown command "${command}"\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`virq ${command}: ${e.message}\n\n${HELP}`);
      return 2;
    }
    if (e instanceof VirqError) {
      err(`virq ${command}: ${e.message} [${e.code}]`);
      return 1;
    }
    if (typeof e === 'object' && e !== null && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      err(`virq ${command}: ${String((e as { message?: unknown }).message)}\n\n${HELP}`);
      return 2;
    }
    // A file the user named could not be written or read (--perfetto /no/such/dir/x.json):
    // the system's message, not a stack trace.
    // (Checked by shape: a system error may come from another realm than this module's Error.)
    if (typeof e === 'object' && e !== null && 'syscall' in e && 'code' in e) {
      err(`virq ${command}: ${String((e as { message?: unknown }).message)}`);
      return 1;
    }
    throw e;
  }
}

class UsageError extends Error {}
function usage(m: string): UsageError {
  return new UsageError(m);
}

function optInt(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  // Number('') and Number(' ') are 0: an empty value is not a number.
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new VirqError('cli.bad-option', `--${name} takes an integer in [${min}, ${max}], got "${v}"`);
  return n;
}
