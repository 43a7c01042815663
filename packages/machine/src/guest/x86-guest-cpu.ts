import type { Scheduler } from '@virq/core';
import type { GuestModel, GuestOp } from '@virq/kvm-irqchip';
import type { GuestIrqDomain } from './irq-domain.js';

interface Task {
  time: number;
  seq: number;
  run: () => void;
}

/**
 * One vCPU's guest kernel as the x86 run loop sees it (a `GuestModel`). Guest driver code
 * (the Linux virtio/VFIO driver models) runs synchronously inside `next()` / `interrupt()`;
 * the register writes it makes are captured (see `GuestMmio`) and handed to the vCPU as
 * `mmio-write`/`pio-write` operations, so each one takes its real exit (EPT_MISCONFIG,
 * IO_INSTRUCTION) and cost on the vCPU's timeline. Between tasks the guest computes until
 * the next one is due, and halts when it has nothing left.
 */
export class X86GuestCpu implements GuestModel {
  private readonly queued: GuestOp[] = [];
  private tasks: Task[] = [];
  private seq = 0;
  /** Ops captured from driver code currently running on this vCPU. */
  capture: GuestOp[] | undefined;
  /** Interrupts taken, by vector. */
  readonly taken = new Map<number, number>();
  spurious = 0;

  constructor(
    readonly vcpuId: number,
    private readonly scheduler: Scheduler,
    private readonly irqs: GuestIrqDomain,
    private readonly handlerNs: number,
    private readonly current: { cpu: X86GuestCpu | undefined },
  ) {}

  /** Runs `fn` as guest code on this vCPU at or after `time`. */
  at(time: number, run: () => void): void {
    const t: Task = { time, seq: this.seq++, run };
    const ts = this.tasks;
    let i = ts.length;
    while (i > 0 && (ts[i - 1]!.time > time || (ts[i - 1]!.time === time && ts[i - 1]!.seq > t.seq))) i--;
    ts.splice(i, 0, t);
  }

  get pendingTasks(): number {
    return this.tasks.length;
  }

  /** Runs driver code with this vCPU as the one whose register accesses are captured. */
  private runGuest(fn: () => void, into: GuestOp[]): void {
    const prevCpu = this.current.cpu;
    const prevCap = this.capture;
    this.current.cpu = this;
    this.capture = into;
    try {
      fn();
    } finally {
      this.current.cpu = prevCpu;
      this.capture = prevCap;
    }
  }

  next(): GuestOp {
    const q = this.queued;
    if (q.length > 0) return q.shift()!;
    const now = this.scheduler.now;
    while (this.tasks.length > 0 && this.tasks[0]!.time <= now) {
      const t = this.tasks.shift()!;
      this.runGuest(t.run, q);
      if (q.length > 0) return q.shift()!;
    }
    if (this.tasks.length > 0) return { op: 'compute', ns: this.tasks[0]!.time - now };
    return { op: 'hlt' };
  }

  interrupt(vcpuId: number, vector: number): readonly GuestOp[] {
    this.taken.set(vector, (this.taken.get(vector) ?? 0) + 1);
    // The handler runs on the vCPU's own thread when the CPU gets to it (a 'call' op): its
    // driver code, then its cost, then the register writes it made, then the EOI.
    // A vector nobody registered still enters through common_interrupt (which finds no
    // descriptor and reports it); it is counted as spurious.
    const name = this.irqs.fnOf(vcpuId, vector) ?? 'common_interrupt';
    // Linux's system-vector handlers (DEFINE_IDTENTRY_SYSVEC: the APIC timer, call-function IPIs)
    // acknowledge first (apic_eoi), then do their work; device interrupts EOI when done.
    const sysvec = name.startsWith('sysvec_');
    const work: GuestOp = sysvec ? { op: 'compute', ns: this.handlerNs } : { op: 'compute', ns: this.handlerNs, fn: name };
    const run = (): readonly GuestOp[] => {
      const body: GuestOp[] = [];
      let known = false;
      this.runGuest(() => {
        known = this.irqs.handle(vcpuId, vector, this.scheduler.now);
      }, body);
      if (!known) this.spurious++;
      // A handler that starts by reading its device (vp_interrupt's ISR read) takes that exit
      // first; the rest of its accesses follow its work.
      const first = body[0];
      if (first !== undefined && (first.op === 'mmio-read' || first.op === 'pio-read') && first.applied === true) return [first, work, ...body.slice(1)];
      return [work, ...body];
    };
    if (sysvec) return [{ op: 'compute', ns: 0, fn: name }, { op: 'eoi' }, { op: 'call', run }];
    return [{ op: 'call', run }, { op: 'eoi' }];
  }
}
