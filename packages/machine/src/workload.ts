import type { Scheduler } from '@virq/core';

/**
 * Poisson arrivals with mean gap `intervalNs` from now until `untilNs`: `schedule(t, step)`
 * places each step (on an actor, or as guest code on a vCPU), `step` does the work. Gaps come
 * from the run's seeded Prng, so a seed reproduces the arrivals.
 */
export function poissonArrivals(s: Scheduler, intervalNs: number, untilNs: number, schedule: (time: number, step: () => void) => void, work: () => void): void {
  const step = (): void => {
    work();
    const next = s.now + Math.max(1, Math.round(s.prng.exponential(intervalNs)));
    if (next < untilNs) schedule(next, step);
  };
  const first = s.now + Math.round(s.prng.exponential(intervalNs));
  if (first < untilNs) schedule(first, step);
}
