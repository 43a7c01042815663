import { VirqError, createSimContext } from '@virq/core';
import { IrqBypassManager, type IrqBypassConsumer, type IrqBypassProducer } from '@virq/irqbypass';

function actors(log: string[], token: object | null, opts: { failAdd?: boolean } = {}): { p: IrqBypassProducer; c: IrqBypassConsumer } {
  const p: IrqBypassProducer = {
    token,
    irq: 42,
    addConsumer: () => log.push('prod.add_consumer'),
    delConsumer: () => log.push('prod.del_consumer'),
    stop: () => log.push('prod.stop'),
    start: () => log.push('prod.start'),
  };
  const c: IrqBypassConsumer = {
    token,
    addProducer: () => {
      log.push('cons.add_producer');
      if (opts.failAdd === true) throw new VirqError('test.add-failed', 'add_producer failed', { errno: 'EINVAL' });
    },
    delProducer: () => log.push('cons.del_producer'),
    stop: () => log.push('cons.stop'),
    start: () => log.push('cons.start'),
  };
  return { p, c };
}

// virt/lib/irqbypass.c __connect / __disconnect (FACTS §9.1).
const CONNECT = ['prod.stop', 'cons.stop', 'prod.add_consumer', 'cons.add_producer', 'cons.start', 'prod.start'];
const DISCONNECT = ['prod.stop', 'cons.stop', 'cons.del_producer', 'prod.del_consumer', 'cons.start', 'prod.start'];

describe('irqbypass manager (virt/lib/irqbypass.c)', () => {
  test.each(['producer', 'consumer'] as const)('%s first: the second registration connects, in the kernel’s callback order', (first) => {
    const m = new IrqBypassManager(createSimContext());
    const log: string[] = [];
    const { p, c } = actors(log, {});
    if (first === 'producer') m.registerProducer(p);
    else m.registerConsumer(c);
    expect(log).toEqual([]);
    if (first === 'producer') m.registerConsumer(c);
    else m.registerProducer(p);
    expect(log).toEqual(CONNECT);
    expect(m.partnerOfProducer(p)).toBe(c);
    expect(m.partnerOfConsumer(c)).toBe(p);
  });

  test.each(['producer', 'consumer'] as const)('unregistering the %s disconnects in the kernel’s order; the other stays registered', (which) => {
    const m = new IrqBypassManager(createSimContext());
    const log: string[] = [];
    const { p, c } = actors(log, {});
    m.registerProducer(p);
    m.registerConsumer(c);
    log.length = 0;
    if (which === 'producer') m.unregisterProducer(p);
    else m.unregisterConsumer(c);
    expect(log).toEqual(DISCONNECT);
    expect(m.connectedCount).toBe(0);
    expect(m.isProducerRegistered(p)).toBe(which !== 'producer');
    expect(m.isConsumerRegistered(c)).toBe(which !== 'consumer');
  });

  test('pairing is by token identity: different tokens never connect', () => {
    const m = new IrqBypassManager(createSimContext());
    const log: string[] = [];
    m.registerProducer(actors(log, {}).p);
    m.registerConsumer(actors(log, {}).c);
    expect(log).toEqual([]);
    expect(m.connectedCount).toBe(0);
  });

  test('duplicates are rejected with EBUSY: a second producer or consumer with the same token, or the same consumer twice', () => {
    const m = new IrqBypassManager(createSimContext());
    const token = {};
    const a = actors([], token);
    const b = actors([], token);
    m.registerProducer(a.p);
    m.registerConsumer(a.c);
    const busy = (f: () => void): void => {
      try {
        f();
        throw new Error('no error');
      } catch (e) {
        expect(VirqError.is(e, 'irqbypass.busy')).toBe(true);
        expect((e as VirqError).errno).toBe('EBUSY');
      }
    };
    busy(() => m.registerProducer(b.p));
    busy(() => m.registerConsumer(b.c));
    busy(() => m.registerConsumer(a.c));
    expect(m.producerCount).toBe(1);
    expect(m.consumerCount).toBe(1);
    expect(m.partnerOfConsumer(a.c)).toBe(a.p);
  });

  test('NULL tokens and consumers without add/del_producer are EINVAL', () => {
    const m = new IrqBypassManager(createSimContext());
    const { p, c } = actors([], null);
    expect(() => m.registerProducer(p)).toThrow(expect.objectContaining({ code: 'irqbypass.invalid', errno: 'EINVAL' }));
    expect(() => m.registerConsumer(c)).toThrow(expect.objectContaining({ code: 'irqbypass.invalid', errno: 'EINVAL' }));
    const bad = { token: {}, addProducer: undefined, delProducer: undefined } as unknown as IrqBypassConsumer;
    expect(() => m.registerConsumer(bad)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });

  test('a failing add_producer aborts the registration and calls the producer’s del_consumer back', () => {
    const m = new IrqBypassManager(createSimContext());
    const log: string[] = [];
    const { p, c } = actors(log, {}, { failAdd: true });
    m.registerProducer(p);
    expect(() => m.registerConsumer(c)).toThrow(expect.objectContaining({ code: 'test.add-failed' }));
    expect(log).toEqual(['prod.stop', 'cons.stop', 'prod.add_consumer', 'cons.add_producer', 'prod.del_consumer', 'cons.start', 'prod.start']);
    expect(m.isConsumerRegistered(c)).toBe(false);
    expect(m.connectedCount).toBe(0);
  });

  test('unregistering something never registered does nothing', () => {
    const m = new IrqBypassManager(createSimContext());
    const log: string[] = [];
    const { p, c } = actors(log, {});
    m.unregisterProducer(p);
    m.unregisterConsumer(c);
    expect(log).toEqual([]);
  });
});
