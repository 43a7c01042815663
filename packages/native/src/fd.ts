import { binding } from './binding.js';
import { NativeErrorCode, argumentError, syscallError } from './errors.js';
import { stopWatching } from './fd-watcher.js';

function checkFd(fd: number, what: string): void {
  if (!Number.isInteger(fd) || fd < 0) throw argumentError(`${what} needs an fd (a non-negative integer), got ${fd}`);
}

/** close(2). Stops an FdWatcher on the fd first (closing a polled fd confuses epoll). */
export function closeFd(fd: number): void {
  checkFd(fd, 'closeFd');
  stopWatching(fd);
  const r = binding().close(fd);
  if (r < 0) throw syscallError(NativeErrorCode.Close, 'close', r, `fd ${fd} is not open (closed twice?)`, { fd });
}

/** fcntl(F_DUPFD_CLOEXEC): a new fd for the same open file description. */
export function dupFd(fd: number): number {
  checkFd(fd, 'dupFd');
  const r = binding().dup(fd);
  if (r < 0) throw syscallError(NativeErrorCode.Dup, 'fcntl(F_DUPFD_CLOEXEC)', r, `fd ${fd} must be open`, { fd });
  return r;
}

/**
 * Sets or clears O_NONBLOCK. Note: the flag belongs to the open file description, which a
 * peer that passed the fd (QEMU, DPDK) shares.
 */
export function setNonBlocking(fd: number, on = true): void {
  checkFd(fd, 'setNonBlocking');
  const r = binding().setNonBlocking(fd, on);
  if (r < 0) throw syscallError(NativeErrorCode.Fcntl, 'fcntl(F_SETFL)', r, `fd ${fd} must be open`, { fd });
}

export interface FdInfo {
  /** O_NONBLOCK is set on the open file description. */
  readonly nonBlocking: boolean;
  /** FD_CLOEXEC is set on this descriptor. */
  readonly closeOnExec: boolean;
  /** O_ACCMODE: 0 read-only, 1 write-only, 2 read-write. */
  readonly accessMode: number;
}

const O_NONBLOCK = 0o4000;
const FD_CLOEXEC = 1;

/** fcntl(F_GETFL/F_GETFD) of an fd. */
export function fdInfo(fd: number): FdInfo {
  checkFd(fd, 'fdInfo');
  const r = binding().fdFlags(fd);
  if (typeof r === 'number') throw syscallError(NativeErrorCode.Fcntl, 'fcntl(F_GETFL)', r, `fd ${fd} must be open`, { fd });
  return { nonBlocking: (r[0] & O_NONBLOCK) !== 0, closeOnExec: (r[1] & FD_CLOEXEC) !== 0, accessMode: r[0] & 3 };
}

/** fstat(2) size, and whether the fd is a regular file (memfds are). */
export function fdSize(fd: number): { size: number; regular: boolean } {
  checkFd(fd, 'fdSize');
  const r = binding().fstatSize(fd);
  if (typeof r === 'number') throw syscallError(NativeErrorCode.Fcntl, 'fstat', r, `fd ${fd} must be open`, { fd });
  return { size: r[0], regular: r[1] };
}
