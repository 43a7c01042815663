import { binding } from './binding.js';
import { Errno, NativeErrorCode, argumentError, closedError, syscallError } from './errors.js';
import { closeFd, setNonBlocking } from './fd.js';
import { FdWatcher, PollEvent } from './fd-watcher.js';

export interface NativeEventFdOptions {
  /** Initial counter (eventfd(2) initval). Default 0. */
  initval?: number;
  /** EFD_SEMAPHORE: each read returns 1 and decrements. Default false. */
  semaphore?: boolean;
  /** EFD_NONBLOCK. Default true (a read at zero must not block Node's loop). */
  nonblock?: boolean;
}

/** The largest value an eventfd counter holds (0xfffffffffffffffe); a write may not exceed it. */
export const EVENTFD_COUNTER_MAX = 0xfffffffffffffffen;

/**
 * A real eventfd(2): a 64-bit kernel counter. write adds, read returns the counter and zeroes
 * it (or returns 1 and decrements with EFD_SEMAPHORE); a read at 0 is EAGAIN (non-blocking), a
 * write that would pass 0xfffffffffffffffe is EAGAIN. Its fd goes to QEMU/KVM/a vhost-user
 * peer as ioeventfd/irqfd/kick/call; readiness comes through `onReadable` (an FdWatcher).
 */
export class NativeEventFd {
  private fdValue: number;
  private watcher: FdWatcher | undefined;

  private constructor(fd: number) {
    this.fdValue = fd;
  }

  static create(opts: NativeEventFdOptions = {}): NativeEventFd {
    const initval = opts.initval ?? 0;
    if (!Number.isInteger(initval) || initval < 0 || initval > 0xffffffff) {
      throw argumentError(`eventfd initval must be an integer in 0..2^32-1 (eventfd(2) takes an unsigned int), got ${initval}`);
    }
    const fd = binding().eventfd(initval, opts.semaphore ?? false, opts.nonblock ?? true);
    if (fd < 0) throw syscallError(NativeErrorCode.EventFd, 'eventfd', fd, 'the process may be out of file descriptors (ulimit -n)');
    return new NativeEventFd(fd);
  }

  /**
   * Adopts an eventfd received from a peer (SCM_RIGHTS) or created elsewhere; close() closes
   * it. Sets O_NONBLOCK unless `setNonBlocking: false` (QEMU's eventfds already are).
   */
  static fromFd(fd: number, opts: { setNonBlocking?: boolean } = {}): NativeEventFd {
    if (!Number.isInteger(fd) || fd < 0) throw argumentError(`fromFd needs an fd, got ${fd}`);
    if (opts.setNonBlocking ?? true) setNonBlocking(fd, true);
    return new NativeEventFd(fd);
  }

  get fd(): number {
    if (this.fdValue < 0) throw closedError('NativeEventFd');
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue < 0;
  }

  /** Adds `value` (default 1) to the counter; EAGAIN (counter would overflow) throws. */
  write(value: number | bigint = 1): void {
    if (!this.tryWrite(value)) {
      throw syscallError(NativeErrorCode.EventFd, 'write', -Errno.EAGAIN, `the counter would pass ${EVENTFD_COUNTER_MAX}; read it first`, { fd: this.fdValue });
    }
  }

  /** Like write, but returns false instead of throwing when the counter would overflow. */
  tryWrite(value: number | bigint = 1): boolean {
    if (typeof value === 'number' && (!Number.isSafeInteger(value) || value < 0)) {
      throw argumentError(`eventfd write needs a non-negative integer, got ${value}`);
    }
    if (typeof value === 'bigint' && (value < 0n || value > EVENTFD_COUNTER_MAX)) {
      throw argumentError(`eventfd write needs 0..0xfffffffffffffffe (eventfd(2) refuses 2^64-1 with EINVAL), got ${value}`);
    }
    const r = binding().eventfdWrite(this.fd, value);
    if (r === 0) return true;
    if (r === -Errno.EAGAIN) return false;
    throw syscallError(NativeErrorCode.EventFd, 'write', r, 'writing the eventfd counter failed', { fd: this.fdValue });
  }

  /** Reads (and clears, or decrements in semaphore mode) the counter; undefined at 0 (EAGAIN). */
  tryRead(): bigint | undefined {
    const r = binding().eventfdRead(this.fd);
    if (typeof r === 'bigint') return r;
    if (r === -Errno.EAGAIN) return undefined;
    throw syscallError(NativeErrorCode.EventFd, 'read', r, 'reading the eventfd counter failed', { fd: this.fdValue });
  }

  /** Like tryRead, but a counter at 0 throws 'native.eventfd' EAGAIN. */
  read(): bigint {
    const v = this.tryRead();
    if (v === undefined) throw syscallError(NativeErrorCode.EventFd, 'read', -Errno.EAGAIN, 'the counter is 0; wait for readiness (onReadable) first', { fd: this.fdValue });
    return v;
  }

  /**
   * Calls `cb` from Node's loop whenever the counter is non-zero (level-triggered: read it in
   * the callback or it fires again). Replaces an earlier callback; `undefined` stops watching.
   */
  onReadable(cb: (() => void) | undefined, opts: { ref?: boolean } = {}): void {
    this.watcher?.stop();
    this.watcher = undefined;
    if (cb === undefined) return;
    this.watcher = new FdWatcher(this.fd, () => cb(), { events: PollEvent.Readable, ...(opts.ref === undefined ? {} : { ref: opts.ref }) });
  }

  /** Stops watching and closes the fd (idempotent). */
  close(): void {
    if (this.fdValue < 0) return;
    this.watcher?.stop();
    this.watcher = undefined;
    const fd = this.fdValue;
    this.fdValue = -1;
    closeFd(fd);
  }
}
