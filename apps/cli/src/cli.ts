import { parseArgs } from 'node:util';
import { VirqError } from '@virq/core';
import { commandRun } from './commands/run.js';

export const HELP = `virq — notifications and interrupts in virtualization, modelled and measured

Usage:
  virq run [--seed N] [--rounds N] [--perfetto FILE] [--quiet]
      Run the default scenario and print the first delivery's trace (ftrace style),
      the metrics, and optionally write a Perfetto/Chrome trace JSON.
  virq help
      This text.

Options:
  --seed N        seed of the run (same seed, same trace)         default 1
  --rounds N      kick/interrupt round trips to run                default 1000
  --perfetto F    write the whole trace as Chrome trace JSON to F
  --quiet         print only the summary
`;

/** Runs the `virq` command line; returns the exit status. */
export async function runCli(argv: readonly string[], out: (s: string) => void = (s) => console.log(s), err: (s: string) => void = (s) => console.error(s)): Promise<number> {
  const [command = 'help', ...rest] = argv;
  try {
    switch (command) {
      case 'run': {
        const { values } = parseArgs({
          args: [...rest],
          options: { seed: { type: 'string' }, rounds: { type: 'string' }, perfetto: { type: 'string' }, quiet: { type: 'boolean' } },
          strict: true,
        });
        return commandRun(
          { seed: intOption('seed', values.seed, 1), rounds: intOption('rounds', values.rounds, 1000, 1), perfetto: values.perfetto, quiet: values.quiet ?? false },
          out,
        );
      }
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
    if (e instanceof VirqError) {
      err(`virq: ${e.message} [${e.code}]`);
      return 1;
    }
    if (typeof e === 'object' && e !== null && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      const message = (e as { message?: unknown }).message;
      err(`virq ${command}: ${String(message)}\n\n${HELP}`);
      return 2;
    }
    throw e;
  }
}

function intOption(name: string, v: string | undefined, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new VirqError('cli.bad-option', `--${name} takes an integer ≥ ${min}, got "${v}"`);
  }
  return n;
}
