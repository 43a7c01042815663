import { GuestMemory, TraceRecorder, VirqError } from '@virq/core';
import {
  PackedVirtqueueDevice,
  SplitVirtqueueDevice,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_PACKED_DESC_F_AVAIL,
  VirtioRingErrorCode,
  packedRingLayout,
  splitRingLayout,
  type VirtioRingEvent,
} from '@virq/virtio-ring';
import { createSimContext } from '@virq/core';
import { DATA_GPA, INDIRECT_GPA, MEM_SIZE, RING_GPA, packedPair, splitPair } from './ring-fixture.js';

const Q = 8;
const NEXT = VRING_DESC_F_NEXT;
const WRITE = VRING_DESC_F_WRITE;
const INDIRECT = VRING_DESC_F_INDIRECT;

/** A split ring written by a hostile driver directly into guest memory. */
class HostileSplit {
  readonly mem = GuestMemory.ofSize(MEM_SIZE);
  readonly layout = splitRingLayout(Q, RING_GPA);
  readonly errors: VirqError[] = [];
  readonly ctx = createSimContext();
  readonly trace = this.ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  readonly rec = new TraceRecorder(this.trace.events$);
  readonly device: SplitVirtqueueDevice;
  constructor(opts: { maxSegments?: number; anyOrder?: boolean } = {}) {
    this.device = new SplitVirtqueueDevice(this.mem, { ...this.layout, trace: this.trace, onError: (e) => this.errors.push(e), ...opts });
  }
  desc(i: number, addr: number | bigint, len: number, flags: number, next = 0, table = RING_GPA): this {
    const at = table + 16 * i;
    this.mem.write64(at, addr);
    this.mem.write32(at + 8, len);
    this.mem.write16(at + 12, flags);
    this.mem.write16(at + 14, next);
    return this;
  }
  avail(heads: number[], idx = heads.length): this {
    heads.forEach((h, k) => this.mem.write16(this.layout.driver + 4 + 2 * (k % Q), h));
    this.mem.write16(this.layout.driver + 2, idx);
    return this;
  }
  /** Pops until the queue refuses, with a hard bound; returns what pop gave each time. */
  drain(): number {
    let n = 0;
    while (n <= Q + 1 && this.device.pop() !== null) n++;
    return n;
  }
}

function expectNeedsReset(h: { device: { status: string; error: VirqError | undefined }; errors: VirqError[]; rec: TraceRecorder<VirtioRingEvent> }, code: string): void {
  expect(h.device.status).toBe('needs-reset');
  expect(h.device.error?.code).toBe(code);
  expect(h.errors).toHaveLength(1);
  expect(h.errors[0]).toBeInstanceOf(VirqError);
  const ev = h.rec.events.filter((e) => e.kind === 'vring.error');
  expect(ev).toHaveLength(1);
  expect(ev[0]!.fn).toBe('virtio_error');
  expect(ev[0]!.args).toMatchObject({ code });
}

