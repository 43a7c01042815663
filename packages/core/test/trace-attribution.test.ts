import { TraceRecorder, createSimContext } from '../src/index.js';

describe('Actor.traceAs', () => {
  it('untagged events of a step go to the actor it runs code for while traceAs is set; tagged ones keep theirs', () => {
    const ctx = createSimContext();
    const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
    const guest = ctx.scheduler.actor({ name: 'guest/vcpu0', kind: 'guest', cpu: 1 });
    const ch = ctx.trace.channel('t');
    const rec = new TraceRecorder(ctx.trace.events$);
    ctx.scheduler.after(0, vcpu, () => {
      ch.emit('t.a', 'a', undefined, {});
      vcpu.traceAs = guest;
      ch.emit('t.b', 'b', undefined, {});
      ch.emit('t.c', 'c', undefined, {}, undefined, vcpu);
      vcpu.traceAs = undefined;
      ch.emit('t.d', 'd', undefined, {});
    });
    // Outside any step, events belong to the host actor whatever an actor's traceAs says.
    vcpu.traceAs = guest;
    ch.emit('t.e', 'e', undefined, {});
    vcpu.traceAs = undefined;
    ctx.scheduler.runUntilIdle();
    expect(rec.events.map((e) => `${e.fn}:${e.actor.name}`)).toEqual(['e:virq', 'a:CPU 0/KVM', 'b:guest/vcpu0', 'c:CPU 0/KVM', 'd:CPU 0/KVM']);
  });
});
