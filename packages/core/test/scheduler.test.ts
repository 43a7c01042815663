import fc from 'fast-check';
import { Prng, Scheduler, VirqError } from '@virq/core';

describe('Scheduler', () => {
  it('runs events in time order, same-instant events in the order scheduled', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'a', kind: 'vcpu' });
    const log: string[] = [];
    s.at(20, a, () => log.push('t20-first'));
    s.at(10, a, () => {
      log.push('t10');
      s.after(10, a, () => log.push('t20-third (scheduled later)'));
      s.after(0, a, () => log.push('t10-now'));
    });
    s.at(20, a, () => log.push('t20-second'));
    s.runUntilIdle();
    expect(log).toEqual(['t10', 't10-now', 't20-first', 't20-second', 't20-third (scheduled later)']);
  });

  it('an event scheduled earlier for "now" runs before one scheduled now for now', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'a', kind: 'vcpu' });
    const log: number[] = [];
    s.at(5, a, () => {
      log.push(1);
      s.after(0, a, () => log.push(3));
    });
    s.at(5, a, () => log.push(2));
    s.runUntilIdle();
    expect(log).toEqual([1, 2, 3]);
  });

  it('current is the running actor; now is the event time', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
    const b = s.actor({ name: 'qemu-system-x86', kind: 'vmm-main' });
    const seen: string[] = [];
    s.at(7, a, () => seen.push(`${s.current?.name}@${s.now}`));
    s.at(9, b, () => seen.push(`${s.current?.name}@${s.now}`));
    s.runUntilIdle();
    expect(seen).toEqual(['CPU 0/KVM@7', 'qemu-system-x86@9']);
    expect(s.current).toBeUndefined();
    expect(a.pid).not.toBe(b.pid);
  });

  it('runUntil stops at the bound, leaves later events, and advances the clock', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'a', kind: 'vcpu' });
    const log: number[] = [];
    for (const t of [5, 10, 15]) s.at(t, a, () => log.push(t));
    expect(s.runUntil(10)).toBe(2);
    expect(log).toEqual([5, 10]);
    expect(s.now).toBe(10);
    expect(s.queued).toBe(1);
    s.runUntil(100);
    expect(s.now).toBe(100);
    expect(log).toEqual([5, 10, 15]);
  });

  it('cancelled events do not run', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'a', kind: 'vcpu' });
    let ran = false;
    const ev = s.at(3, a, () => (ran = true));
    expect(s.cancel(ev)).toBe(true);
    expect(s.cancel(ev)).toBe(false);
    s.runUntilIdle();
    expect(ran).toBe(false);
  });

  it('rejects the past and non-integer times with typed errors', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'a', kind: 'vcpu' });
    s.runUntil(50);
    expect(() => s.at(10, a, () => undefined)).toThrow(VirqError);
    expect(() => s.at(60.5, a, () => undefined)).toThrow(expect.objectContaining({ code: 'scheduler.invalid-time' }));
    expect(() => s.after(-1, a, () => undefined)).toThrow(expect.objectContaining({ code: 'scheduler.invalid-time' }));
    expect(() => s.after(Number.NaN, a, () => undefined)).toThrow(VirqError);
  });

  it('runUntilIdle refuses to spin forever', () => {
    const s = new Scheduler();
    const a = s.actor({ name: 'timer', kind: 'device' });
    const tick = (): void => void s.after(1, a, tick);
    s.at(0, a, tick);
    expect(() => s.runUntilIdle(1000)).toThrow(expect.objectContaining({ code: 'argument.invalid' }));
  });

  it('property: execution order equals a stable sort of (time, scheduling order)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 200 }), (times) => {
        const s = new Scheduler();
        const a = s.actor({ name: 'a', kind: 'vcpu' });
        const ran: number[] = [];
        times.forEach((t, i) => s.at(t, a, () => ran.push(i)));
        s.runUntilIdle();
        const expected = times.map((t, i) => ({ t, i })).sort((x, y) => x.t - y.t || x.i - y.i).map((x) => x.i);
        expect(ran).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('property: posted events (recycled records) keep the same order as queued ones, and are never confused when reused', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.boolean(), fc.integer({ min: 0, max: 3 })), { maxLength: 120 }), (plan) => {
        const order = (usePost: boolean): string[] => {
          const s = new Scheduler();
          const a = s.actor({ name: 'a', kind: 'vcpu' });
          const ran: string[] = [];
          const fire = (id: string): void => {
            ran.push(`${s.now}:${id}`);
            // each event schedules follow-ups, some through post, so records are reused while others wait
            const [dt, viaPost, more] = plan[ran.length % Math.max(1, plan.length)] ?? [1, false, 0];
            if (ran.length < 400) for (let k = 0; k < more; k++) (usePost && viaPost ? s.post.bind(s) : s.after.bind(s))(dt, a, fire, `${id}.${k}`);
          };
          plan.forEach(([t, viaPost], i) => (usePost && viaPost ? s.post(t, a, fire, `r${i}`) : s.at(t, a, fire, `r${i}`)));
          s.runUntilIdle();
          return ran;
        };
        expect(order(true)).toEqual(order(false));
      }),
      { numRuns: 150 },
    );
  });

  it('property: same seed and inputs give the same run; events that schedule events stay ordered', () => {
    const runOnce = (seed: number): string => {
      const s = new Scheduler({ seed });
      const actors = [0, 1, 2].map((i) => s.actor({ name: `w${i}`, kind: 'vcpu', cpu: i }));
      const log: string[] = [];
      const hop = (n: number): void => {
        log.push(`${s.now}:${s.current!.name}:${n}`);
        if (n > 0) s.after(s.prng.int(0, 20), actors[s.prng.int(0, 2)]!, hop, n - 1);
      };
      for (const a of actors) s.at(0, a, hop, 30);
      s.runUntilIdle();
      return log.join('\n');
    };
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => expect(runOnce(seed)).toBe(runOnce(seed))), { numRuns: 20 });
    expect(runOnce(1)).not.toBe(runOnce(2));
  });

  describe('continueAfter (a step run in place)', () => {
    /**
     * Actors each run chains of steps; a step either continues its own chain after a delay or
     * pokes another actor. The same program run with every continuation queued and with
     * continuations run in place whenever the scheduler allows must give the same log — times,
     * actors, order — and the same executed count.
     */
    const program = (seed: number, inPlace: boolean, limit?: number): { log: string; executed: number; inPlaceRuns: number } => {
      const s = new Scheduler({ seed });
      const actors = [0, 1, 2].map((i) => s.actor({ name: `w${i}`, kind: 'vcpu', cpu: i }));
      const log: string[] = [];
      let inPlaceRuns = 0;
      const chain = (n: number): void => {
        // A trampoline, as a vCPU loop uses continueAfter.
        for (let k = n; k > 0; ) {
          log.push(`${s.now}:${s.current!.name}:${k}`);
          const r = s.prng.int(0, 9);
          if (r === 0) s.after(s.prng.int(0, 30), actors[s.prng.int(0, 2)]!, chain, k - 1);
          const delay = s.prng.int(0, 25);
          if (r === 0) return;
          if (inPlace && s.continueAfter(delay, s.current!)) {
            inPlaceRuns++;
            k--;
            continue;
          }
          s.after(delay, s.current!, chain, k - 1);
          return;
        }
      };
      for (const a of actors) s.at(s.prng.int(0, 40), a, chain, 40);
      if (limit === undefined) s.runUntilIdle();
      else {
        s.runUntil(limit);
        log.push('--');
        s.runUntilIdle();
      }
      return { log: log.join('\n'), executed: s.executed, inPlaceRuns };
    };

    it('property: runs in place give exactly the run that queues every step', () => {
      let inPlace = 0;
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }), (seed, limit) => {
          const a = program(seed, false, limit);
          const b = program(seed, true, limit);
          expect(b.log).toBe(a.log);
          expect(b.executed).toBe(a.executed);
          inPlace += b.inPlaceRuns;
        }),
        { numRuns: 150 },
      );
      expect(inPlace).toBeGreaterThan(1000); // the fast path is actually taken
    });

    it('refuses when something is due first, outside a run, past runUntil, or for another actor', () => {
      const s = new Scheduler();
      const a = s.actor({ name: 'a', kind: 'vcpu' });
      const b = s.actor({ name: 'b', kind: 'vcpu' });
      const seen: boolean[] = [];
      expect(s.continueAfter(5, a)).toBe(false); // no event running
      s.at(0, a, () => {
        seen.push(s.continueAfter(10, b)); // not the running actor
        seen.push(s.continueAfter(10, a)); // b's event at 10 is due at the same time: FIFO puts it first
        seen.push(s.continueAfter(9, a)); // nothing due by 9
        seen.push(s.now === 9);
      });
      s.at(10, b, () => undefined);
      s.runUntilIdle();
      s.at(20, a, () => {
        seen.push(s.continueAfter(5, a)); // 25 ≤ runUntil(30)
        seen.push(s.continueAfter(10, a)); // 35 > 30
      });
      s.runUntil(30);
      s.at(40, a, () => seen.push(s.continueAfter(1, a)));
      s.step(); // a single step() has no run bound
      expect(seen).toEqual([false, false, true, true, true, false, false]);
    });

    it('chains at most 64 steps in place per queued event, so runUntilIdle still stops a run that never idles', () => {
      const s = new Scheduler();
      const a = s.actor({ name: 'spin', kind: 'vcpu' });
      const spin = (): void => {
        while (s.continueAfter(1, a)) {
          /* a guest computing forever */
        }
        s.after(1, a, spin);
      };
      s.at(0, a, spin);
      expect(() => s.runUntilIdle(10_000)).toThrow(VirqError);
      expect(s.executed).toBeGreaterThanOrEqual(10_000);
      expect(s.executed).toBeLessThan(10_000 + 66);
    });
  });
});

describe('Prng', () => {
  it('is deterministic per seed and spreads over its range', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 1000 }, () => a.nextU32());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.nextU32()));
    const buckets = new Array(10).fill(0);
    const p = new Prng(7);
    for (let i = 0; i < 100_000; i++) buckets[Math.floor(p.next() * 10)]++;
    for (const n of buckets) expect(Math.abs(n - 10_000)).toBeLessThan(600);
    const ints = new Set(Array.from({ length: 2000 }, () => p.int(3, 6)));
    expect([...ints].sort()).toEqual([3, 4, 5, 6]);
  });
});
