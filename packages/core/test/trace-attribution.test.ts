import { TraceRecorder, createSimContext } from '../src/index.js';

describe('TraceBus attribution and listening', () => {
  it('untagged events go to the attributed actor until it is restored; tagged ones keep theirs', () => {
    const ctx = createSimContext();
    const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
    const guest = ctx.scheduler.actor({ name: 'guest/vcpu0', kind: 'guest', cpu: 1 });
    const ch = ctx.trace.channel('t');
    const rec = new TraceRecorder(ctx.trace.events$);
    ctx.scheduler.after(0, vcpu, () => {
      ch.emit('t.a', 'a', undefined, {});
      const prev = ctx.trace.attribute(guest);
      ch.emit('t.b', 'b', undefined, {});
      ch.emit('t.c', 'c', undefined, {}, undefined, vcpu);
      expect(ctx.trace.attribute(prev)).toBe(guest);
      ch.emit('t.d', 'd', undefined, {});
    });
    ctx.scheduler.runUntilIdle();
    expect(rec.events.map((e) => `${e.fn}:${e.actor.name}`)).toEqual(['a:CPU 0/KVM', 'b:guest/vcpu0', 'c:CPU 0/KVM', 'd:CPU 0/KVM']);
  });

  it('anyListening follows subscribers of any channel and of the bus', () => {
    const ctx = createSimContext();
    const a = ctx.trace.channel('a');
    ctx.trace.channel('b');
    expect(ctx.trace.anyListening).toBe(false);
    const s1 = a.events$.subscribe(() => undefined);
    expect(ctx.trace.anyListening).toBe(true);
    const s2 = ctx.trace.events$.subscribe(() => undefined);
    s1.unsubscribe();
    expect(ctx.trace.anyListening).toBe(true); // the bus subscriber still listens to every channel
    s2.unsubscribe();
    expect(ctx.trace.anyListening).toBe(false);
    const late = ctx.trace.channel('late'); // created while nobody listens
    const s3 = ctx.trace.events$.subscribe(() => undefined);
    expect(late.on).toBe(true);
    s3.unsubscribe();
    expect(ctx.trace.anyListening).toBe(false);
  });
});
