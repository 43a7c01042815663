// What tools/serial-golden/guest-init.sh and host-console.py did during the recordings, as
// times (ns) on a model's clock: the guest's tty writes (echo of a marker line: one write of the
// whole line; printf of one character) and the characters the host sent. Far enough apart that
// each is handled alone, as in the recordings (300 ms there; 1 ms here, beyond the 16550's
// 347 µs character timeout).
const bytes = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
const MS = 1_000_000;

export interface ConsoleStep {
  readonly at: number;
  /** The guest writes these to the tty, or the host sends `receive` to the UART. */
  readonly write?: readonly number[];
  readonly receive?: number;
}

export const CONSOLE_SCRIPT: readonly ConsoleStep[] = [
  { at: 1 * MS, write: bytes('MARK tx-begin\n') },
  ...[0, 1, 2, 3, 4, 5].map((i) => ({ at: (2 + i) * MS, write: bytes('x') })),
  { at: 8 * MS, write: bytes('MARK rx-begin\n') },
  ...[0, 1, 2, 3, 4, 5].map((i) => ({ at: (9 + i) * MS, receive: 0x61 })),
  { at: 15 * MS, write: bytes('MARK done\n') },
];
export const CONSOLE_SCRIPT_END = 20 * MS;