describe('split device: hostile driver input → typed error, NEEDS_RESET, nothing outside guest memory, no loop', () => {
  test('a chain that loops (0 → 1 → 0) is "Looped descriptor"', () => {
    const h = new HostileSplit().desc(0, DATA_GPA, 64, NEXT, 1).desc(1, DATA_GPA, 64, NEXT, 0).avail([0]);
    const before = h.mem.readBytes(0, MEM_SIZE);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.DescLoop);
    expect(Buffer.compare(h.mem.readBytes(0, MEM_SIZE), before)).toBe(0); // nothing written anywhere
  });

  test('a chain longer than the queue size (through all 8 descriptors and on) is refused after 8 steps', () => {
    const h = new HostileSplit();
    for (let i = 0; i < Q; i++) h.desc(i, DATA_GPA, 64, NEXT, (i + 1) % Q);
    h.avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.DescLoop);
    expect(h.device.error!.message).toMatch(/more than 8 descriptors/);
  });

  test('a chain with more segments than the device accepts is chain-too-long', () => {
    const h = new HostileSplit({ maxSegments: 2 }).desc(0, DATA_GPA, 8, NEXT, 1).desc(1, DATA_GPA, 8, NEXT, 2).desc(2, DATA_GPA, 8, 0).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.ChainTooLong);
  });

  test('next out of range ("Desc next is 9")', () => {
    const h = new HostileSplit().desc(0, DATA_GPA, 64, NEXT, 9).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.NextOutOfRange);
    expect(h.device.error!.message).toMatch(/Desc next is 9/);
  });

  test.each([
    ['past the end of RAM', MEM_SIZE - 10, 64],
    ['far above every region', 0x1_0000_0000, 64],
    ['a u64 address near 2^64', 0xffff_ffff_ffff_f000n, 64],
  ])('an address + len outside every region (%s)', (_what, addr, len) => {
    const h = new HostileSplit().desc(0, addr, len, 0).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.DescOutOfMemory);
  });

  test('a chain whose u32 lengths add past 2^32 − 1', () => {
    // 4097 indirect entries of 1 MiB each, all over the same RAM: 4097 MiB > 4 GiB.
    const h = new HostileSplit({ maxSegments: 8192 });
    const n = 4097;
    const table = 0x20000;
    for (let k = 0; k < n; k++) h.desc(k, 0, 0x10_0000, k + 1 < n ? NEXT : 0, k + 1, table);
    h.desc(0, table, n * 16, INDIRECT).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.LengthOverflow);
  });

  test('an indirect descriptor inside an indirect table', () => {
    const h = new HostileSplit().desc(0, INDIRECT_GPA, 32, INDIRECT).desc(0, DATA_GPA, 64, NEXT, 1, INDIRECT_GPA).desc(1, INDIRECT_GPA, 32, INDIRECT, 0, INDIRECT_GPA).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.NestedIndirect);
  });

  test.each([
    ['not a multiple of 16', 24],
    ['zero', 0],
  ])('an indirect table whose length is %s', (_what, len) => {
    const h = new HostileSplit().desc(0, INDIRECT_GPA, len, INDIRECT).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.IndirectBadSize);
  });

  test('an indirect table outside guest memory', () => {
    const h = new HostileSplit().desc(0, MEM_SIZE - 16, 64, INDIRECT).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.IndirectUnmappable);
  });

  test('a writable descriptor before a readable one ("Incorrect order for descriptors")', () => {
    const h = new HostileSplit().desc(0, DATA_GPA, 64, WRITE | NEXT, 1).desc(1, DATA_GPA, 64, 0).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.DescOrder);
    // A device that allows any order accepts the same chain.
    const ok = new HostileSplit({ anyOrder: true }).desc(0, DATA_GPA, 64, WRITE | NEXT, 1).desc(1, DATA_GPA, 64, 0).avail([0]);
    expect(ok.drain()).toBe(1);
    expect(ok.device.status).toBe('ok');
  });

  test('avail idx more than queue-size ahead of last_avail_idx ("Guest moved used index", CVE-2016-5403 class)', () => {
    const h = new HostileSplit().desc(0, DATA_GPA, 64, 0).avail([0], Q + 1);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.AvailIdxJump);
    expect(h.device.error!.message).toMatch(/Guest moved used index from 0 to 9/);
  });

  test('a driver that keeps making buffers available without the device completing them cannot exceed the queue size', () => {
    const h = new HostileSplit();
    for (let i = 0; i < Q; i++) h.desc(i, DATA_GPA, 64, 0);
    h.avail([0, 1, 2, 3, 4, 5, 6, 7], Q);
    expect(h.drain()).toBe(Q);
    h.avail([0, 1, 2, 3, 4, 5, 6, 7], 2 * Q); // re-offers the same heads: Q more
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.QueueOverrun);
  });

  test('a head index ≥ queue size ("Guest says index 8 is available")', () => {
    const h = new HostileSplit().avail([8]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.HeadOutOfRange);
  });

  test('a zero-length buffer', () => {
    const h = new HostileSplit().desc(0, DATA_GPA, 0, 0).avail([0]);
    expect(h.drain()).toBe(0);
    expectNeedsReset(h, VirtioRingErrorCode.ZeroLength);
  });

  test('once NEEDS_RESET every call is inert until reset(); reset() brings the queue back', () => {
    const h = new HostileSplit().avail([8]);
    h.drain();
    expect(h.device.isEmpty()).toBe(true);
    expect(h.device.availCount()).toBe(0);
    expect(h.device.notify()).toBe(false);
    expect(h.device.enableNotification()).toBe(false);
    h.device.push(0, 0);
    expect(h.mem.read16(h.layout.device + 2)).toBe(0);
    h.device.reset();
    expect(h.device.status).toBe('ok');
    h.desc(0, DATA_GPA, 64, 0).avail([0], 1);
    expect(h.device.pop()?.id).toBe(0);
  });

  test('a queue the guest placed outside memory or misaligned is NEEDS_RESET at setup, without throwing', () => {
    const mem = GuestMemory.ofSize(0x10000);
    const errors: VirqError[] = [];
    const outside = new SplitVirtqueueDevice(mem, { size: 8, desc: 0x20000, driver: 0x20080, device: 0x21000, onError: (e) => errors.push(e) });
    expect(outside.status).toBe('needs-reset');
    expect(outside.error?.code).toBe(VirtioRingErrorCode.BadLayout);
    expect(outside.pop()).toBeNull();
    const misaligned = new SplitVirtqueueDevice(mem, { size: 8, desc: 0x1008, driver: 0x1080, device: 0x2000 });
    expect(misaligned.error?.code).toBe(VirtioRingErrorCode.BadLayout);
    const badSize = new SplitVirtqueueDevice(mem, { size: 6, desc: 0x1000, driver: 0x1080, device: 0x2000 });
    expect(badSize.error?.code).toBe(VirtioRingErrorCode.BadQueueSize);
    expect(errors).toHaveLength(1);
  });
});

