import { VirqError } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import type { PacketMode } from './packet-handler.js';
import { VhostUserNetServer } from './vhost-user-net-server.js';

const USAGE = 'usage: virq vhost-user-net --socket PATH [--client] [--mode macswap|loopback|icmpecho|count] [--poll] [--reconnect] [--queues N] [--log-messages]';
const MODES: readonly PacketMode[] = ['macswap', 'loopback', 'icmpecho', 'count'];

export interface VhostUserNetCliArgs {
  socket: string;
  client: boolean;
  mode: PacketMode;
  poll: boolean;
  reconnect: boolean;
  queues: number;
  /** Print every vhost-user message received (`  N VHOST_USER_<NAME>`, like DPDK's debug log). */
  logMessages: boolean;
}

/** Parses `[vhost-user-net] --socket PATH …`; a bare trailing path is the socket too. */
export function parseVhostUserNetArgs(argv: readonly string[]): VhostUserNetCliArgs {
  const a = argv[0] === 'vhost-user-net' ? argv.slice(1) : argv.slice();
  const out: VhostUserNetCliArgs = { socket: '', client: false, mode: 'macswap', poll: false, reconnect: false, queues: 1, logMessages: false };
  for (let i = 0; i < a.length; i++) {
    const arg = a[i]!;
    const value = (): string => {
      const v = a[++i];
      if (v === undefined) throw new VirqError(VhostUserErrorCode.Usage, `${arg} needs a value; ${USAGE}`);
      return v;
    };
    if (arg === '--socket' || arg === '-s') out.socket = value();
    else if (arg.startsWith('--socket=')) out.socket = arg.slice(9);
    else if (arg === '--client') out.client = true;
    else if (arg === '--poll') out.poll = true;
    else if (arg === '--reconnect') out.reconnect = true;
    else if (arg === '--log-messages') out.logMessages = true;
    else if (arg === '--mode' || arg.startsWith('--mode=')) {
      const m = arg === '--mode' ? value() : arg.slice(7);
      if (!(MODES as readonly string[]).includes(m)) throw new VirqError(VhostUserErrorCode.Usage, `unknown --mode ${m}; choose one of ${MODES.join(', ')}`);
      out.mode = m as PacketMode;
    } else if (arg === '--queues') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 128) throw new VirqError(VhostUserErrorCode.Usage, `--queues must be 1..128, got ${a[i]}`);
      out.queues = n;
    } else if (arg === '--help' || arg === '-h') throw new VirqError(VhostUserErrorCode.Usage, USAGE);
    else if (!arg.startsWith('-') && out.socket === '') out.socket = arg;
    else throw new VirqError(VhostUserErrorCode.Usage, `unknown argument ${arg}; ${USAGE}`);
  }
  if (out.socket === '') throw new VirqError(VhostUserErrorCode.Usage, `--socket PATH is required; ${USAGE}`);
  return out;
}

/**
 * `virq vhost-user-net --socket PATH …`: serves until SIGINT or SIGTERM, then prints its
 * counters and resolves 0 (2 on bad arguments, 1 when the transport cannot start).
 */
export async function runVhostUserNetCli(argv: string[]): Promise<number> {
  let args: VhostUserNetCliArgs;
  try {
    args = parseVhostUserNetArgs(argv);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  let server: VhostUserNetServer;
  try {
    server = new VhostUserNetServer({ socketPath: args.socket, client: args.client, reconnect: args.reconnect, mode: args.mode, poll: args.poll, queuePairs: args.queues, logMessages: args.logMessages, log: (l) => process.stdout.write(`${l}\n`) });
    server.start();
  } catch (e) {
    process.stderr.write(`vhost-user-net: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const done = (sig: string): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.stdout.write(`vhost-user-net: ${sig}, stopping\n`);
      resolve();
    };
    const onInt = (): void => done('SIGINT');
    const onTerm = (): void => done('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  server.stop();
  const c = server.net.counters;
  process.stdout.write(
    `vhost-user-net: connections=${server.connections} tx_frames=${c.txFrames} tx_bytes=${c.txBytes} rx_frames=${c.rxFrames} rx_bytes=${c.rxBytes} rx_dropped=${c.rxDropped} tx_dropped=${c.txDropped} kicks=${c.kicks} calls=${c.calls} calls_suppressed=${c.callsSuppressed} ring_errors=${c.ringErrors} rejected_messages=${server.net.protocol.rejected}\n`,
  );
  return 0;
}
