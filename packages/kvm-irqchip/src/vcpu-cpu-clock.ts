import type { Actor, Scheduler } from '@virq/core';

/**
 * A vCPU thread's CPU time. The thread charges each step whole when it begins (`charge`), back
 * to back; other code that runs on the thread — QEMU's device emulation behind an exit — charges
 * the actor directly, and that time has to become part of the thread's timeline too, or the
 * thread would be busier than time allows:
 * - emulation a handler ran inside an exit extends that exit (`ranSince` → `extend`);
 * - emulation guest code set off at once (a driver model applying an access whose exit is queued
 *   to follow) is taken back and spent in the next exit (`defer` → `takeDeferred`);
 * - at the end of a run the part of in-flight steps past now is taken back (`settle`).
 */
export class VcpuCpuClock {
  /** The end of the CPU time charged so far. */
  private until = 0;
  /** What `charge` charged (the rest of the actor's time was charged by code the thread ran). */
  private own = 0;
  /** Emulation time guest code set off, to be spent in the next exit. */
  private deferred = 0;

  constructor(
    private readonly actor: Actor,
    private readonly scheduler: Scheduler,
  ) {}

  /** Charges `ns` of CPU time from now on, back to back with what was charged before. */
  charge(ns: number): void {
    this.actor.charge(ns);
    this.own += ns;
    const now = this.scheduler.now;
    this.until = (this.until > now ? this.until : now) + ns;
  }

  /** What `charge` has charged in all (with the actor's CPU time, a point to measure others' charges from). */
  get ownCharged(): number {
    return this.own;
  }

  /** CPU time other code charged to the thread since the actor had `cpuBefore` and this clock `ownBefore`. */
  ranSince(cpuBefore: number, ownBefore: number): number {
    return this.actor.cpuTimeNs - cpuBefore - (this.own - ownBefore);
  }

  /** Time already charged by other code that lengthens what the thread is doing now. */
  extend(ns: number): void {
    const now = this.scheduler.now;
    this.until = (this.until > now ? this.until : now) + ns;
  }

  /** Takes back what other code charged since `cpuBefore` (actor CPU time) and keeps it for the next exit. */
  defer(cpuBefore: number): void {
    const ran = this.actor.cpuTimeNs - cpuBefore;
    this.actor.charge(-ran);
    this.deferred += ran;
  }

  /** The deferred emulation time, now to be spent (and charged) by the caller. */
  takeDeferred(): number {
    const d = this.deferred;
    this.deferred = 0;
    return d;
  }

  /** Takes back the CPU time charged beyond now, so the thread's time is what it ran up to now. */
  settle(): void {
    const now = this.scheduler.now;
    const over = this.until - now;
    if (over > 0) {
      this.actor.charge(-over);
      this.until = now;
    }
  }
}
