import { constants as osConstants } from 'node:os';
import { VirqError, type ErrnoName } from '@virq/core';

/** Codes raised by @virq/native: `native.<what failed>`; the errno name is in `errno`/`details`. */
export const NativeErrorCode = {
  /** The addon is not built or the platform is not Linux (see nativeSupport()). */
  Unsupported: 'native.unsupported',
  /** A value passed by the caller is out of range or of the wrong shape. */
  Argument: 'native.argument',
  /** The object (eventfd, socket, mapping, watcher) was already closed. */
  Closed: 'native.closed',
  EventFd: 'native.eventfd',
  Memfd: 'native.memfd',
  Mmap: 'native.mmap',
  Munmap: 'native.munmap',
  Close: 'native.close',
  Dup: 'native.dup',
  Fcntl: 'native.fcntl',
  Listen: 'native.listen',
  Accept: 'native.accept',
  Connect: 'native.connect',
  Socketpair: 'native.socketpair',
  Sendmsg: 'native.sendmsg',
  Recvmsg: 'native.recvmsg',
  /** An fd is already watched by another FdWatcher (libuv allows one poll handle per fd). */
  Poll: 'native.poll',
} as const;
export type NativeErrorCode = (typeof NativeErrorCode)[keyof typeof NativeErrorCode];

// The errno names @virq/core's ErrnoName covers; others (ECONNREFUSED, EADDRINUSE, ...) are
// reported in details.errnoName only.
const CORE_ERRNOS: readonly ErrnoName[] = [
  'EPERM', 'ENOENT', 'EINTR', 'EIO', 'E2BIG', 'EBADF', 'EAGAIN', 'ENOMEM', 'EFAULT', 'EBUSY',
  'EEXIST', 'ENODEV', 'EINVAL', 'ENOSPC', 'ERANGE', 'ENOSYS', 'EOVERFLOW', 'EOPNOTSUPP', 'ENXIO',
  'EPROTO', 'EMSGSIZE', 'ENOTCONN',
];

const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) {
  // EAGAIN and EWOULDBLOCK share a number: keep the first (EAGAIN comes first in Node's table,
  // but be explicit so the name is stable).
  if (!errnoNames.has(num) || name === 'EAGAIN') errnoNames.set(num, name);
}

/** errno number → its name ('EAGAIN', 'ECONNREFUSED', ...), or `E<num>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

function coreErrno(name: string): ErrnoName | undefined {
  return (CORE_ERRNOS as readonly string[]).includes(name) ? (name as ErrnoName) : undefined;
}

/**
 * The VirqError for a failed system call: `code` says which operation, the message names the
 * call, the errno name and what to check. `negErrno` is the binding's -errno return.
 */
export function syscallError(
  code: NativeErrorCode,
  syscall: string,
  negErrno: number,
  hint: string,
  details: Readonly<Record<string, unknown>> = {},
): VirqError {
  const name = errnoName(negErrno);
  const errno = coreErrno(name);
  return new VirqError(code, `${syscall} failed with ${name}: ${hint}`, {
    ...(errno === undefined ? {} : { errno }),
    details: { ...details, syscall, errnoName: name, errnoNumber: Math.abs(negErrno) },
  });
}

export function argumentError(message: string, details?: Readonly<Record<string, unknown>>): VirqError {
  return new VirqError(NativeErrorCode.Argument, message, { errno: 'EINVAL', ...(details ? { details } : {}) });
}

export function closedError(what: string): VirqError {
  return new VirqError(NativeErrorCode.Closed, `${what} is closed: create a new one`, { errno: 'EBADF' });
}

/** errno numbers the wrappers test for (Linux values, from Node's table). */
export const Errno = {
  EAGAIN: osConstants.errno.EAGAIN,
  EINTR: osConstants.errno.EINTR,
  EBADF: osConstants.errno.EBADF,
} as const;
