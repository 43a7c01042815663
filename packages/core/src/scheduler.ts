import { Actor, type ActorInit } from './actor.js';
import { CoreErrorCode, VirqError } from './errors.js';
import { Prng } from './prng.js';

/** A scheduled event. Returned by `at`/`after` so it can be cancelled. */
export interface ScheduledEvent {
  readonly time: number;
  readonly actor: Actor;
  /** `false` once the event ran or was cancelled. */
  readonly pending: boolean;
}

type Callback = (arg: unknown) => void;

class EventNode implements ScheduledEvent {
  constructor(
    public time: number,
    public seq: number,
    public actor: Actor,
    public fn: Callback | null,
    public arg: unknown,
    /** Scheduled with `post`: nobody holds it, so it is reused once it ran. */
    public pooled: boolean,
  ) {}
  get pending(): boolean {
    return this.fn !== null;
  }
}

export interface SchedulerOptions {
  /** Seed of the run's Prng. Same seed and inputs → same run, event for event. */
  seed?: number;
}

/**
 * A deterministic discrete-event scheduler in virtual nanoseconds (integers).
 *
 * - Events at the same instant run in the order they were scheduled (FIFO by sequence).
 * - Every event runs on an `Actor`; `current` is that actor while it runs.
 * - Crossing between actors (a wake-up, an IPI) is always a scheduled event, never a call.
 *
 * Implementation: a binary min-heap on (time, seq) plus a FIFO for events scheduled for
 * "now" (the common zero-delay hand-off), merged by sequence number so order stays exact.
 */
export class Scheduler {
  private heap: EventNode[] = [];
  /** Events for "now", FIFO, in slots [nowHead, nowTail); the array is reused, not shrunk. */
  private readonly nowQueue: Array<EventNode | undefined> = [];
  private nowHead = 0;
  private nowTail = 0;
  private seq = 0;
  private nextPid = 1000;
  private nextFd = 3;
  private _now = 0;
  private _current: Actor | undefined;
  private readonly actors: Actor[] = [];
  /** Records of `post`ed events that ran, ready for reuse. */
  private readonly freeNodes: EventNode[] = [];
  /** Number of events executed so far (continuations run by `continueAfter` included). */
  executed = 0;
  /** Of those, the steps `continueAfter` ran in place (without a queued event). */
  continuedInPlace = 0;
  /** Latest time a continuation may be run in place: the bound of the running runUntil / runUntilIdle (-1 outside them). */
  private inlineUntil = -1;
  /** Continuations left that the running event may chain in place before it must yield to the queue. */
  private inlineBudget = 0;
  readonly prng: Prng;
  readonly seed: number;

  constructor(options: SchedulerOptions = {}) {
    this.seed = options.seed ?? 1;
    this.prng = new Prng(this.seed);
  }

  /** Current virtual time in nanoseconds. */
  get now(): number {
    return this._now;
  }

  /** The actor whose event is running (undefined between events). */
  get current(): Actor | undefined {
    return this._current;
  }

  /** Creates a named actor. pids are assigned in creation order, so they are deterministic. */
  actor(init: ActorInit): Actor {
    const a = new Actor({ name: init.name, kind: init.kind, cpu: init.cpu ?? 0, pid: init.pid ?? this.nextPid++ });
    this.actors.push(a);
    return a;
  }

  /**
   * A descriptor number for a simulated fd (eventfds in traces). Per scheduler, starting at 3
   * as a process's first free fd would, so the same run prints the same numbers.
   */
  allocFd(): number {
    return this.nextFd++;
  }

  /** Every actor created on this scheduler, in creation order. */
  allActors(): readonly Actor[] {
    return this.actors;
  }

  /** Schedules `fn(arg)` on `actor` at absolute virtual time `time` (ns, integer, ≥ now). */
  at<A>(time: number, actor: Actor, fn: (arg: A) => void, arg?: A): ScheduledEvent {
    if (!Number.isSafeInteger(time)) {
      throw new VirqError(CoreErrorCode.SchedulerInvalidTime, `event time must be an integer number of nanoseconds, got ${time}`);
    }
    if (time < this._now) {
      throw new VirqError(CoreErrorCode.SchedulerTimeInPast, `cannot schedule at ${time} ns: virtual time is already ${this._now} ns`);
    }
    const node = new EventNode(time, this.seq++, actor, fn as Callback, arg, false);
    if (time === this._now) this.nowQueue[this.nowTail++] = node;
    else this.push(node);
    return node;
  }

  /**
   * `after` for an event nobody will cancel (a wake-up, a hand-off): no handle is returned,
   * so its record is recycled once it ran — the hot paths allocate nothing per event.
   */
  post<A>(delay: number, actor: Actor, fn: (arg: A) => void, arg?: A): void {
    if (!(delay >= 0) || !Number.isFinite(delay)) {
      throw new VirqError(CoreErrorCode.SchedulerInvalidTime, `delay must be a finite number ≥ 0, got ${delay}`);
    }
    const time = this._now + Math.round(delay);
    if (!Number.isSafeInteger(time)) {
      throw new VirqError(CoreErrorCode.SchedulerInvalidTime, `event time must be an integer number of nanoseconds, got ${time}`);
    }
    const free = this.freeNodes;
    let node: EventNode;
    if (free.length > 0) {
      node = free.pop()!;
      node.time = time;
      node.seq = this.seq++;
      node.actor = actor;
      node.fn = fn as Callback;
      node.arg = arg;
    } else {
      node = new EventNode(time, this.seq++, actor, fn as Callback, arg, true);
    }
    if (time === this._now) this.nowQueue[this.nowTail++] = node;
    else this.push(node);
  }

