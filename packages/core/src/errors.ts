/**
 * Typed errors. Every rejection in virq is a `VirqError` with a stable, dotted `code`
 * (`<area>.<what>`) and, where the real system answers with an errno, that errno's name —
 * so a caller can tell "KVM said EINVAL" from "the topology file is wrong" without parsing
 * messages. Messages say what to change.
 */

/** errno names used by the Linux interfaces virq models. */
export type ErrnoName =
  | 'EPERM' | 'ENOENT' | 'EINTR' | 'EIO' | 'E2BIG' | 'EBADF' | 'EAGAIN' | 'ENOMEM'
  | 'EFAULT' | 'EBUSY' | 'EEXIST' | 'ENODEV' | 'EINVAL' | 'ENOSPC' | 'ERANGE'
  | 'ENOSYS' | 'EOVERFLOW' | 'EOPNOTSUPP' | 'ENXIO' | 'EPROTO' | 'EMSGSIZE' | 'ENOTCONN'
  | 'EPIPE' | 'ECONNREFUSED' | 'EADDRINUSE' | 'ECONNRESET' | 'ENAMETOOLONG' | 'EWOULDBLOCK'
  | 'ENOBUFS' | 'ENOTTY';

export interface VirqErrorOptions {
  errno?: ErrnoName;
  /** Machine-readable facts about the failure (addresses, indexes, sizes). */
  details?: Readonly<Record<string, unknown>>;
  cause?: unknown;
}

export class VirqError extends Error {
  readonly code: string;
  readonly errno: ErrnoName | undefined;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: string, message: string, options: VirqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VirqError';
    this.code = code;
    this.errno = options.errno;
    this.details = options.details;
  }

  /** `true` when `e` is a VirqError, optionally with the given code. */
  static is(e: unknown, code?: string): e is VirqError {
    return e instanceof VirqError && (code === undefined || e.code === code);
  }
}

/** Codes raised by @virq/core itself. */
export const CoreErrorCode = {
  MemoryOutOfRange: 'memory.out-of-range',
  MemoryRegionOverlap: 'memory.region-overlap',
  MemoryRegionInvalid: 'memory.region-invalid',
  EventFdWouldBlock: 'eventfd.would-block',
  EventFdInvalidValue: 'eventfd.invalid-value',
  EventFdClosed: 'eventfd.closed',
  SchedulerTimeInPast: 'scheduler.time-in-past',
  SchedulerInvalidTime: 'scheduler.invalid-time',
  IrqSourceInvalid: 'irq.source-invalid',
  CostUnknown: 'cost.unknown',
  CostInvalid: 'cost.invalid',
  SnapshotVersion: 'snapshot.version',
  ArgumentInvalid: 'argument.invalid',
} as const;
export type CoreErrorCode = (typeof CoreErrorCode)[keyof typeof CoreErrorCode];
