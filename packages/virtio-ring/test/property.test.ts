import fc from 'fast-check';
import { DescriptorChain, type RingFeatures } from '@virq/virtio-ring';
import { buf, packedPair, splitPair } from './ring-fixture.js';

/**
 * Random interleavings of a Linux-style driver and a QEMU-style device that only runs when
 * kicked (its handler: disable notifications, pop, push, notify, re-enable and re-check —
 * virtio_queue_notify_vq's loop) and a driver that only reclaims in its interrupt handler
 * (NAPI-style: disable_cb, get_buf…, enable_cb re-check). If any notification decision were
 * wrong, buffers would strand: the final quiesce (run only what a pending notification
 * triggers) would leave them unconsumed.
 */

type Op =
  | { t: 'add'; n: number; out: number; kick: boolean }
  | { t: 'kick' }
  | { t: 'dev'; steps: number; batch: number }
  | { t: 'irq' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('add' as const), n: fc.integer({ min: 1, max: 5 }), out: fc.integer({ min: 0, max: 3 }), kick: fc.boolean() }),
  fc.record({ t: fc.constant('kick' as const) }),
  fc.record({ t: fc.constant('dev' as const), steps: fc.integer({ min: 1, max: 6 }), batch: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ t: fc.constant('irq' as const) }),
);

interface Harness {
  run(ops: Op[]): void;
}

function harness(kind: 'split' | 'packed', features: Partial<RingFeatures>, size: number, seedOrder: number): Harness {
  const p = kind === 'split' ? splitPair({ size, features, indirectEntries: features.indirectDesc ? 4 : undefined }) : packedPair({ size, features, indirectEntries: features.indirectDesc ? 4 : undefined });
  const { driver, device } = p;
  const inOrder = features.inOrder === true;
  let kickPending = false;
  let irqPending = false;
  let running = false;
  let drained = false;
  let nextToken = 1;
  const added: number[] = [];
  const returned: number[] = [];
  const popped: DescriptorChain[] = [];
  const tokenOfChain = new Map<number, number>();
  let rr = seedOrder;
  void tokenOfChain;

  const kick = (): void => {
    if (driver.kickPrepare()) {
      driver.notify();
      kickPending = true;
    }
  };
  const notifyDriver = (): void => {
    if (device.notify()) irqPending = true;
  };
  const pushSome = (k: number): void => {
    if (popped.length === 0) return;
    const n = Math.min(k, popped.length);
    if (inOrder && kind === 'split' && n > 1 && rr % 2 === 0) {
      // One used entry for the batch (IN_ORDER): id of the last buffer.
      const batch = popped.splice(0, n);
      (device as ReturnType<typeof splitPair>['device']).fillInOrderBatch(batch[n - 1]!, 0, n);
    } else {
      for (let i = 0; i < n; i++) {
        rr = (rr * 1103515245 + 12345) >>> 0;
        const at = inOrder ? 0 : rr % popped.length;
        const [c] = popped.splice(at, 1);
        device.fill(c!, 0);
      }
    }
    device.flush();
    notifyDriver();
  };
  /** One step of the device's kick handler. */
  const devStep = (batch: number): void => {
    if (!running) {
      if (!kickPending) return;
      kickPending = false;
      running = true;
      device.disableNotification();
      return;
    }
    if (drained) {
      // Separate step: the driver may add between "ring looked empty" and re-enabling.
      drained = false;
      pushSome(popped.length);
      if (device.enableNotification()) device.disableNotification();
      else running = false;
      return;
    }
    const c = device.pop();
    if (c !== null) {
      const copy = new DescriptorChain();
      copy.id = c.id;
      copy.ndescs = c.ndescs;
      popped.push(copy);
      if (popped.length >= batch) pushSome(batch);
      return;
    }
    drained = true;
  };
  const irq = (): void => {
    if (!irqPending) return;
    irqPending = false;
    driver.interrupt();
    driver.disableCb();
    for (;;) {
      for (let t = driver.getBuf(); t !== undefined; t = driver.getBuf()) returned.push(t);
      if (driver.enableCb()) break;
      driver.disableCb();
    }
  };

  return {
    run(ops: Op[]): void {
      for (const op of ops) {
        if (op.t === 'add') {
          for (let i = 0; i < op.n; i++) {
            const token = nextToken++;
            const out = Array.from({ length: op.out }, (_, k) => ({ gpa: buf(token + k), len: 64 }));
            const inn = op.out === 0 || token % 2 === 0 ? [{ gpa: buf(token + 7), len: 64 }] : [];
            if (driver.addSgs(out, inn, token)) added.push(token);
            else nextToken--;
          }
          if (op.kick) kick();
        } else if (op.t === 'kick') kick();
        else if (op.t === 'dev') for (let s = 0; s < op.steps; s++) devStep(op.batch);
        else irq();
      }
      // The driver always kicks after its last batch (as a real driver's xmit does).
      kick();
      // Quiesce: only pending notifications may run anything.
      for (let round = 0; round < 10000 && (kickPending || running || irqPending); round++) {
        if (kickPending || running) devStep(4);
        else irq();
      }
      expect(device.status).toBe('ok');
      expect(driver.broken).toBe(false);
      expect(kickPending || running || irqPending).toBe(false);
      // Every buffer made available was used exactly once …
      expect([...returned].sort((a, b) => a - b)).toEqual(added);
      // … in order when IN_ORDER was negotiated …
      if (inOrder) expect(returned).toEqual(added);
      // … and nothing stranded: the ring is empty and all descriptors are free.
      expect(device.isEmpty()).toBe(true);
      expect(driver.numFree).toBe(size);
    },
  };
}

const cases: Array<[string, 'split' | 'packed', Partial<RingFeatures>, number]> = [
  ['split, flags', 'split', {}, 8],
  ['split, EVENT_IDX', 'split', { eventIdx: true }, 8],
  ['split, EVENT_IDX + INDIRECT', 'split', { eventIdx: true, indirectDesc: true }, 4],
  ['split, IN_ORDER + EVENT_IDX', 'split', { eventIdx: true, inOrder: true }, 8],
  ['split, IN_ORDER, flags', 'split', { inOrder: true }, 4],
  ['packed, flags', 'packed', {}, 8],
  ['packed, EVENT_IDX', 'packed', { eventIdx: true }, 5],
  ['packed, EVENT_IDX + INDIRECT', 'packed', { eventIdx: true, indirectDesc: true }, 6],
];

describe('property: random driver/device interleavings keep the ring invariants', () => {
  test.each(cases)('%s', (_name, kind, features, size) => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 0, max: 1 << 30 }), (ops, seed) => {
        harness(kind, features, size, seed).run(ops);
      }),
      { numRuns: 200 },
    );
  });
});
