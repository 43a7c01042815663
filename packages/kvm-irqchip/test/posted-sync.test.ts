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

describe('STI with APICv (virtual-interrupt delivery)', () => {
  function run(apicv: boolean) {
    const ctx = createSimContext();
    const vm = new KvmVm(ctx, { nvcpus: 1 });
    vm.setApicv(apicv);
    const v = vm.vcpu(0)!;
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    const taken: number[] = [];
    let steps = 0;
    v.setGuest({
      next: () => (++steps < 40 ? { op: 'compute', ns: 5_000 } : { op: 'hlt' }),
      interrupt: (_c, vector) => {
        taken.push(vector);
        // While the first handler runs (IF=0) a second interrupt arrives.
        return vector === 0x50 ? [{ op: 'call', run: () => void vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x51 }) }, { op: 'compute', ns: 300 }, { op: 'eoi' }] : [{ op: 'compute', ns: 300 }, { op: 'eoi' }];
      },
    });
    v.run();
    const dev = ctx.scheduler.actor({ name: 'dev', kind: 'device', cpu: 0 });
    ctx.scheduler.at(12_000, dev, () => void vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x50 }));
    ctx.scheduler.runUntilIdle();
    return { taken, exits: Object.fromEntries(v.exits) };
  }

  test('a vector pending when the handler re-enables interrupts is taken without an interrupt-window exit', () => {
    const on = run(true);
    expect(on.taken).toEqual([0x50, 0x51]);
    expect(on.exits['PENDING_INTERRUPT'] ?? 0).toBe(0);
    // Without APICv the same sequence needs KVM: the kick is an exit and the second vector is
    // injected on an entry.
    const off = run(false);
    expect(off.taken).toEqual([0x50, 0x51]);
    expect(Object.values(off.exits).reduce((a, b) => a + b, 0)).toBeGreaterThan(Object.values(on.exits).reduce((a, b) => a + b, 0));
  });
});
