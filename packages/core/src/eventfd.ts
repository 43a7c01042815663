import type { Actor } from './actor.js';
import { CoreErrorCode, VirqError } from './errors.js';
import type { Scheduler } from './scheduler.js';

/** Largest value the counter may hold: 2^64 - 2 (eventfd(2)). */
export const EVENTFD_MAX = 0xffff_ffff_ffff_fffen;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

export interface EventFdOptions {
  /** EFD_SEMAPHORE: read returns 1 and decrements instead of returning and zeroing. */
  semaphore?: boolean;
  /** Initial counter value (eventfd(2)'s `initval`, a 32-bit unsigned). */
  initval?: number;
  /** Name used in traces, e.g. `vq0-call`. */
  name?: string;
}

/**
 * Something waiting on the eventfd's wait queue (poll/epoll, or a kernel wait-queue entry
 * such as irqfd's or a vhost poll's). `wake` runs as a scheduled event on `actor`, or on the
 * writer's actor when `actor` is omitted (the kernel's wait-queue callbacks run in the
 * context of whoever called eventfd_signal) — or, with `inline`, inside the write itself.
 */
export interface EventFdWaiter {
  actor?: Actor;
  /** Delay between the write and the wake-up (e.g. a thread wake-up latency). Default 0. */
  delayNs?: number;
  /**
   * A kernel wait-queue callback that runs nested in eventfd_signal → wake_up_locked_poll,
   * before the write returns (irqfd_wakeup): `wake` is called synchronously by the write,
   * in the writer's context. Only for callbacks that neither block nor write this eventfd
   * again. Needs no `actor` or `delayNs` (both are refused).
   */
  inline?: boolean;
  wake(fd: EventFd): void;
}

/**
 * eventfd(2) semantics over a 64-bit counter, always non-blocking (EFD_NONBLOCK): a write
 * that would block fails with EAGAIN, a read of zero fails with EAGAIN.
 *
 * - `write(v)`: v = 2^64-1 is EINVAL; if counter + v would exceed 2^64-2 → EAGAIN, counter
 *   unchanged; otherwise the counter grows and every waiter is woken (EPOLLIN), as
 *   eventfd_write → wake_up_locked_poll does on each successful write.
 * - `read()`: returns the counter and zeroes it, or with EFD_SEMAPHORE returns 1 and
 *   decrements.
 *
 * The counter is kept as a double while it is a safe integer (the hot path: kicks and calls
 * add 1) and as a bigint only beyond 2^53.
 */
export class EventFd {
  /** A file-descriptor-like number for traces (not a host fd), allocated per scheduler so runs repeat. */
  readonly fd: number;
  readonly name: string;
  readonly semaphore: boolean;
  private small = 0;
  private big: bigint | null = null;
  private waiters: WaitEntry[] = [];
  private closed = false;
  /** Successful writes so far (each one is one `eventfd_signal`). */
  signals = 0;

  constructor(
    private readonly scheduler: Scheduler,
    options: EventFdOptions = {},
  ) {
    const init = options.initval ?? 0;
    if (!Number.isInteger(init) || init < 0 || init > 0xffffffff) {
      throw new VirqError(CoreErrorCode.EventFdInvalidValue, `eventfd initval must be a 32-bit unsigned integer, got ${init}`, { errno: 'EINVAL' });
    }
    this.small = init;
    this.semaphore = options.semaphore ?? false;
    this.fd = scheduler.allocFd();
    this.name = options.name ?? `eventfd:${this.fd}`;
  }

  /** Current counter value (what a read would see), without consuming it. */
  get count(): bigint {
    return this.big ?? BigInt(this.small);
  }

