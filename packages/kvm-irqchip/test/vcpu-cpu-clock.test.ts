import { createSimContext } from '@virq/core';
import { VcpuCpuClock } from '../src/vcpu-cpu-clock.js';
import { VmxExitCounts } from '../src/vmx-exit-counts.js';

describe('VcpuCpuClock', () => {
  function rig() {
    const ctx = createSimContext();
    const actor = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
    return { ctx, actor, clock: new VcpuCpuClock(actor, ctx.scheduler) };
  }

  it('charges steps back to back and settles what lies past now', () => {
    const { ctx, actor, clock } = rig();
    ctx.scheduler.after(0, actor, () => {
      clock.charge(400); // an exit
      clock.charge(600); // its handling, right after
    });
    ctx.scheduler.runUntil(700);
    clock.settle();
    expect(actor.cpuTimeNs).toBe(700); // 300 ns of the handling had not run yet
    clock.settle();
    expect(actor.cpuTimeNs).toBe(700);
  });

  it('others\' charges inside a step extend it; charges made by guest code are deferred to the next exit', () => {
    const { ctx, actor, clock } = rig();
    let ran = -1;
    let deferred = -1;
    ctx.scheduler.after(0, actor, () => {
      clock.charge(100);
      const cpu = actor.cpuTimeNs;
      const own = clock.ownCharged;
      actor.charge(1000); // QEMU's emulation on this thread
      clock.charge(50);
      ran = clock.ranSince(cpu, own);
      clock.extend(ran);
      const before = actor.cpuTimeNs;
      actor.charge(300); // guest code set off emulation for a queued access
      clock.defer(before);
      deferred = clock.takeDeferred();
      expect(clock.takeDeferred()).toBe(0);
    });
    ctx.scheduler.runUntil(5000);
    expect(ran).toBe(1000);
    expect(deferred).toBe(300);
    expect(actor.cpuTimeNs).toBe(1150); // 100 + 1000 + 50: the deferred 300 is the next exit's to charge
    clock.settle();
    expect(actor.cpuTimeNs).toBe(1150); // all of it ended before 5000
  });
});

describe('VmxExitCounts', () => {
  it('counts by reason and lists reasons in the order they first occurred', () => {
    const c = new VmxExitCounts();
    c.count('HLT');
    c.count('EPT_MISCONFIG');
    c.count('HLT');
    expect([...c.byReason()]).toEqual([['HLT', 2], ['EPT_MISCONFIG', 1]]);
    const copy = c.byReason();
    copy.set('HLT', 99);
    expect(c.byReason().get('HLT')).toBe(2);
  });
});
