/**
 * One side of the two-thread benchmark, run in a worker_thread: the driver (Linux model) or
 * the device (QEMU model) of one split ring in a SharedArrayBuffer, polling, batch B, the same
 * steps as tools/ring-ref/ring_ref.c.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { workerData, parentPort } from 'node:worker_threads';
import { GuestMemory } from '@virq/core';
import { DescriptorChain, SplitVirtqueueDevice, SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';

interface Job {
  role: 'driver' | 'device';
  sab: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  size: number;
  batch: number;
  count: number;
  availPublish: 'immediate' | 'on-kick';
  /** Packets run before the timed window (JIT warm-up); `count` is the timed window after them. */
  warm?: number;
  /** Pin this thread: driver → CPU 0, device → CPU 1 (as ring_ref.c does with "pin"). */
  pin?: boolean;
}

const job = workerData as Job;
const mem = new GuestMemory([{ gpa: 0, size: job.sab.byteLength, buffer: job.sab }]);
const layout = splitRingLayout(job.size, 0x10000);
const ctl = new Int32Array(job.ctl);
const DATA = 0x80000;

if (job.pin === true) {
  // /proc/thread-self → "<pid>/task/<tid>": pin this worker's OS thread only.
  const tid = fs.readlinkSync('/proc/thread-self').split('/').pop()!;
  execFileSync('taskset', ['-p', '-c', job.role === 'driver' ? '0' : '1', tid], { stdio: 'ignore' });
}

function waitStart(): void {
  Atomics.add(ctl, 1, 1);
  while (Atomics.load(ctl, 0) === 0) {
    /* spin: both sides start together */
  }
}

/** The driver's timed window: from `warm` completions to the last one. */
let windowMs = 0;

function runDriver(): number {
  const drv = new SplitVirtqueueDriver<number>(mem, { ...layout, availPublish: job.availPublish });
  drv.disableCb(); // polling
  const { batch } = job;
  const warm = job.warm ?? 0;
  const count = warm + job.count;
  let submitted = 0;
  let completed = 0;
  let kicks = 0;
  let t0 = 0;
  const tokens = new Array<number | undefined>(batch).fill(undefined);
  const lens = new Uint32Array(batch);
  const gpas = new Float64Array(batch);
  const bufLens = new Uint32Array(batch).fill(64);
  const bufTokens = new Array<number>(batch).fill(1);
  waitStart();
  if (warm === 0) t0 = performance.now();
  while (completed < count) {
    // Up to `batch` buffers while there is room (virtqueue_add_outbuf each, as one call).
    const want = Math.min(batch, count - submitted, drv.numFree);
    for (let k = 0; k < want; k++) gpas[k] = DATA + 64 * ((submitted + k) & 255);
    const added = want > 0 ? drv.addOutbufs(gpas, bufLens, bufTokens, want) : 0;
    submitted += added;
    if (added > 0 && drv.kickPrepare()) kicks++;
    // NAPI-style reclaim: up to `batch` used buffers per call (virtqueue_get_buf in a loop).
    for (;;) {
      // Before the window, stop exactly at `warm` so the clock starts where C's does.
      const n = drv.getBufs(tokens, lens, completed < warm ? Math.min(batch, warm - completed) : batch);
      if (n === 0) break;
      completed += n;
      if (completed === warm) t0 = performance.now();
    }
  }
  windowMs = performance.now() - t0;
  return kicks;
}

function runDevice(): number {
  const dev = new SplitVirtqueueDevice(mem, { ...layout });
  dev.disableNotification(); // polling
  const { batch } = job;
  const chains = Array.from({ length: batch }, () => new DescriptorChain());
  const count = (job.warm ?? 0) + job.count;
  let processed = 0;
  let notifies = 0;
  waitStart();
  while (processed < count) {
    // A burst of up to `batch` chains (rte_vhost_dequeue_burst), then one used element each.
    const n = dev.popBurst(chains, batch);
    for (let k = 0; k < n; k++) {
      const c = chains[k]!;
      // The descriptor the driver wrote before publishing must be what we read (ordering check).
      if (c.outAddr[0] !== DATA + 64 * ((processed + k) & 255) || c.outLen[0] !== 64) {
        throw new Error(`device saw buffer 0x${c.outAddr[0]!.toString(16)} (len ${c.outLen[0]}) for packet ${processed + k}`);
      }
    }
    if (n > 0) {
      dev.fillBurst(chains, n, 0);
      dev.flush();
      processed += n;
      if (dev.shouldNotify()) notifies++;
    }
    if (dev.broken) throw dev.error;
  }
  return notifies;
}

const result = job.role === 'driver' ? runDriver() : runDevice();
parentPort!.postMessage({ result, windowMs: job.role === 'driver' ? windowMs : undefined });
