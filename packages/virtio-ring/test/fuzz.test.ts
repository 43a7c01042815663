import { GuestMemory, VirqError } from '@virq/core';
import { DescriptorChain, PackedVirtqueueDevice, SplitVirtqueueDevice, SplitVirtqueueDriver, packedRingLayout, splitRingLayout } from '@virq/virtio-ring';

/**
 * Fuzz target: random ring memory written by a hostile driver (or device), biased towards
 * the values that matter (valid and invalid addresses, lengths around 0, 16 and 2^32, every
 * flag combination, next/head indexes around the queue size). For each layout the other side
 * runs its whole loop; nothing may escape as an exception, and every loop must end within
 * its bound. 100,000 split layouts + 40,000 packed + 20,000 driver-side.
 */

const MEM = 0x10000;
const RING = 0x1000;
const TABLE = 0x4000;
const DATA = 0x8000;
const Q = 8;

let state = 0x9e3779b9;
function rnd(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
}
function pick<T>(xs: readonly T[]): T {
  return xs[rnd() % xs.length]!;
}

const ADDRS = [DATA, DATA + 64, TABLE, TABLE + 16, MEM - 16, MEM - 8, MEM, MEM + 0x1000, 0, 0xfff0];
const LENS = [0, 1, 8, 16, 24, 32, 48, 64, 0x7ff0, 0xffff_ffff, 0x8000_0000];

/** Writes one random-but-biased descriptor (split or packed format) at `at`. */
function writeDesc(mem: GuestMemory, at: number, packed: boolean, clean: boolean): void {
  const r = rnd();
  if (clean) {
    // Mostly well-formed: valid buffer, short chains, readable before writable.
    mem.write64(at, DATA + 64 * (r % 64));
    mem.write32(at + 8, 1 + ((r >>> 6) % 64));
    const next = (r >>> 12) % 4 === 0 ? 1 : 0;
    const write = (r >>> 14) % 3 === 0 ? 2 : 0;
    if (packed) {
      mem.write16(at + 12, (r >>> 16) % Q);
      mem.write16(at + 14, next | write | ((r >>> 20) & 1 ? 0x80 : 0) | ((r >>> 21) % 4 === 0 ? 0x8000 : 0));
    } else {
      mem.write16(at + 12, next | write);
      mem.write16(at + 14, (r >>> 16) % Q);
    }
    return;
  }
  const hi = (r & 0xf) === 0 ? rnd() : 0;
  const lo = (r & 0x30) === 0 ? rnd() : pick(ADDRS);
  mem.write32(at, lo);
  mem.write32(at + 4, hi);
  mem.write32(at + 8, (r & 0xc0) === 0 ? rnd() : pick(LENS));
  if (packed) {
    mem.write16(at + 12, (r >>> 8) % (Q + 2));
    mem.write16(at + 14, ((r >>> 12) & 7) | ((r >>> 15) & 1 ? 0x80 : 0) | ((r >>> 16) & 1 ? 0x8000 : 0) | ((r & 0x1000000) === 0 ? 0 : rnd() & 0x7f78));
  } else {
    mem.write16(at + 12, ((r >>> 8) & 7) | ((r & 0x1000000) === 0 ? 0 : rnd() & 0xfff8));
    mem.write16(at + 14, (r >>> 12) % (Q + 3));
  }
}

function fuzzSplit(runs: number): { pops: number; errors: Map<string, number>; maxLoop: number } {
  const mem = GuestMemory.ofSize(MEM);
  const layout = splitRingLayout(Q, RING, 16);
  const errors = new Map<string, number>();
  const dev = new SplitVirtqueueDevice(mem, { ...layout, features: { eventIdx: true }, onError: (e: VirqError) => errors.set(e.code, (errors.get(e.code) ?? 0) + 1) });
  const chain = new DescriptorChain();
  let pops = 0;
  let maxLoop = 0;
  for (let run = 0; run < runs; run++) {
    const clean = (rnd() & 1) === 0;
    for (let i = 0; i < Q; i++) writeDesc(mem, RING + 16 * i, false, clean && rnd() % 16 !== 0);
    for (let i = 0; i < 8; i++) writeDesc(mem, TABLE + 16 * i, false, clean);
    for (let i = 0; i < Q; i++) mem.write16(layout.driver + 4 + 2 * i, !clean && rnd() % 4 === 0 ? rnd() & 0xffff : rnd() % (clean ? Q : Q + 2));
    const r = rnd();
    mem.write16(layout.driver + 2, !clean && r % 3 === 0 ? rnd() & 0xffff : r % (clean ? Q + 1 : Q + 3));
    mem.write16(layout.driver, rnd() & 1);
    mem.write16(layout.driver + 4 + 2 * Q, rnd() & 0xffff);
    dev.reset();
    let loop = 0;
    for (; loop <= 2 * Q + 2; loop++) {
      const c = dev.pop(chain);
      if (c === null) break;
      pops++;
      const bytes = new Uint8Array(Math.min(c.inBytes, 64));
      dev.writeToChain(c, bytes);
      dev.push(c, bytes.length);
      dev.notify();
      if (loop % 3 === 0) dev.enableNotification();
    }
    maxLoop = Math.max(maxLoop, loop);
  }
  return { pops, errors, maxLoop };
}

