import { createSimContext } from '@virq/core';
import { APIC, KvmVm, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';

/** A guest that computes in long steps and records what it did. */
class Worker implements GuestModel {
  readonly log: string[] = [];
  steps = 0;
  next(): GuestOp {
    this.steps++;
    return this.steps <= 6 ? { op: 'compute', ns: 10_000 } : { op: 'hlt' };
  }
  interrupt(_v: number, vector: number): readonly GuestOp[] {
    this.log.push(`irq ${vector}`);
    return [{ op: 'compute', ns: 300 }, { op: 'eoi' }];
  }
}

describe('PIR → vIRR sync while the guest runs (APICv posted-interrupt processing)', () => {
  test('the interrupted step resumes after the handler, and CPU time never exceeds elapsed time', () => {
    const ctx = createSimContext();
    const vm = new KvmVm(ctx, { nvcpus: 1 });
    vm.setApicv(true);
    const v = vm.vcpu(0)!;
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    const g = new Worker();
    v.setGuest(g);
    v.run();
    ctx.scheduler.runUntil(15_000); // inside the second 10 µs step
    const stepsBefore = g.steps;
    const cpu = ctx.scheduler.actor({ name: 'irq/cpu1', kind: 'host-cpu', cpu: 1 });
    ctx.scheduler.at(15_000, cpu, () => v.syncPirToIrr([0x45]));
    ctx.scheduler.runUntilIdle();
    expect(g.log).toEqual(['irq 69']);
    // The guest went on computing after the handler (it did not stall in the handler) and halted.
    expect(g.steps).toBe(stepsBefore + 5);
    expect([...v.exits]).toEqual([['HLT', 1]]);
    expect(v.blocked).toBe(true);
    // Busy from 0 until the HLT exit completed: never charged more than that (the interrupted
    // step's unrun 5 µs must not be charged twice).
    expect(v.actor.cpuTimeNs).toBeLessThanOrEqual(ctx.scheduler.now);
    expect(v.actor.cpuTimeNs).toBeGreaterThan(60_000);
  });
});
