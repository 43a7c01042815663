import { Observable, Subject, type Subscription } from 'rxjs';
import { Actor } from './actor.js';
import type { Scheduler } from './scheduler.js';

export type TraceValue = number | string | boolean | bigint;
export type TraceArgs = Readonly<Record<string, TraceValue>>;

/**
 * One step of a flow. `kind` is the discriminant a component's union is built on
 * (`'kvm.irqfd_wakeup'`, `'virtio.vring_interrupt'` …); `fn` is the real Linux/QEMU/DPDK
 * function or tracepoint name the step stands for, and `caller` the one that called it, so
 * the ftrace renderer prints `fn <-caller` exactly as a real capture would.
 */
export interface TraceEvent<K extends string = string, A extends TraceArgs = TraceArgs> {
  readonly kind: K;
  /** Virtual time in ns. */
  readonly time: number;
  readonly actor: Actor;
  /** Component that emitted it (`kvm-irqchip`, `virtio-ring` …). */
  readonly source: string;
  readonly fn: string;
  readonly caller: string | undefined;
  readonly args: A;
  /** Duration for slices (a VM exit, a handler); undefined for instants. */
  readonly durNs: number | undefined;
}

/**
 * A component's trace output. Components test `on` before building an event, so emission
 * costs one property read when nobody listens:
 *
 *     if (this.trace.on) this.trace.emit('kvm.irqfd_wakeup', 'irqfd_wakeup', '__wake_up_common', { gsi });
 */
export class TraceChannel<E extends TraceEvent = TraceEvent> {
  private readonly subject = new Subject<E>();
  private listening = false;
  /** This component's events. */
  readonly events$: Observable<E> = countedObservable(this.subject, () => this.refresh());

  constructor(
    readonly source: string,
    private readonly bus: TraceBus,
  ) {
    this.refresh();
  }

  /**
   * Whether anybody listens (to this channel or to the bus). Kept up to date as subscribers
   * come and go, so the check every hot path makes is one field read.
   */
  get on(): boolean {
    return this.listening;
  }

  /** Recomputes `on` (a subscriber of this channel or of the bus came or went). */
  refresh(): void {
    this.listening = this.subject.observed || this.bus.observed;
  }

  /** Emits an event stamped with the scheduler's time and running actor. */
  emit(kind: E['kind'], fn: string, caller: string | undefined, args: E['args'], durNs?: number, actor?: Actor): void {
    const e = {
      kind,
      time: this.bus.scheduler.now,
      actor: actor ?? this.runningActor(),
      source: this.source,
      fn,
      caller,
      args,
      durNs,
    } as E;
    if (this.subject.observed) this.subject.next(e);
    this.bus.publish(e);
  }

  /** The actor an untagged event belongs to: the running one (or whom it runs code for: `traceAs`). */
  private runningActor(): Actor {
    const cur = this.bus.scheduler.current;
    return cur === undefined ? this.bus.hostActor : (cur.traceAs ?? cur);
  }
}

/** `subject` as an Observable that calls `changed` after each subscribe and each unsubscribe. */
function countedObservable<T>(subject: Subject<T>, changed: () => void): Observable<T> {
  return new Observable<T>((subscriber) => {
    const sub = subject.subscribe(subscriber);
    changed();
    return () => {
      sub.unsubscribe();
      changed();
    };
  });
}

/** The machine-wide trace: every channel's events merged, in emission (= virtual time) order. */
export class TraceBus {
  private readonly subject = new Subject<TraceEvent>();
  private readonly channels = new Map<string, TraceChannel<TraceEvent>>();
  readonly events$: Observable<TraceEvent> = countedObservable(this.subject, () => {
    for (const ch of this.channels.values()) ch.refresh();
  });
  private _host: Actor | undefined;

  constructor(readonly scheduler: Scheduler) {}

  get observed(): boolean {
    return this.subject.observed;
  }

  /** The channel for a component (one per source name). */
  channel<E extends TraceEvent = TraceEvent>(source: string): TraceChannel<E> {
    let ch = this.channels.get(source);
    if (ch === undefined) {
      ch = new TraceChannel<TraceEvent>(source, this);
      this.channels.set(source, ch);
    }
    return ch as unknown as TraceChannel<E>;
  }

