import type { Actor, Scheduler } from '@virq/core';
import type { SerialTimer } from './devices/serial-16550.js';

/**
 * Runs QEMU device code that guest code set off on a vCPU thread (a register access the guest
 * makes while the model runs its code): the code's trace events belong to the vCPU thread
 * itself, not to the guest task the thread is running code for.
 */
export function onVcpuThread<T>(thread: Actor, fn: () => T): T {
  const outer = thread.traceAs;
  thread.traceAs = undefined;
  try {
    return fn();
  } finally {
    thread.traceAs = outer;
  }
}

/** QEMU's main loop as a device's timer source: QEMU_CLOCK_VIRTUAL timers and later iterations. */
export function mainLoopTimer(scheduler: Scheduler, mainLoop: Actor): SerialTimer {
  return {
    after: (ns, fn) => {
      const ev = scheduler.after(ns, mainLoop, fn);
      return () => void scheduler.cancel(ev);
    },
  };
}
