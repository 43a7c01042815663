// Scheduler + trace bus throughput. Prints events/s with no subscriber and with one, as
// alternating A/B pairs (this host is noisy), their medians, and the per-pair ratios.
import { EventFd, Scheduler, TraceBus, type TraceEvent } from '@virq/core';

const EVENTS = 2_000_000;
const PAIRS = 7;

/** Two actors ping-ponging through eventfds, each hop traced — the shape of a kick/call path. */
function run(subscribe: boolean): number {
  const s = new Scheduler({ seed: 1 });
  const bus = new TraceBus(s);
  const ch = bus.channel<TraceEvent<'bench.hop', { n: number }>>('bench');
  let seen = 0;
  const sub = subscribe ? bus.events$.subscribe(() => void seen++) : undefined;
  const a = s.actor({ name: 'vcpu', kind: 'vcpu', cpu: 0 });
  const b = s.actor({ name: 'backend', kind: 'backend', cpu: 1 });
  const kick = new EventFd(s, { name: 'kick' });
  const call = new EventFd(s, { name: 'call' });
  let hops = 0;
  kick.addWaiter({
    actor: b,
    delayNs: 200,
    wake: (fd) => {
      fd.testAndClear();
      if (ch.on) ch.emit('bench.hop', 'vhost_poll_wakeup', 'eventfd_signal', { n: hops });
      if (++hops < EVENTS) call.write(1);
    },
  });
  call.addWaiter({
    actor: a,
    delayNs: 200,
    wake: (fd) => {
      fd.testAndClear();
      if (ch.on) ch.emit('bench.hop', 'irqfd_wakeup', 'eventfd_signal', { n: hops });
      if (++hops < EVENTS) kick.write(1);
    },
  });
  s.at(0, a, () => kick.write(1));
  const t0 = process.hrtime.bigint();
  s.runUntilIdle();
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  sub?.unsubscribe();
  if (subscribe && seen !== hops) throw new Error(`subscriber saw ${seen} of ${hops} events`);
  return s.executed / dt;
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
run(false);
run(true); // warm-up
const off: number[] = [];
const on: number[] = [];
const ratios: number[] = [];
for (let i = 0; i < PAIRS; i++) {
  const a = i % 2 === 0 ? run(false) : NaN;
  const b = run(true);
  const a2 = i % 2 === 0 ? a : run(false);
  off.push(a2);
  on.push(b);
  ratios.push(b / a2);
}
const fmt = (x: number): string => `${(x / 1e6).toFixed(2)} M events/s`;
console.log(`core bench: scheduler + eventfd + trace bus, ${EVENTS} hops per run, ${PAIRS} alternating pairs`);
console.log(`  no subscriber : median ${fmt(median(off))}   runs ${off.map((x) => (x / 1e6).toFixed(2)).join(' ')}`);
console.log(`  one subscriber: median ${fmt(median(on))}   runs ${on.map((x) => (x / 1e6).toFixed(2)).join(' ')}`);
console.log(`  subscribed / unsubscribed per pair: ${ratios.map((r) => r.toFixed(3)).join(' ')}  median ${median(ratios).toFixed(3)}`);
