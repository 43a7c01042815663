/**
 * The one-thread JS floor: tools/ring-ref/ring_ref_one_thread.c written straight in JavaScript
 * — the driver adds a batch, the device pops, fills and flushes it, the driver reclaims it, in
 * turn, in one thread, over typed arrays on a SharedArrayBuffer, with the same steps and checks
 * as the C. Like inline-worker.ts it is no ring implementation (nothing uses it); with no second
 * core there is no cache-line traffic, so JS/C here is V8's code for this loop against gcc's.
 */
const DESC = 0x10000;
const DATA = 0x80000;
const MEM = 0x100000;

/** Packets per second over the `count` packets after `warm`. */
export function floorOneThread(count: number, batch: number, size: number, warm: number): number {
  const Q = size;
  const B = batch;
  const AVAIL = DESC + 16 * Q;
  const USED = (AVAIL + 6 + 2 * Q + 4095) & ~4095;
  const sab = new SharedArrayBuffer(MEM);
  const u16 = new Uint16Array(sab);
  const u32 = new Uint32Array(sab);
  const a16 = AVAIL >> 1;
  const d32 = DESC >> 2;
  const used16 = USED >> 1;
  const ring32 = (USED >> 2) + 1;
  const next = new Uint16Array(Q);
  const chainLen = new Uint16Array(Q);
  const tokens = new Float64Array(Q);
  for (let i = 0; i < Q; i++) next[i] = (i + 1) & 0xffff;
  const total = warm + count;
  let freeHead = 0;
  let numFree = Q;
  let availIdx = 0;
  let lastUsed = 0;
  let usedSeen = 0;
  let submitted = 0;
  let completed = 0;
  let lastAvail = 0;
  let shadow = 0;
  let usedIdx = 0;
  let processed = 0;
  let inuse = 0;
  u16[a16] = 1; // VRING_AVAIL_F_NO_INTERRUPT and VRING_USED_F_NO_NOTIFY: polling on both sides
  u16[used16] = 1;
  let t0 = performance.now();
  while (completed < total) {
    // driver: add a batch, virtqueue_kick_prepare_split
    let added = 0;
    while (added < B && submitted < total && numFree > 0) {
      const head = freeHead;
      const o = d32 + 4 * head;
      u32[o] = DATA + 64 * (submitted & 255);
      u32[o + 1] = 0;
      u32[o + 2] = 64;
      u16[2 * (o + 3)] = 0;
      freeHead = next[head]!;
      numFree--;
      chainLen[head] = 1;
      tokens[head] = submitted + 1;
      u16[a16 + 2 + (availIdx & (Q - 1))] = head;
      availIdx = (availIdx + 1) & 0xffff;
      submitted++;
      added++;
    }
    if (added > 0) {
      Atomics.store(u16, a16 + 1, availIdx);
      if ((Atomics.load(u16, used16) & 1) === 0) throw new Error('device asked for kicks');
    }
    // device: virtqueue_pop × batch, fill, flush, should_notify
    let n = 0;
    while (n < B) {
      if (lastAvail === shadow) {
        const idx = Atomics.load(u16, a16 + 1);
        if (((idx - lastAvail) & 0xffff) > Q) throw new Error('avail.idx jumped');
        shadow = idx;
        if (idx === lastAvail) break;
      }
      if (inuse >= Q) throw new Error('queue overrun');
      const head = u16[a16 + 2 + (lastAvail & (Q - 1))]!;
      if (head >= Q) throw new Error('head out of range');
      lastAvail = (lastAvail + 1) & 0xffff;
      let i = head;
      let steps = 0;
      let inN = 0;
      let sum = 0;
      for (;;) {
        if (++steps > Q) throw new Error('descriptor loop');
        const o = d32 + 4 * i;
        const addr = u32[o + 1]! * 4294967296 + u32[o]!;
        const len = u32[o + 2]!;
        const flags = u16[2 * (o + 3)]!;
        if ((flags & 4) !== 0) throw new Error('indirect');
        if (len === 0 || !(addr < MEM && len <= MEM - addr)) throw new Error('bad buffer');
        sum += len;
        if (sum > 0xffffffff) throw new Error('length overflow');
        if ((flags & 2) !== 0) inN++;
        else if (inN !== 0) throw new Error('descriptor order');
        if ((flags & 1) === 0) break;
        const nx = u16[2 * (o + 3) + 1]!;
        if (nx >= Q) throw new Error('next out of range');
        i = nx;
      }
      inuse++;
      const h = d32 + 4 * head;
      if (u32[h + 1]! * 4294967296 + u32[h]! !== DATA + 64 * ((processed + n) & 255) || u32[h + 2] !== 64) throw new Error(`device saw the wrong buffer for packet ${processed + n}`);
      const e = ring32 + 2 * ((usedIdx + n) & (Q - 1));
      u32[e] = head;
      u32[e + 1] = 0;
      n++;
    }
    if (n > 0) {
      usedIdx = (usedIdx + n) & 0xffff;
      Atomics.store(u16, used16 + 1, usedIdx);
      inuse -= n;
      processed += n;
      if ((Atomics.load(u16, a16) & 1) === 0) throw new Error('driver asked for interrupts');
    }
    // driver: virtqueue_get_buf_ctx_split
    for (;;) {
      if (lastUsed === usedSeen) {
        usedSeen = Atomics.load(u16, used16 + 1);
        if (lastUsed === usedSeen) break;
      }
      const id = u32[ring32 + 2 * (lastUsed & (Q - 1))]!;
      if (id >= Q || chainLen[id] === 0) throw new Error(`bad used id ${id}`);
      const len = chainLen[id]!;
      let last = id;
      for (let k = 1; k < len; k++) last = next[last]!;
      chainLen[id] = 0;
      tokens[id] = 0;
      next[last] = freeHead;
      freeHead = id;
      numFree += len;
      lastUsed = (lastUsed + 1) & 0xffff;
      completed++;
      if (completed === warm) t0 = performance.now();
    }
  }
  return count / ((performance.now() - t0) / 1000);
}
