/**
 * The JS floor for the two-thread benchmark: tools/ring-ref/ring_ref.c's two loops written
 * straight in JavaScript — one function per side, typed arrays over the SharedArrayBuffer,
 * Atomics for the two indexes, the same steps and checks as the C — with no library, no
 * objects, no calls. Not a ring implementation (nothing uses it): it measures what V8 itself
 * costs on this loop, so the gap between @virq/virtio-ring and C can be split into "JS" and
 * "the ring's code".
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { workerData, parentPort } from 'node:worker_threads';

interface Job {
  role: 'driver' | 'device';
  sab: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  size: number;
  batch: number;
  count: number;
  availPublish: 'immediate' | 'on-kick';
  warm?: number;
  pin?: boolean;
}

const job = workerData as Job;
const Q = job.size;
const B = job.batch;
const DESC = 0x10000;
const AVAIL = DESC + 16 * Q;
const USED = (AVAIL + 6 + 2 * Q + 4095) & ~4095;
const DATA = 0x80000;
const MEM = job.sab.byteLength;

if (job.pin === true) {
  const tid = fs.readlinkSync('/proc/thread-self').split('/').pop()!;
  execFileSync('taskset', ['-p', '-c', job.role === 'driver' ? '0' : '1', tid], { stdio: 'ignore' });
}

function waitStart(ctl: Int32Array): void {
  Atomics.add(ctl, 1, 1);
  while (Atomics.load(ctl, 0) === 0) {
    /* spin */
  }
}

function driver(): number {
  const u16 = new Uint16Array(job.sab);
  const u32 = new Uint32Array(job.sab);
  const ctl = new Int32Array(job.ctl);
  const a16 = AVAIL >> 1;
  const d32 = DESC >> 2;
  const used16 = USED >> 1;
  const ring32 = (USED >> 2) + 1;
  const next = new Uint16Array(Q);
  const chainLen = new Uint16Array(Q);
  const tokens = new Float64Array(Q);
  for (let i = 0; i < Q; i++) next[i] = (i + 1) & 0xffff;
  const warm = job.warm ?? 0;
  const count = warm + job.count;
  const onKick = job.availPublish === 'on-kick';
  let freeHead = 0;
  let numFree = Q;
  let availIdx = 0;
  let lastUsed = 0;
  let usedSeen = 0;
  let submitted = 0;
  let completed = 0;
  let t0 = 0;
  u16[a16] = 1; // VRING_AVAIL_F_NO_INTERRUPT: polling
  waitStart(ctl);
  if (warm === 0) t0 = performance.now();
  while (completed < count) {
    let added = 0;
    while (added < B && submitted < count && numFree > 0) {
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
      if (!onKick) Atomics.store(u16, a16 + 1, availIdx);
      submitted++;
      added++;
    }
    if (added > 0) {
      if (onKick) Atomics.store(u16, a16 + 1, availIdx);
      if ((Atomics.load(u16, used16) & 1) === 0) throw new Error('device asked for kicks');
    }
    for (;;) {
      if (lastUsed === usedSeen) {
        usedSeen = Atomics.load(u16, used16 + 1);
        if (lastUsed === usedSeen) break;
      }
      const id = u32[ring32 + 2 * (lastUsed & (Q - 1))]!;
      if (id >= Q || chainLen[id] === 0) throw new Error(`bad used id ${id}`);
      chainLen[id] = 0;
      tokens[id] = 0;
      next[id] = freeHead;
      freeHead = id;
      numFree++;
      lastUsed = (lastUsed + 1) & 0xffff;
      completed++;
      if (completed === warm) t0 = performance.now();
    }
  }
  return performance.now() - t0;
}

function device(): void {
  const u16 = new Uint16Array(job.sab);
  const u32 = new Uint32Array(job.sab);
  const ctl = new Int32Array(job.ctl);
  const a16 = AVAIL >> 1;
  const d32 = DESC >> 2;
  const used16 = USED >> 1;
  const ring32 = (USED >> 2) + 1;
  const count = (job.warm ?? 0) + job.count;
  let lastAvail = 0;
  let shadow = 0;
  let usedIdx = 0;
  let processed = 0;
  let inuse = 0;
  u16[used16] = 1; // VRING_USED_F_NO_NOTIFY: polling
  waitStart(ctl);
  while (processed < count) {
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
      let total = 0;
      let addr0 = -1;
      let len0 = 0;
      for (;;) {
        if (++steps > Q) throw new Error('descriptor loop');
        const o = d32 + 4 * i;
        const addr = u32[o + 1]! * 4294967296 + u32[o]!;
        const len = u32[o + 2]!;
        const flags = u16[2 * (o + 3)]!;
        if ((flags & 4) !== 0) throw new Error('indirect');
        if (len === 0 || !(addr < MEM && len <= MEM - addr)) throw new Error('bad buffer');
        total += len;
        if (total > 0xffffffff) throw new Error('length overflow');
        if ((flags & 2) !== 0) inN++;
        else {
          if (inN !== 0) throw new Error('descriptor order');
          if (addr0 < 0) {
            addr0 = addr;
            len0 = len;
          }
        }
        if ((flags & 1) === 0) break;
        const nx = u16[2 * (o + 3) + 1]!;
        if (nx >= Q) throw new Error('next out of range');
        i = nx;
      }
      inuse++;
      if (addr0 !== DATA + 64 * ((processed + n) & 255) || len0 !== 64) throw new Error(`device saw 0x${addr0.toString(16)} for packet ${processed + n}`);
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
  }
}

if (job.role === 'driver') parentPort!.postMessage({ result: 0, windowMs: driver() });
else {
  device();
  parentPort!.postMessage({ result: 0 });
}