  /** Whether a read would succeed now (poll's EPOLLIN). */
  get readable(): boolean {
    return this.big !== null || this.small > 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Adds `value` to the counter and wakes the waiters. Throws EINVAL / EAGAIN as eventfd(2). */
  write(value: number | bigint = 1): void {
    const r = this.tryWrite(value);
    if (r === 'EAGAIN') {
      throw new VirqError(CoreErrorCode.EventFdWouldBlock, `write of ${value} to ${this.name} would overflow the counter (${this.count}); a non-blocking eventfd returns EAGAIN`, { errno: 'EAGAIN' });
    }
  }

  /** Like `write`, but reports EAGAIN as a return value (the hot path never throws). */
  tryWrite(value: number | bigint = 1): 'ok' | 'EAGAIN' {
    if (this.closed) throw new VirqError(CoreErrorCode.EventFdClosed, `${this.name} is closed`, { errno: 'EBADF' });
    if (typeof value === 'number') {
      if (!Number.isInteger(value) || value < 0) {
        throw new VirqError(CoreErrorCode.EventFdInvalidValue, `eventfd write value must be an unsigned 64-bit integer, got ${value}`, { errno: 'EINVAL' });
      }
      if (this.big === null && value <= SAFE_MAX && this.small + value <= SAFE_MAX) {
        this.small += value;
        this.wakeAll();
        return 'ok';
      }
      value = BigInt(value);
    }
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
      throw new VirqError(CoreErrorCode.EventFdInvalidValue, `eventfd write value must be an unsigned 64-bit integer, got ${value}`, { errno: 'EINVAL' });
    }
    if (value === 0xffff_ffff_ffff_ffffn) {
      throw new VirqError(CoreErrorCode.EventFdInvalidValue, `eventfd write of 2^64-1 is invalid (EINVAL)`, { errno: 'EINVAL' });
    }
    const cur = this.count;
    if (EVENTFD_MAX - cur < value) return 'EAGAIN';
    this.setCount(cur + value);
    this.wakeAll();
    return 'ok';
  }

  /** Reads the counter as eventfd(2) does. Throws EAGAIN when it is zero. */
  read(): bigint {
    const v = this.tryRead();
    if (v === undefined) {
      throw new VirqError(CoreErrorCode.EventFdWouldBlock, `read of ${this.name} with a zero counter; a non-blocking eventfd returns EAGAIN`, { errno: 'EAGAIN' });
    }
    return v;
  }

  /** Like `read`, returning undefined instead of EAGAIN. */
  tryRead(): bigint | undefined {
    if (this.closed) throw new VirqError(CoreErrorCode.EventFdClosed, `${this.name} is closed`, { errno: 'EBADF' });
    if (this.big === null) {
      if (this.small === 0) return undefined;
      if (this.semaphore) {
        this.small--;
        return 1n;
      }
      const v = this.small;
      this.small = 0;
      return BigInt(v);
    }
    const cur = this.big;
    if (this.semaphore) {
      this.setCount(cur - 1n);
      return 1n;
    }
    this.setCount(0n);
    return cur;
  }

  /**
   * QEMU's `event_notifier_test_and_clear`: consumes the counter and says whether it was
   * non-zero. Returns the count as a number (exact below 2^53).
   */
  testAndClear(): number {
    if (this.big === null) {
      const v = this.small;
      this.small = 0;
      return v;
    }
    const v = Number(this.big);
    this.setCount(0n);
    return v;
  }

  /** Adds a wait-queue entry; returns a function that removes it. */
  addWaiter(waiter: EventFdWaiter): () => void {
    if (waiter.inline === true && (waiter.actor !== undefined || (waiter.delayNs ?? 0) !== 0)) {
      throw new VirqError(CoreErrorCode.ArgumentInvalid, `${this.name}: an inline waiter runs inside the write, in the writer's context; it takes no actor and no delay`);
    }
    const entry: WaitEntry = { waiter, fd: this };
    this.waiters.push(entry);
    return () => {
      const i = this.waiters.indexOf(entry);
      if (i >= 0) this.waiters.splice(i, 1);
    };
  }

  get waiterCount(): number {
    return this.waiters.length;
  }

  /** Closes the fd: waiters are dropped (EPOLLHUP is not modelled further). */
  close(): void {
    this.closed = true;
    this.waiters = [];
  }

  private setCount(v: bigint): void {
    if (v <= BigInt(SAFE_MAX)) {
      this.small = Number(v);
      this.big = null;
    } else {
      this.big = v;
    }
  }

  private wakeAll(): void {
    this.signals++;
    const ws = this.waiters;
    if (ws.length === 0) return;
    const s = this.scheduler;
    const by = s.current;
    for (let i = 0; i < ws.length; i++) {
      const e = ws[i]!;
      if (e.waiter.inline === true) {
        e.waiter.wake(this);
        continue;
      }
      const actor = e.waiter.actor ?? by;
      if (actor === undefined) {
        throw new VirqError(CoreErrorCode.ArgumentInvalid, `${this.name} written outside any scheduled event and its waiter names no actor`);
      }
      s.post(e.waiter.delayNs ?? 0, actor, wakeEntry, e);
    }
  }
}

interface WaitEntry {
  readonly waiter: EventFdWaiter;
  readonly fd: EventFd;
}

function wakeEntry(e: WaitEntry): void {
  if (!e.fd.isClosed) e.waiter.wake(e.fd);
}