  /** Actor used for events emitted outside any scheduled event (setup code, ioctls from tests). */
  get hostActor(): Actor {
    this._host ??= this.scheduler.actor({ name: 'virq', kind: 'kernel', cpu: 0 });
    return this._host;
  }

  publish(e: TraceEvent): void {
    if (this.subject.observed) this.subject.next(e);
  }
}

/** Subscribes to a stream and keeps every event in an array until `stop()`. */
export class TraceRecorder<E extends TraceEvent = TraceEvent> {
  readonly events: E[] = [];
  private readonly sub: Subscription;
  constructor(source: Observable<E>) {
    this.sub = source.subscribe((e) => this.events.push(e));
  }
  /** The `fn` of every event, in order. */
  functions(): string[] {
    return this.events.map((e) => e.fn);
  }
  stop(): void {
    this.sub.unsubscribe();
  }
}

function formatValue(v: TraceValue): string {
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (typeof v === 'string') return /[\s=]/.test(v) ? JSON.stringify(v) : v;
  return String(v);
}

/** Virtual ns as ftrace's seconds column (`12.000345678`, nanosecond digits kept). */
export function formatSeconds(ns: number): string {
  const s = Math.floor(ns / 1e9);
  const frac = String(ns - s * 1e9).padStart(9, '0');
  return `${s}.${frac}`;
}

/**
 * One event as a line of ftrace's function tracer output:
 * `<task>-<pid> [<cpu>] <seconds>: <function> <-<caller> <args>`.
 */
export function formatFtraceLine(e: TraceEvent): string {
  const task = `${e.actor.name}-${e.actor.pid}`.padStart(20);
  const cpu = String(e.actor.cpu).padStart(3, '0');
  const caller = e.caller === undefined ? '' : ` <-${e.caller}`;
  let args = '';
  for (const k in e.args) args += ` ${k}=${formatValue(e.args[k]!)}`;
  const dur = e.durNs === undefined ? '' : ` dur=${e.durNs}ns`;
  return `${task} [${cpu}] ${formatSeconds(e.time)}: ${e.fn}${caller}${args}${dur}`;
}

/** A whole trace as ftrace text, with the header line ftrace prints. */
export function formatFtrace(events: Iterable<TraceEvent>): string {
  const lines = ['# tracer: virq', '#           TASK-PID     CPU   TIMESTAMP  FUNCTION'];
  for (const e of events) lines.push(formatFtraceLine(e));
  return lines.join('\n') + '\n';
}

export interface ChromeTraceEvent {
  name: string;
  cat?: string;
  ph: 'X' | 'i' | 'M';
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: 't';
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: 'ns';
  otherData: Record<string, string>;
}

/**
 * The Chrome trace-event JSON that Perfetto (ui.perfetto.dev) and chrome://tracing open:
 * one process per host CPU, one thread per actor, instants for steps and complete ('X')
 * slices for events with a duration. Timestamps are microseconds (fractions kept).
 */
export function toChromeTrace(events: Iterable<TraceEvent>, otherData: Record<string, string> = {}): ChromeTrace {
  const out: ChromeTraceEvent[] = [];
  const seen = new Set<Actor>();
  const body: ChromeTraceEvent[] = [];
  for (const e of events) {
    if (!seen.has(e.actor)) {
      seen.add(e.actor);
      out.push({ name: 'thread_name', ph: 'M', pid: 1, tid: e.actor.pid, args: { name: e.actor.name } });
    }
    const args: Record<string, unknown> = {};
    for (const k in e.args) {
      const v = e.args[k]!;
      args[k] = typeof v === 'bigint' ? `0x${v.toString(16)}` : v;
    }
    if (e.caller !== undefined) args['caller'] = e.caller;
    args['cpu'] = e.actor.cpu;
    const base = { name: e.fn, cat: e.source, pid: 1, tid: e.actor.pid, ts: e.time / 1000, args };
    body.push(e.durNs === undefined ? { ...base, ph: 'i', s: 't' } : { ...base, ph: 'X', dur: e.durNs / 1000 });
  }
  out.unshift({ name: 'process_name', ph: 'M', pid: 1, tid: 0, args: { name: 'virq' } });
  return { traceEvents: out.concat(body), displayTimeUnit: 'ns', otherData: { generator: 'virq', ...otherData } };
}
