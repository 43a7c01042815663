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

describe('the block check syncs the PIR (apic_has_interrupt_for_ppr → sync_pir_to_irr)', () => {
  test('a post that found the vCPU between its HLT exit and the block (ON set, no wake-up to send) is taken, not lost', () => {
    const ctx = createSimContext();
    const vm = new KvmVm(ctx, { nvcpus: 1 });
    vm.setApicv(true);
    const v = vm.vcpu(0)!;
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    // A minimal posted-interrupt descriptor: ON + PIR, synced by whoever asks (entry or block check).
    let on = false;
    const pir = new Set<number>();
    const askedBy: string[] = [];
    vm.setPirSync((id, caller) => {
      askedBy.push(caller);
      if (!on) return;
      on = false;
      const vectors = [...pir];
      pir.clear();
      vm.vcpu(id)!.syncPirToIrr(vectors);
    });
    const g = new Worker();
    v.setGuest(g);
    v.run();
    // The guest's HLT exits at the end of its sixth step; while KVM handles it (outside guest
    // mode, not yet blocked) a device posts 0x46: PIR + ON, and kvm_vcpu_wake_up finds nothing to wake.
    const dev = ctx.scheduler.actor({ name: 'dev', kind: 'device', cpu: 0 });
    let posted = false;
    const poll = (): void => {
      if (!posted && v.mode === 'outside-guest' && !v.blocked && g.steps >= 7) {
        posted = true;
        pir.add(0x46);
        on = true;
        v.wakeUp();
        return;
      }
      if (!posted) ctx.scheduler.after(10, dev, poll);
    };
    ctx.scheduler.after(0, dev, poll);
    ctx.scheduler.runUntilIdle();
    expect(posted).toBe(true);
    // Without the sync at the block check the vCPU would sleep with ON set, and every later
    // post would return early (ON already set): the interrupt, and all after it, lost.
    expect(g.log).toEqual(['irq 70']);
    expect(askedBy).toContain('apic_has_interrupt_for_ppr');
    expect(on).toBe(false);
  });
});

describe('a kick during VM entry (kvm_vcpu_exit_request → cancel_injection)', () => {
  test('an MSI that arrives while the vCPU is entering with another injected cancels the entry: no exit, the first re-injected, the second through a window', () => {
    const ctx = createSimContext();
    const vm = new KvmVm(ctx, { nvcpus: 1 });
    vm.setApicv(false);
    const v = vm.vcpu(0)!;
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    const taken: number[] = [];
    let steps = 0;
    v.setGuest({
      next: () => (++steps < 40 ? { op: 'compute', ns: 5_000 } : { op: 'hlt' }),
      interrupt: (_c, vector) => {
        taken.push(vector);
        return [{ op: 'compute', ns: 300 }, { op: 'eoi' }];
      },
    });
    v.run();
    const dev = ctx.scheduler.actor({ name: 'dev', kind: 'device', cpu: 0 });
    const fns: string[] = [];
    let fired = false;
    const sub = ctx.trace.events$.subscribe((e) => {
      fns.push(e.fn === 'kvm_exit' ? `exit:${String(e.args['reason'])}` : e.fn);
      // The first injection of 0x50: 100 ns later, still inside the entry, 0x51 arrives.
      if (!fired && e.fn === 'vmx_inject_irq' && e.args['vector'] === 0x50) {
        fired = true;
        ctx.scheduler.after(100, dev, () => void vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x51 }));
      }
    });
    // 0x50 arrives while the guest computes: an IPI exit, then its injection on the way back in.
    ctx.scheduler.at(12_000, dev, () => void vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x50 }));
    ctx.scheduler.runUntilIdle();
    sub.unsubscribe();
    expect(taken).toEqual([0x50, 0x51]);
    expect(fns).toContain('vmx_cancel_injection');
    const cancel = fns.indexOf('vmx_cancel_injection');
    // After the cancel: no external-interrupt exit for 0x51's kick; 0x50 injected again, 0x51 waits for a window.
    const after = fns.slice(cancel);
    expect(after.indexOf('exit:EXTERNAL_INTERRUPT') === -1 || after.indexOf('exit:EXTERNAL_INTERRUPT') > after.indexOf('exit:PENDING_INTERRUPT')).toBe(true);
    expect(after).toContain('exit:PENDING_INTERRUPT');
    expect([...v.exits.keys()]).toContain('PENDING_INTERRUPT');
  });
});