  /** Schedules `fn(arg)` on `actor` after `delay` ns (rounded to an integer, ≥ 0). */
  after<A>(delay: number, actor: Actor, fn: (arg: A) => void, arg?: A): ScheduledEvent {
    if (!(delay >= 0) || !Number.isFinite(delay)) {
      throw new VirqError(CoreErrorCode.SchedulerInvalidTime, `delay must be a finite number ≥ 0, got ${delay}`);
    }
    return this.at(this._now + Math.round(delay), actor, fn, arg);
  }

  /**
   * The running actor's own next step, `delay` ns from now, run in place instead of queued
   * when that is indistinguishable from queueing it: nothing else is due by then (no queued
   * event at or before that time — queued ones at the same instant would come first by FIFO),
   * the step stays within the bound of the running `runUntil`/`runUntilIdle`, and `actor` is
   * the one running. Then the clock moves to that time, the step counts as an executed
   * event, and this returns true: the caller must run its step at once, as the last thing
   * it does (a trampoline, not a nested call, so a long chain does not grow the stack).
   * Otherwise returns false and the caller queues the step with `after` as usual.
   * At most 64 steps chain in place per queued event, so `runUntilIdle`'s event bound still
   * catches a run that never goes idle.
   */
  continueAfter(delay: number, actor: Actor): boolean {
    if (actor !== this._current || this.inlineBudget <= 0) return false;
    const time = this._now + Math.round(delay);
    if (!(time >= this._now) || time > this.inlineUntil || !Number.isSafeInteger(time)) return false;
    if (this.nowHead < this.nowTail) return false;
    const top = this.heap[0];
    if (top !== undefined && top.time <= time) return false;
    this.inlineBudget--;
    this._now = time;
    this.executed++;
    this.continuedInPlace++;
    return true;
  }

  /** Cancels a pending event; returns whether it was still pending. */
  cancel(event: ScheduledEvent): boolean {
    const node = event as EventNode;
    if (node.fn === null) return false;
    node.fn = null;
    return true;
  }

  /** Number of events waiting (cancelled ones included until they are reached). */
  get queued(): number {
    return this.heap.length + this.nowTail - this.nowHead;
  }

  /** Time of the next pending event, or undefined when idle. */
  peekTime(): number | undefined {
    if (this.nowHead < this.nowTail) return this._now;
    return this.heap.length > 0 ? this.heap[0]!.time : undefined;
  }

  /** Runs one event; returns false when nothing is left. */
  step(): boolean {
    for (;;) {
      const node = this.popNext();
      if (node === undefined) return false;
      const fn = node.fn;
      if (fn === null) continue;
      node.fn = null;
      this._now = node.time;
      this._current = node.actor;
      this.executed++;
      this.inlineBudget = 64;
      const arg = node.arg;
      if (node.pooled) {
        node.arg = undefined;
        this.freeNodes.push(node);
      }
      try {
        fn(arg);
      } finally {
        this._current = undefined;
        this.inlineBudget = 0;
      }
      return true;
    }
  }

  /** Runs every event with time ≤ `time`, then sets the clock to `time`. Returns events run. */
  runUntil(time: number): number {
    if (time < this._now) {
      throw new VirqError(CoreErrorCode.SchedulerTimeInPast, `runUntil(${time}) is before now (${this._now} ns)`);
    }
    const start = this.executed;
    const bound = this.inlineUntil;
    this.inlineUntil = time;
    try {
      for (;;) {
        const t = this.peekTime();
        if (t === undefined || t > time) break;
        this.step();
      }
    } finally {
      this.inlineUntil = bound;
    }
    this._now = time;
    return this.executed - start;
  }

  /**
   * Runs until no event is left. `maxEvents` bounds a run that would never go idle (a
   * periodic timer); reaching it throws so a livelock cannot pass silently.
   */
  runUntilIdle(maxEvents = 100_000_000): number {
    const start = this.executed;
    const bound = this.inlineUntil;
    this.inlineUntil = Number.MAX_SAFE_INTEGER;
    try {
      while (this.step()) {
        if (this.executed - start >= maxEvents) {
          throw new VirqError(CoreErrorCode.ArgumentInvalid, `runUntilIdle: still busy after ${maxEvents} events at ${this._now} ns`);
        }
      }
    } finally {
      this.inlineUntil = bound;
    }
    return this.executed - start;
  }

  private popNext(): EventNode | undefined {
    if (this.nowHead < this.nowTail) {
      const q = this.nowQueue;
      const head = q[this.nowHead]!;
      const top = this.heap[0];
      if (top !== undefined && top.time === head.time && top.seq < head.seq) return this.pop();
      q[this.nowHead++] = undefined;
      if (this.nowHead === this.nowTail) this.nowHead = this.nowTail = 0;
      return head;
    }
    return this.pop();
  }

  private push(node: EventNode): void {
    const h = this.heap;
    let i = h.length;
    h.push(node);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.time < node.time || (parent.time === node.time && parent.seq < node.seq)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = node;
  }

  private pop(): EventNode | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop()!;
    const n = h.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        let cn = h[l]!;
        if (r < n) {
          const rn = h[r]!;
          if (rn.time < cn.time || (rn.time === cn.time && rn.seq < cn.seq)) {
            c = r;
            cn = rn;
          }
        }
        if (last.time < cn.time || (last.time === cn.time && last.seq < cn.seq)) break;
        h[i] = cn;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
