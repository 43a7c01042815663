import { VirqError } from '@virq/core';
import { binding, type PollHandle } from './binding.js';
import { NativeErrorCode, argumentError, closedError, syscallError } from './errors.js';

/** libuv's uv_poll_event bits (UV_READABLE, UV_WRITABLE, UV_DISCONNECT, UV_PRIORITIZED). */
export const PollEvent = {
  Readable: 1,
  Writable: 2,
  /** EPOLLRDHUP: the peer shut down its writing side (sockets). */
  Disconnect: 4,
  Prioritized: 8,
} as const;

export interface FdWatcherOptions {
  /** PollEvent bits to watch; default Readable. */
  events?: number;
  /** Called instead of throwing when epoll reports an error for the fd; the watcher is stopped first. */
  onError?: (err: VirqError) => void;
  /** false: the watcher does not keep Node's loop alive (uv_unref). Default true. */
  ref?: boolean;
}

const watched = new Map<number, FdWatcher>();

/**
 * Readiness of an fd inside Node's event loop: a libuv `uv_poll_t` on the loop's epoll set,
 * level-triggered, so the callback runs on every loop iteration while the fd stays ready —
 * drain it (read the eventfd, recvmsg until EAGAIN) in the callback. Nothing spins: with no
 * event the loop sleeps in epoll_wait.
 *
 * One watcher per fd (libuv allows one poll handle per fd per loop): a second one is refused
 * with 'native.poll' EEXIST. Stop the watcher before closing the fd — `closeFd()` and the
 * close() methods of this package do it for you.
 */
export class FdWatcher {
  readonly fd: number;
  private handle: PollHandle | undefined;
  private events: number;
  private readonly onReady: (events: number) => void;
  private readonly onError: ((err: VirqError) => void) | undefined;

  constructor(fd: number, onReady: (events: number) => void, opts: FdWatcherOptions = {}) {
    if (!Number.isInteger(fd) || fd < 0) throw argumentError(`FdWatcher needs an open fd (a non-negative integer), got ${fd}`);
    const events = opts.events ?? PollEvent.Readable;
    if (!Number.isInteger(events) || events <= 0 || events > 15) {
      throw argumentError(`FdWatcher events must be PollEvent bits (1..15), got ${events}`);
    }
    const other = watched.get(fd);
    if (other) {
      throw new VirqError(NativeErrorCode.Poll, `fd ${fd} is already watched: stop the other FdWatcher first (libuv allows one poll handle per fd)`, {
        errno: 'EEXIST',
        details: { fd },
      });
    }
    this.fd = fd;
    this.events = events;
    this.onReady = onReady;
    this.onError = opts.onError;
    const h = binding().pollStart(fd, events, (status, ev) => this.fire(status, ev));
    if (typeof h === 'number') {
      throw syscallError(NativeErrorCode.Poll, 'uv_poll_start', h, `fd ${fd} cannot be watched (closed, or a kind epoll refuses such as a regular file)`, { fd });
    }
    this.handle = h;
    watched.set(fd, this);
    if (opts.ref === false) binding().pollRef(h, false);
  }

  /** The watcher of `fd`, if one is active. */
  static of(fd: number): FdWatcher | undefined {
    return watched.get(fd);
  }

  get active(): boolean {
    return this.handle !== undefined;
  }

  /** The PollEvent bits being watched. */
  get watching(): number {
    return this.events;
  }

  /** Changes the watched events (0 pauses the watcher without releasing it). */
  setEvents(events: number): void {
    const h = this.live();
    if (!Number.isInteger(events) || events < 0 || events > 15) throw argumentError(`events must be PollEvent bits (0..15), got ${events}`);
    if (events === this.events) return;
    const r = binding().pollUpdate(h, events);
    if (r < 0) throw syscallError(NativeErrorCode.Poll, 'uv_poll_start', r, `cannot change the events watched on fd ${this.fd}`, { fd: this.fd });
    this.events = events;
  }

  /** Keep Node's loop alive while this watcher is active (the default). */
  ref(): void {
    binding().pollRef(this.live(), true);
  }

  /** Let Node exit even though this watcher is active. */
  unref(): void {
    binding().pollRef(this.live(), false);
  }

  /** Stops watching (idempotent). The fd itself stays open. */
  stop(): void {
    const h = this.handle;
    if (h === undefined) return;
    this.handle = undefined;
    watched.delete(this.fd);
    binding().pollStop(h);
  }

  private live(): PollHandle {
    if (this.handle === undefined) throw closedError(`FdWatcher of fd ${this.fd}`);
    return this.handle;
  }

  private fire(status: number, events: number): void {
    if (this.handle === undefined) return;
    if (status < 0) {
      this.stop();
      const err = syscallError(NativeErrorCode.Poll, 'epoll_wait', status, `fd ${this.fd} reported an error; the watcher was stopped`, { fd: this.fd });
      if (this.onError) this.onError(err);
      else throw err;
      return;
    }
    this.onReady(events);
  }
}

/** Stops the watcher of `fd`, if any (before the fd is closed). */
export function stopWatching(fd: number): void {
  watched.get(fd)?.stop();
}