/** Packed ring written by a hostile driver. */
class HostilePacked {
  readonly mem = GuestMemory.ofSize(MEM_SIZE);
  readonly layout = packedRingLayout(Q, RING_GPA);
  readonly errors: VirqError[] = [];
  readonly ctx = createSimContext();
  readonly trace = this.ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  readonly rec = new TraceRecorder(this.trace.events$);
  readonly device = new PackedVirtqueueDevice(this.mem, { ...this.layout, features: { packed: true }, trace: this.trace, onError: (e) => this.errors.push(e) });
  desc(slot: number, addr: number, len: number, id: number, flags: number, table = RING_GPA): this {
    const at = table + 16 * slot;
    this.mem.write64(at, addr);
    this.mem.write32(at + 8, len);
    this.mem.write16(at + 12, id);
    this.mem.write16(at + 14, flags | (table === RING_GPA ? VRING_PACKED_DESC_F_AVAIL : 0));
    return this;
  }
}

describe('packed device: hostile driver input', () => {
  test('NEXT on every slot: a chain longer than the ring', () => {
    const h = new HostilePacked();
    for (let s = 0; s < Q; s++) h.desc(s, DATA_GPA, 64, 0, NEXT);
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.ChainTooLong);
  });
  test('buffer id ≥ queue size', () => {
    const h = new HostilePacked().desc(0, DATA_GPA, 64, Q, 0);
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.HeadOutOfRange);
  });
  test('address outside guest memory', () => {
    const h = new HostilePacked().desc(0, MEM_SIZE, 64, 0, 0);
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.DescOutOfMemory);
  });
  test('indirect inside indirect', () => {
    const h = new HostilePacked().desc(0, INDIRECT_GPA, 32, 0, INDIRECT).desc(1, INDIRECT_GPA, 16, 0, INDIRECT, INDIRECT_GPA).desc(0, DATA_GPA, 8, 0, 0, INDIRECT_GPA);
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.NestedIndirect);
  });
  test('indirect table length not a multiple of 16', () => {
    const h = new HostilePacked().desc(0, INDIRECT_GPA, 40, 0, INDIRECT);
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.IndirectBadSize);
  });
  test('writable before readable', () => {
    const h = new HostilePacked().desc(0, DATA_GPA, 8, 0, NEXT | WRITE).desc(1, DATA_GPA, 8, 0, 0);
    expect(h.device.pop()).toBeNull();
    expectNeedsReset(h, VirtioRingErrorCode.DescOrder);
  });
});

describe('driver side: a hostile device (Linux BAD_RING)', () => {
  test('split: used id out of range or not an outstanding head breaks the queue without throwing', () => {
    const a = splitPair();
    const rec = new TraceRecorder(a.trace.events$);
    a.driver.addInbuf(DATA_GPA, 64, 1);
    a.mem.write32(a.layout.device + 4, 99);
    a.mem.write16(a.layout.device + 2, 1);
    expect(a.driver.getBuf()).toBeUndefined();
    expect(a.driver.broken).toBe(true);
    expect(rec.events.find((e) => e.kind === 'vring.broken')?.args).toMatchObject({ code: VirtioRingErrorCode.UsedIdOutOfRange });
    expect(a.driver.addOutbuf(DATA_GPA, 64, 2)).toBe(false);

    const b = splitPair();
    b.driver.addInbuf(DATA_GPA, 64, 1);
    b.mem.write32(b.layout.device + 4, 3);
    b.mem.write16(b.layout.device + 2, 1);
    expect(b.driver.getBuf()).toBeUndefined();
    expect(b.driver.broken).toBe(true);
  });
  test('packed: used id not outstanding', () => {
    const p = packedPair();
    p.driver.addInbuf(DATA_GPA, 64, 1);
    p.mem.write16(RING_GPA + 12, 5);
    p.mem.write16(RING_GPA + 14, VRING_PACKED_DESC_F_AVAIL | 0x8000);
    expect(p.driver.getBuf()).toBeUndefined();
    expect(p.driver.broken).toBe(true);
  });
});
