import fc from 'fast-check';
import { GuestMemory, TraceRecorder, VirqError, createSimContext } from '@virq/core';
import {
  DescriptorChain,
  SplitVirtqueueDevice,
  SplitVirtqueueDriver,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VirtioRingErrorCode,
  splitRingLayout,
  type Segment,
  type VirtioRingEvent,
} from '@virq/virtio-ring';

/**
 * The burst entry points (device popBurst / fillBurst, driver addOutbufs / getBufs) promise to
 * be exactly n calls of the one-at-a-time ones (pop / fill / addOutbuf / getBuf), whose
 * behaviour the other suites pin to QEMU's and Linux's. Here two identical rings are driven
 * side by side — one through the single calls, one through the bursts — by random programs
 * that include a hostile driver scribbling on the ring and buffers partly outside guest memory,
 * and every observable must match: return values, chains, ring bytes, state, errors, events.
 */

const Q = 8;
const RING = 0x10000;
/** Two adjacent RAM regions [0, 0x90000) and [0x90000, 0xa0000), then a hole. */
const RAM_END = 0xa0000;
const HOLE = 0xa0000;

function memory(): GuestMemory {
  return new GuestMemory([
    { gpa: 0, size: 0x90000, name: 'low' },
    { gpa: 0x90000, size: 0x10000, name: 'high' },
  ]);
}

type Op =
  | { t: 'out'; gpa: number; len: number }
  | { t: 'outs'; bufs: { gpa: number; len: number }[] }
  | { t: 'sgs'; out: Segment[]; inn: Segment[] }
  | { t: 'kick' }
  | { t: 'pop'; max: number }
  | { t: 'complete'; count: number; len: number }
  | { t: 'get'; max: number }
  | { t: 'scribble'; off: number; val: number }
  | { t: 'reset' };