function fuzzPacked(runs: number): { pops: number; errors: Map<string, number>; maxLoop: number } {
  const mem = GuestMemory.ofSize(MEM);
  const layout = packedRingLayout(Q, RING);
  const errors = new Map<string, number>();
  const dev = new PackedVirtqueueDevice(mem, { ...layout, features: { eventIdx: true, packed: true }, onError: (e: VirqError) => errors.set(e.code, (errors.get(e.code) ?? 0) + 1) });
  const chain = new DescriptorChain();
  let pops = 0;
  let maxLoop = 0;
  for (let run = 0; run < runs; run++) {
    const clean = (rnd() & 1) === 0;
    for (let i = 0; i < Q; i++) writeDesc(mem, RING + 16 * i, true, clean && rnd() % 16 !== 0);
    for (let i = 0; i < 8; i++) writeDesc(mem, TABLE + 16 * i, true, clean);
    mem.write32(layout.driver, rnd());
    dev.reset();
    let loop = 0;
    for (; loop <= 2 * Q + 2; loop++) {
      const c = dev.pop(chain);
      if (c === null) break;
      pops++;
      dev.push(c, 0);
      dev.notify();
    }
    maxLoop = Math.max(maxLoop, loop);
  }
  return { pops, errors, maxLoop };
}

describe('fuzz: hostile ring memory never throws, never hangs', () => {
  test('100,000 random split layouts against the device side', () => {
    const r = fuzzSplit(100_000);
    // The pop loop is bounded: a queue can hand out at most Q chains before it must refuse.
    expect(r.maxLoop).toBeLessThanOrEqual(Q);
    // The generator reaches both accepted chains and every class of refusal.
    expect(r.pops).toBeGreaterThan(10_000);
    for (const code of ['vring.desc-loop', 'vring.next-out-of-range', 'vring.desc-out-of-memory', 'vring.zero-length', 'vring.nested-indirect', 'vring.indirect-bad-size', 'vring.desc-order', 'vring.avail-idx-jump', 'vring.head-out-of-range']) {
      expect(r.errors.get(code) ?? 0).toBeGreaterThan(0);
    }
  });

  test('40,000 random packed layouts against the device side', () => {
    const r = fuzzPacked(40_000);
    expect(r.maxLoop).toBeLessThanOrEqual(Q);
    expect(r.pops).toBeGreaterThan(1_000);
    for (const code of ['vring.desc-out-of-memory', 'vring.zero-length', 'vring.indirect-bad-size', 'vring.head-out-of-range']) {
      expect(r.errors.get(code) ?? 0).toBeGreaterThan(0);
    }
  });

  test('20,000 random used rings against the driver side', () => {
    const mem = GuestMemory.ofSize(MEM);
    const layout = splitRingLayout(Q, RING, 16);
    let broken = 0;
    let got = 0;
    let maxLoops = 0;
    for (let run = 0; run < 20_000; run++) {
      mem.fill(RING, layout.totalBytes, 0);
      const drv = new SplitVirtqueueDriver<number>(mem, { ...layout, features: { eventIdx: (run & 1) === 1, inOrder: (run & 2) === 2 } });
      const n = rnd() % (Q + 1);
      for (let i = 0; i < n; i++) drv.addInbuf(DATA + 64 * i, 64, i + 1);
      for (let i = 0; i < Q; i++) {
        mem.write32(layout.device + 4 + 8 * i, rnd() % 3 === 0 ? rnd() : rnd() % (Q + 2));
        mem.write32(layout.device + 8 + 8 * i, rnd());
      }
      mem.write16(layout.device + 2, rnd() % 2 === 0 ? rnd() & 0xffff : rnd() % (Q + 2));
      let loops = 0;
      while (loops++ <= 2 * Q && drv.getBuf() !== undefined) got++;
      maxLoops = Math.max(maxLoops, loops);
      if (drv.broken) broken++;
      drv.interrupt();
      drv.enableCb();
    }
    expect(maxLoops).toBeLessThanOrEqual(Q + 1);
    expect(broken).toBeGreaterThan(1000);
    expect(got).toBeGreaterThan(1000);
  });
});
