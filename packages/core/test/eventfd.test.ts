import fc from 'fast-check';
import { EVENTFD_MAX, EventFd, Scheduler, VirqError } from '@virq/core';

const MAX64 = 0xffff_ffff_ffff_ffffn;

function setup(opts: { semaphore?: boolean; initval?: number } = {}) {
  const s = new Scheduler({ seed: 1 });
  const a = s.actor({ name: 'writer', kind: 'vmm-main' });
  return { s, a, fd: new EventFd(s, opts) };
}

describe('EventFd (eventfd(2) semantics)', () => {
  it('write adds, read returns the counter and zeroes it', () => {
    const { fd } = setup();
    fd.write(3);
    fd.write(4n);
    expect(fd.read()).toBe(7n);
    expect(fd.readable).toBe(false);
  });

  it('read of zero is EAGAIN (non-blocking)', () => {
    const { fd } = setup();
    expect(fd.tryRead()).toBeUndefined();
    try {
      fd.read();
      throw new Error('read of zero did not fail');
    } catch (e) {
      expect(VirqError.is(e, 'eventfd.would-block')).toBe(true);
      expect((e as VirqError).errno).toBe('EAGAIN');
    }
  });

  it('initval is the starting counter', () => {
    const { fd } = setup({ initval: 5 });
    expect(fd.read()).toBe(5n);
  });

  it('EFD_SEMAPHORE reads return 1 and decrement', () => {
    const { fd } = setup({ semaphore: true });
    fd.write(3);
    expect([fd.read(), fd.read(), fd.read()]).toEqual([1n, 1n, 1n]);
    expect(fd.tryRead()).toBeUndefined();
  });

  it('writing 2^64-1 is EINVAL and leaves the counter alone', () => {
    const { fd } = setup();
    fd.write(1);
    expect(() => fd.write(MAX64)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(fd.count).toBe(1n);
  });

  it('the counter holds at most 2^64-2; a write past it is EAGAIN and changes nothing', () => {
    const { fd } = setup();
    fd.write(EVENTFD_MAX);
    expect(fd.count).toBe(MAX64 - 1n);
    expect(fd.tryWrite(1)).toBe('EAGAIN');
    expect(() => fd.write(1)).toThrow(expect.objectContaining({ errno: 'EAGAIN' }));
    expect(fd.count).toBe(MAX64 - 1n);
    expect(fd.read()).toBe(MAX64 - 1n);
    expect(fd.readable).toBe(false);
  });

  it('a zero write succeeds and still wakes waiters (eventfd_write wakes on every write)', () => {
    const { s, a, fd } = setup();
    let woken = 0;
    fd.addWaiter({ actor: a, wake: () => woken++ });
    s.at(0, a, () => fd.write(0));
    s.runUntilIdle();
    expect(woken).toBe(1);
    expect(fd.readable).toBe(false);
  });

  it('negative and fractional writes are EINVAL', () => {
    const { fd } = setup();
    expect(() => fd.write(-1)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => fd.write(1.5)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(() => fd.write(-1n)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });

  it('waiters are woken through the scheduler, not inside write()', () => {
    const { s, a, fd } = setup();
    const order: string[] = [];
    const reader = s.actor({ name: 'reader', kind: 'vhost-worker' });
    fd.addWaiter({ actor: reader, delayNs: 100, wake: (f) => order.push(`wake@${s.now}:${f.read()}`) });
    s.at(10, a, () => {
      fd.write(2);
      order.push('after-write');
    });
    s.runUntilIdle();
    expect(order).toEqual(['after-write', 'wake@110:2']);
  });

  it('a waiter without an actor runs on the writer (kernel wait-queue callback context)', () => {
    const { s, a, fd } = setup();
    let ranOn: string | undefined;
    fd.addWaiter({ wake: () => (ranOn = s.current?.name) });
    s.at(0, a, () => fd.write(1));
    s.runUntilIdle();
    expect(ranOn).toBe('writer');
  });

  it('removed waiters and closed fds are not woken', () => {
    const { s, a, fd } = setup();
    let n = 0;
    const remove = fd.addWaiter({ actor: a, wake: () => n++ });
    remove();
    s.at(0, a, () => fd.write(1));
    s.runUntilIdle();
    expect(n).toBe(0);
    fd.close();
    expect(() => fd.write(1)).toThrow(expect.objectContaining({ errno: 'EBADF' }));
  });

  it('property: against a bigint reference model, any write/read sequence agrees', () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('w' as const), v: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.bigInt({ min: 0n, max: MAX64 })) }),
      fc.record({ t: fc.constant('r' as const) }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(op, { maxLength: 60 }), (sem, ops) => {
        const { fd } = setup({ semaphore: sem });
        let model = 0n;
        for (const o of ops) {
          if (o.t === 'w') {
            const v = BigInt(o.v);
            if (v === MAX64) {
              expect(() => fd.write(o.v)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
            } else if (model + v > EVENTFD_MAX) {
              expect(fd.tryWrite(o.v)).toBe('EAGAIN');
            } else {
              expect(fd.tryWrite(o.v)).toBe('ok');
              model += v;
            }
          } else {
            const got = fd.tryRead();
            if (model === 0n) expect(got).toBeUndefined();
            else if (sem) {
              expect(got).toBe(1n);
              model -= 1n;
            } else {
              expect(got).toBe(model);
              model = 0n;
            }
          }
          expect(fd.count).toBe(model);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('an inline waiter (irqfd_wakeup) runs inside the write, in the writer\'s context, before the write returns; queued waiters still wait', () => {
    const s = new Scheduler();
    const writer = s.actor({ name: 'vhost-1234', kind: 'vhost-worker' });
    const fd = new EventFd(s, { name: 'call' });
    const log: string[] = [];
    fd.addWaiter({ wake: () => log.push(`queued@${s.now}`) });
    fd.addWaiter({ inline: true, wake: (f) => log.push(`inline on ${s.current?.name} count=${f.testAndClear()}`) });
    s.at(10, writer, () => {
      fd.write(3);
      log.push('write returned');
    });
    s.runUntilIdle();
    expect(log).toEqual(['inline on vhost-1234 count=3', 'write returned', 'queued@10']);
    expect(() => fd.addWaiter({ inline: true, actor: writer, wake: () => undefined })).toThrow(/no actor and no delay/);
    expect(() => fd.addWaiter({ inline: true, delayNs: 5, wake: () => undefined })).toThrow(VirqError);
  });
});