/** Addresses that exercise the region cache: ordinary, spanning the two regions, running into the hole, in the hole, above 4 GiB. */
const gpaArb = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0x80000, max: 0x80400 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0x90000, max: 0x90400 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0x8ffc0, max: 0x90010 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x9ffc0, max: 0x9ffff }) },
  { weight: 1, arbitrary: fc.constantFrom(HOLE, HOLE + 0x100, 2 ** 32 + 0x80000, 2 ** 40) },
);
const segArb = fc.record({ gpa: gpaArb, len: fc.integer({ min: 1, max: 0x60 }) });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('out' as const), gpa: gpaArb, len: fc.integer({ min: 1, max: 0x60 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('outs' as const), bufs: fc.array(segArb, { minLength: 0, maxLength: 10 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('sgs' as const), out: fc.array(segArb, { maxLength: 3 }), inn: fc.array(segArb, { maxLength: 3 }) }).filter((o) => o.out.length + o.inn.length > 0) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('kick' as const) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('pop' as const), max: fc.integer({ min: 0, max: 10 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('complete' as const), count: fc.integer({ min: 0, max: 8 }), len: fc.integer({ min: 0, max: 200 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('get' as const), max: fc.integer({ min: 0, max: 10 }) }) },
  // Ring bytes: descriptor table (16·Q), avail ring (6 + 2·Q) right after it, used ring at +4096.
  { weight: 1, arbitrary: fc.record({ t: fc.constant('scribble' as const), off: fc.oneof(fc.integer({ min: 0, max: 16 * Q + 6 + 2 * Q - 2 }), fc.integer({ min: 4096, max: 4096 + 6 + 8 * Q - 2 })).map((o) => o & ~1), val: fc.integer({ min: 0, max: 0xffff }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('reset' as const) }) },
);

interface Side {
  mem: GuestMemory;
  drv: SplitVirtqueueDriver<number>;
  dev: SplitVirtqueueDevice;
  rec: TraceRecorder<VirtioRingEvent>;
  errors: string[];
  inflight: DescriptorChain[];
  kicks: number;
  token: number;
}

function side(opts: { eventIdx: boolean; indirect: boolean; onKick: boolean; maxSegments: number }): Side {
  const mem = memory();
  const layout = splitRingLayout(Q, RING);
  const ctx = createSimContext();
  const trace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  const s = { mem, rec: new TraceRecorder(trace.events$), errors: [] as string[], inflight: [] as DescriptorChain[], kicks: 0, token: 1 } as Side;
  const features = { eventIdx: opts.eventIdx, indirectDesc: opts.indirect };
  s.drv = new SplitVirtqueueDriver<number>(mem, {
    ...layout,
    features,
    trace,
    availPublish: opts.onKick ? 'on-kick' : 'immediate',
    indirectArea: opts.indirect ? { gpa: 0x40000, maxEntries: 4 } : undefined,
    notify: () => {
      s.kicks++;
    },
  });
  s.dev = new SplitVirtqueueDevice(mem, { ...layout, features, trace, maxSegments: opts.maxSegments, onError: (e) => s.errors.push(e.code) });
  return s;
}

const chainView = (c: DescriptorChain) => ({ id: c.id, ndescs: c.ndescs, indirect: c.indirect, out: c.readable(), inn: c.writable(), outBytes: c.outBytes, inBytes: c.inBytes });

/** The reference: one call at a time. Returns what the step observed. */
function stepSingle(s: Side, op: Op): unknown {
  switch (op.t) {
    case 'out':
      return s.drv.addOutbuf(op.gpa, op.len, s.token++);
    case 'outs': {
      const base = s.token;
      s.token += op.bufs.length;
      let n = 0;
      while (n < op.bufs.length && s.drv.addOutbuf(op.bufs[n]!.gpa, op.bufs[n]!.len, base + n)) n++;
      return n;
    }
    case 'sgs':
      return s.drv.addSgs(op.out, op.inn, s.token++);
    case 'kick':
      return s.drv.kick();
    case 'pop': {
      const got = [];
      for (let k = 0; k < op.max; k++) {
        const c = s.dev.pop();
        if (c === null) break;
        s.inflight.push(c);
        got.push(chainView(c));
      }
      return got;
    }
    case 'complete': {
      const n = Math.min(op.count, s.inflight.length);
      for (const c of s.inflight.splice(0, n)) s.dev.fill(c, op.len);
      return s.dev.flush();
    }
    case 'get': {
      const got = [];
      for (let k = 0; k < op.max; k++) {
        const t = s.drv.getBuf();
        if (t === undefined) break;
        got.push([t, s.drv.lastLen]);
      }
      return got;
    }
    case 'scribble':
      s.mem.write16(RING + op.off, op.val);
      return null;
    case 'reset':
      s.dev.reset();
      s.inflight.length = 0;
      return null;
  }
}

/** The same step through the burst entry points. */
function stepBurst(s: Side, op: Op, chains: DescriptorChain[], tokens: (number | undefined)[], lens: Uint32Array): unknown {
  switch (op.t) {
    case 'out':
      return s.drv.addOutbufs([op.gpa], [op.len], [s.token++], 1) === 1;
    case 'outs': {
      const toks = op.bufs.map((_, k) => s.token + k);
      const n = s.drv.addOutbufs(op.bufs.map((b) => b.gpa), op.bufs.map((b) => b.len), toks, op.bufs.length);
      s.token += op.bufs.length;
      return n;
    }
    case 'sgs':
      return s.drv.addSgs(op.out, op.inn, s.token++);
    case 'kick':
      return s.drv.kick();
    case 'pop': {
      const n = s.dev.popBurst(chains, op.max);
      const got = [];
      for (let k = 0; k < n; k++) {
        const copy = new DescriptorChain();
        copy.id = chains[k]!.id;
        s.inflight.push(copy);
        got.push(chainView(chains[k]!));
      }
      return got;
    }
    case 'complete': {
      const n = Math.min(op.count, s.inflight.length);
      s.dev.fillBurst(s.inflight.splice(0, n), n, op.len);
      return s.dev.flush();
    }
    case 'get': {
      const n = s.drv.getBufs(tokens, lens, op.max);
      const got = [];
      for (let k = 0; k < n; k++) got.push([tokens[k], lens[k]]);
      if (n > 0) expect(s.drv.lastLen).toBe(lens[n - 1]);
      return got;
    }
    case 'scribble':
      s.mem.write16(RING + op.off, op.val);
      return null;
    case 'reset':
      s.dev.reset();
      s.inflight.length = 0;
      return null;
  }
}

/** Descriptor table + avail ring, and the used ring (the bytes between them are never written). */
const ringBytes = (s: Side): number[] => [...s.mem.readBytes(RING, 16 * Q + 6 + 2 * Q), ...s.mem.readBytes(RING + 4096, 6 + 8 * Q)];
const eventsOf = (s: Side) => s.rec.events.map((e) => [e.kind, e.fn, e.args]);

describe('split ring burst entry points = the same number of single calls', () => {
  test('random programs with a hostile driver and buffers at region edges: every observable matches', () => {
    fc.assert(
      fc.property(
        fc.record({ eventIdx: fc.boolean(), indirect: fc.boolean(), onKick: fc.boolean(), maxSegments: fc.constantFrom(1, 2, 1024), trace: fc.boolean() }),
        fc.array(opArb, { minLength: 20, maxLength: 80 }),
        (cfg, ops) => {
          const a = side(cfg);
          const b = side(cfg);
          // With tracing off the bursts take their fast paths; with it on, the traced ones.
          if (!cfg.trace) {
            a.rec.stop();
            b.rec.stop();
          }
          const chains = Array.from({ length: 10 }, () => new DescriptorChain());
          const tokens = new Array<number | undefined>(10).fill(undefined);
          const lens = new Uint32Array(10);
          for (const op of ops) {
            const ra = stepSingle(a, op);
            const rb = stepBurst(b, op, chains, tokens, lens);
            expect(rb).toEqual(ra);
            expect(b.dev.status).toBe(a.dev.status);
            expect(b.dev.inFlight).toBe(a.dev.inFlight);
            expect(b.dev.lastAvail).toBe(a.dev.lastAvail);
            expect(b.drv.broken).toBe(a.drv.broken);
            expect(b.drv.numFree).toBe(a.drv.numFree);
            expect(b.kicks).toBe(a.kicks);
            expect(b.errors).toEqual(a.errors);
            expect(ringBytes(b)).toEqual(ringBytes(a));
          }
          expect(b.dev.snapshot()).toEqual(a.dev.snapshot());
          expect(b.drv.snapshot()).toEqual(a.drv.snapshot());
          expect(eventsOf(b)).toEqual(eventsOf(a));
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** A ring a hostile driver writes directly: descriptors, avail entries, avail.idx. */
function hostile() {
  const mem = memory();
  const layout = splitRingLayout(Q, RING);
  const ctx = createSimContext();
  const trace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  const rec = new TraceRecorder(trace.events$);
  const errors: VirqError[] = [];
  const dev = new SplitVirtqueueDevice(mem, { ...layout, trace, onError: (e) => errors.push(e) });
  const desc = (i: number, addr: number, len: number, flags: number, next = 0): void => {
    mem.write64(RING + 16 * i, addr);
    mem.write32(RING + 16 * i + 8, len);
    mem.write16(RING + 16 * i + 12, flags);
    mem.write16(RING + 16 * i + 14, next);
  };
  const avail = (heads: number[], idx = heads.length): void => {
    heads.forEach((h, k) => mem.write16(layout.driver + 4 + 2 * (k % Q), h));
    mem.write16(layout.driver + 2, idx);
  };
  return { mem, dev, rec, errors, desc, avail };
}

describe('popBurst on hostile driver input: the good chains before the bad one, then NEEDS_RESET (QEMU virtio_error), no throw', () => {
  const good = 0x80000;
  const cases: Array<[string, string, (h: ReturnType<typeof hostile>) => void]> = [
    ['a looping chain (2 → 3 → 2)', VirtioRingErrorCode.DescLoop, (h) => {
      h.desc(2, good, 64, VRING_DESC_F_NEXT, 3);
      h.desc(3, good, 64, VRING_DESC_F_NEXT, 2);
      h.avail([0, 1, 2]);
    }],
    ['a head index ≥ queue size', VirtioRingErrorCode.HeadOutOfRange, (h) => h.avail([0, 1, Q])],
    ['a zero-length buffer', VirtioRingErrorCode.ZeroLength, (h) => {
      h.desc(2, good, 0, 0);
      h.avail([0, 1, 2]);
    }],
    ['a buffer running from RAM into the hole', VirtioRingErrorCode.DescOutOfMemory, (h) => {
      h.desc(2, RAM_END - 16, 64, 0);
      h.avail([0, 1, 2]);
    }],
    ['a buffer starting in the region the last one lay in and running past its end into the hole', VirtioRingErrorCode.DescOutOfMemory, (h) => {
      h.desc(2, 0x90100, 64, 0);
      h.desc(3, RAM_END - 16, 64, 0);
      h.avail([0, 1, 2, 3]);
    }],
    ['a buffer above 4 GiB (high descriptor word set)', VirtioRingErrorCode.DescOutOfMemory, (h) => {
      h.desc(2, 2 ** 32 + good, 64, 0);
      h.avail([0, 1, 2]);
    }],
    ['next out of range', VirtioRingErrorCode.NextOutOfRange, (h) => {
      h.desc(2, good, 64, VRING_DESC_F_NEXT, Q + 1);
      h.avail([0, 1, 2]);
    }],
    ['an indirect table outside guest memory', VirtioRingErrorCode.IndirectUnmappable, (h) => {
      h.desc(2, HOLE, 32, VRING_DESC_F_INDIRECT);
      h.avail([0, 1, 2]);
    }],
    ['writable before readable', VirtioRingErrorCode.DescOrder, (h) => {
      h.desc(2, good, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
      h.desc(3, good, 64, 0);
      h.avail([0, 1, 2]);
    }],
  ];

  test.each(cases)('%s', (_name, code, setup) => {
    const h = hostile();
    h.desc(0, 0x80000, 64, 0);
    h.desc(1, 0x8fff0, 32, VRING_DESC_F_WRITE); // spans the two adjacent regions: fine
    setup(h);
    const chains = Array.from({ length: 8 }, () => new DescriptorChain());
    const goodBefore = h.mem.read16(splitRingLayout(Q, RING).driver + 2) - 1;
    expect(h.dev.popBurst(chains, 8)).toBe(goodBefore);
    expect(chains[0]!.readable()).toEqual([{ gpa: 0x80000, len: 64 }]);
    expect(chains[1]!.writable()).toEqual([{ gpa: 0x8fff0, len: 32 }]);
    expect(h.dev.status).toBe('needs-reset');
    expect(h.dev.error?.code).toBe(code);
    expect(h.errors).toHaveLength(1);
    expect(h.rec.events.filter((e) => e.kind === 'vring.error').map((e) => e.fn)).toEqual(['virtio_error']);
    // Inert afterwards: nothing more is taken, nothing thrown.
    expect(h.dev.popBurst(chains, 8)).toBe(0);
    expect(h.dev.pop()).toBeNull();
  });

  test('avail.idx more than the queue size ahead ("Guest moved used index"): nothing taken', () => {
    const h = hostile();
    h.avail([], Q + 1);
    expect(h.dev.popBurst([new DescriptorChain()], 1)).toBe(0);
    expect(h.dev.error?.code).toBe(VirtioRingErrorCode.AvailIdxJump);
  });

  test('a driver that keeps adding without completions cannot make a burst exceed the queue size', () => {
    const h = hostile();
    for (let i = 0; i < Q; i++) h.desc(i, 0x80000 + 64 * i, 64, 0);
    const chains = Array.from({ length: Q }, () => new DescriptorChain());
    h.avail([0, 1, 2, 3, 4, 5, 6, 7], Q);
    expect(h.dev.popBurst(chains)).toBe(Q);
    // The driver claims Q more: the device has Q in flight already (QEMU "Virtqueue size exceeded").
    h.mem.write16(splitRingLayout(Q, RING).driver + 2, 2 * Q);
    expect(h.dev.popBurst(chains)).toBe(0);
    expect(h.dev.error?.code).toBe(VirtioRingErrorCode.QueueOverrun);
  });
});

describe('burst entry points: bad arguments from the caller throw VirqError with nothing changed', () => {
  function rig() {
    const mem = memory();
    const layout = splitRingLayout(Q, RING);
    const drv = new SplitVirtqueueDriver<number>(mem, { ...layout });
    const dev = new SplitVirtqueueDevice(mem, { ...layout });
    return { mem, drv, dev };
  }

  test('addOutbufs checks every buffer first: one bad one adds none', () => {
    const { mem, drv } = rig();
    const before = mem.readBytes(RING, 4096);
    for (const [gpas, lens, toks] of [
      [[0x80000, -1], [64, 64], [1, 2]],
      [[0x80000, 0x80040], [64, 0], [1, 2]],
      [[0x80000, 0.5], [64, 64], [1, 2]],
      [[0x80000, 2 ** 53], [64, 64], [1, 2]],
      [[0x80000, 0x80040], [64, 2 ** 32], [1, 2]],
      [[0x80000, 0x80040], [64, 64], [1, undefined]],
    ] as Array<[number[], number[], (number | undefined)[]]>) {
      expect(() => drv.addOutbufs(gpas, lens, toks as number[], 2)).toThrow(VirqError);
    }
    expect(() => drv.addOutbufs([1], [1], [1], 2)).toThrow(/count/);
    expect(drv.numFree).toBe(Q);
    expect(mem.readBytes(RING, 4096)).toEqual(before);
  });

  test('addOutbufs with no room stops there and, with avail.idx published on kick, exposes the batch and notifies (Linux -ENOSPC path)', () => {
    const mem = memory();
    const layout = splitRingLayout(Q, RING);
    let kicks = 0;
    const drv = new SplitVirtqueueDriver<number>(mem, { ...layout, availPublish: 'on-kick', notify: () => void kicks++ });
    const gpas = Array.from({ length: Q + 2 }, (_, i) => 0x80000 + 64 * i);
    expect(drv.addOutbufs(gpas, gpas.map(() => 64), gpas.map((_, i) => i + 1), Q + 2)).toBe(Q);
    expect(mem.read16(layout.driver + 2)).toBe(Q);
    expect(kicks).toBe(1);
  });

  test('addOutbufs keeps Linux\'s "kick just in case" on the 65535th buffer added without a kick', () => {
    const mem = memory();
    const layout = splitRingLayout(Q, RING);
    let kicks = 0;
    const drv = new SplitVirtqueueDriver<number>(mem, { ...layout, notify: () => void kicks++ });
    const dev = new SplitVirtqueueDevice(mem, { ...layout });
    const gpas = Array.from({ length: Q }, (_, i) => 0x80000 + 64 * i);
    const lens = gpas.map(() => 64);
    const toks = gpas.map((_, i) => i + 1);
    const chains = Array.from({ length: Q }, () => new DescriptorChain());
    const outT = new Array<number | undefined>(Q).fill(undefined);
    const outL = new Uint32Array(Q);
    let added = 0;
    const batch = (n: number): void => {
      expect(drv.addOutbufs(gpas, lens, toks, n)).toBe(n);
      added += n;
      expect(dev.popBurst(chains)).toBe(n);
      dev.fillBurst(chains, n, 0);
      dev.flush();
      expect(drv.getBufs(outT, outL)).toBe(n);
    };
    while (added < 0xfff8) batch(Q);
    batch(6);
    expect(added).toBe(0xfffe);
    expect(kicks).toBe(0);
    batch(1);
    expect(kicks).toBe(1);
  });

  test('a kick that fails on the 65535th buffer breaks the queue inside the same addOutbufs call: the rest are refused, as the single calls would be', () => {
    const mem = memory();
    const layout = splitRingLayout(Q, RING);
    const drv = new SplitVirtqueueDriver<number>(mem, { ...layout, notify: () => false });
    const dev = new SplitVirtqueueDevice(mem, { ...layout });
    const gpas = Array.from({ length: Q }, (_, i) => 0x80000 + 64 * i);
    const lens = gpas.map(() => 64);
    const toks = gpas.map((_, i) => i + 1);
    const chains = Array.from({ length: Q }, () => new DescriptorChain());
    const outT = new Array<number | undefined>(Q).fill(undefined);
    const outL = new Uint32Array(Q);
    let added = 0;
    while (added < 0xfff8) {
      expect(drv.addOutbufs(gpas, lens, toks, Q)).toBe(Q);
      added += Q;
      dev.fillBurst(chains, dev.popBurst(chains), 0);
      dev.flush();
      expect(drv.getBufs(outT, outL)).toBe(Q);
    }
    expect(drv.addOutbufs(gpas, lens, toks, 6)).toBe(6);
    expect(drv.broken).toBe(false);
    // Buffer 0xffff is added and kicks; the transport fails (vp_notify false) → broken; the 8th is refused.
    expect(drv.addOutbufs(gpas, lens, toks, 2)).toBe(1);
    expect(drv.broken).toBe(true);
    expect(drv.addOutbufs(gpas, lens, toks, 1)).toBe(0);
  });

  test('popBurst, fillBurst and getBufs refuse impossible counts', () => {
    const { drv, dev } = rig();
    expect(() => dev.popBurst([], -1)).toThrow(VirqError);
    expect(() => dev.popBurst([], 1.5)).toThrow(VirqError);
    expect(() => dev.fillBurst([], 1, 0)).toThrow(VirqError);
    expect(() => dev.fillBurst([new DescriptorChain()], 1, [])).toThrow(VirqError);
    expect(() => drv.getBufs([undefined], new Uint32Array(1), 2)).toThrow(VirqError);
    expect(dev.popBurst([], 5)).toBe(0);
  });

  test('fillBurst past the queue size before a flush throws ENOSPC with nothing written', () => {
    const { mem, dev } = rig();
    const chains = Array.from({ length: Q + 1 }, () => new DescriptorChain());
    const used = splitRingLayout(Q, RING).device;
    const before = mem.readBytes(used, 6 + 8 * Q);
    expect(() => dev.fillBurst(chains, Q + 1, 0)).toThrow(expect.objectContaining({ code: VirtioRingErrorCode.BadArgument, errno: 'ENOSPC' }));
    expect(mem.readBytes(used, 6 + 8 * Q)).toEqual(before);
    expect(dev.flush()).toBe(0);
  });
});

describe('fillBurst and getBufs carry each buffer\'s used length', () => {
  test('per-chain lengths land in the used elements in order, and come back with their tokens', () => {
    const mem = memory();
    const layout = splitRingLayout(Q, RING);
    const drv = new SplitVirtqueueDriver<number>(mem, { ...layout });
    const dev = new SplitVirtqueueDevice(mem, { ...layout });
    for (let i = 0; i < 3; i++) drv.addInbuf(0x80000 + 64 * i, 64, 10 + i);
    const chains = Array.from({ length: 4 }, () => new DescriptorChain());
    expect(dev.popBurst(chains)).toBe(3);
    dev.fillBurst(chains, 3, [5, 6, 7]);
    expect(dev.flush()).toBe(3);
    // used.ring[i] = { id: head, len } (FACTS §1.1): heads 0, 1, 2 with the lengths given.
    const ring = layout.device + 4;
    expect([0, 1, 2].map((i) => [mem.read32(ring + 8 * i), mem.read32(ring + 8 * i + 4)])).toEqual([[0, 5], [1, 6], [2, 7]]);
    const tokens = new Array<number | undefined>(4).fill(undefined);
    const lens = new Uint32Array(4);
    expect(drv.getBufs(tokens, lens)).toBe(3);
    expect(tokens.slice(0, 3)).toEqual([10, 11, 12]);
    expect(Array.from(lens.subarray(0, 3))).toEqual([5, 6, 7]);
    expect(drv.lastLen).toBe(7);
    expect(drv.numFree).toBe(Q);
  });
});

describe('getBufs against a hostile device (Linux BAD_RING)', () => {
  test('an impossible used id ends the batch with the good ones before it; the queue is broken, nothing thrown', () => {
    const mem = memory();
    const layout = splitRingLayout(Q, RING);
    const drv = new SplitVirtqueueDriver<number>(mem, { ...layout });
    for (let i = 0; i < 3; i++) drv.addOutbuf(0x80000 + 64 * i, 64, 100 + i);
    // The device completes head 0, then claims head Q (out of range), then head 2.
    const ring = layout.device + 4;
    mem.write32(ring, 0);
    mem.write32(ring + 4, 7);
    mem.write32(ring + 8, Q);
    mem.write32(ring + 12, 99);
    mem.write32(ring + 16, 2);
    mem.write16(layout.device + 2, 3);
    const tokens = new Array<number | undefined>(4).fill(undefined);
    const lens = new Uint32Array(4);
    expect(drv.getBufs(tokens, lens, 4)).toBe(1);
    expect([tokens[0], lens[0]]).toEqual([100, 7]);
    // Linux's *len is the last buffer returned; the refused element leaves it alone.
    expect(drv.lastLen).toBe(7);
    expect(drv.broken).toBe(true);
    expect(drv.getBufs(tokens, lens, 4)).toBe(0);
  });
});
