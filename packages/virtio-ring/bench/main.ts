/**
 * @virq/virtio-ring benchmarks (`npm run bench`). Prints figures; asserts nothing.
 *   1. single thread: chains/s through driver add → device pop → device push → driver get_buf,
 *      split and packed, batch 1 and 32, 64-byte buffers (tracing off, and on for one row);
 *   2. two worker threads over one SharedArrayBuffer (driver | device, polling, batch 32)
 *      beside the C reference tools/ring-ref/ring_ref.c (two pthreads, same ring, built here
 *      with the system gcc), alternating runs, medians and per-pair ratios; and the "JS floor":
 *      the C's two loops written straight in JS (bench/inline-worker.ts, no library), which
 *      separates what V8 costs from what the ring's code costs; then the same three in one
 *      thread, in turn (no cache-line traffic: V8's code against gcc's for this loop);
 *   3. notifications per buffer with and without EVENT_IDX, steady producer/consumer.
 * Options: BENCH_QUICK=1 shortens every section; BENCH_ONLY=1|2|3 runs one section;
 * BENCH_PIN=0 leaves the two threads unpinned.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { GuestMemory, createSimContext } from '@virq/core';
import {
  DescriptorChain,
  PackedVirtqueueDevice,
  PackedVirtqueueDriver,
  SplitVirtqueueDevice,
  SplitVirtqueueDriver,
  packedRingLayout,
  splitRingLayout,
  type VirtioRingEvent,
  type VirtioRingTrace,
} from '@virq/virtio-ring';
import { floorOneThread } from './floor-one-thread.js';

const QUICK = process.env['BENCH_QUICK'] === '1';
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (v: number): string => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : `${(v / 1e3).toFixed(1)} k`);

// ---------------------------------------------------------------- 1. single thread
interface Side {
  add(i: number): boolean;
  kick(): void;
  pop(c: DescriptorChain): DescriptorChain | null;
  fill(c: DescriptorChain): void;
  flush(): void;
  get(): number | undefined;
}

function makeSide(format: 'split' | 'packed', trace?: VirtioRingTrace): Side {
  const mem = GuestMemory.ofSize(0x100000);
  const size = 256;
  const DATA = 0x80000;
  if (format === 'split') {
    const l = splitRingLayout(size, 0x10000);
    const d = new SplitVirtqueueDriver<number>(mem, { ...l, trace });
    const v = new SplitVirtqueueDevice(mem, { ...l, trace });
    return {
      add: (i) => d.addOutbuf(DATA + 64 * (i & 255), 64, 1),
      kick: () => void d.kickPrepare(),
      pop: (c) => v.pop(c),
      fill: (c) => v.fill(c, 0),
      flush: () => void v.flush(),
      get: () => d.getBuf(),
    };
  }
  const l = packedRingLayout(size, 0x10000);
  const d = new PackedVirtqueueDriver<number>(mem, { ...l, features: { packed: true }, trace });
  const v = new PackedVirtqueueDevice(mem, { ...l, features: { packed: true }, trace });
  return {
    add: (i) => d.addOutbuf(DATA + 64 * (i & 255), 64, 1),
    kick: () => void d.kickPrepare(),
    pop: (c) => v.pop(c),
    fill: (c) => v.fill(c, 0),
    flush: () => void v.flush(),
    get: () => d.getBuf(),
  };
}

function singleThread(side: Side, batch: number, chains: number): number {
  const c = new DescriptorChain();
  const t0 = performance.now();
  let done = 0;
  while (done < chains) {
    for (let k = 0; k < batch; k++) side.add(done + k);
    side.kick();
    for (let k = 0; k < batch; k++) side.fill(side.pop(c)!);
    side.flush();
    for (let k = 0; k < batch; k++) if (side.get() === undefined) throw new Error('lost a buffer');
    done += batch;
  }
  return chains / ((performance.now() - t0) / 1000);
}

/** A split ring with both sides polling and the buffers the burst entry points take, `batch` at a time. */
function burstRig(size: number, batch: number) {
  const mem = GuestMemory.ofSize(0x100000);
  const l = splitRingLayout(size, 0x10000);
  const d = new SplitVirtqueueDriver<number>(mem, { ...l });
  const v = new SplitVirtqueueDevice(mem, { ...l });
  d.disableCb();
  v.disableNotification();
  return {
    d,
    v,
    gpas: new Float64Array(batch),
    lens: new Uint32Array(batch).fill(64),
    toks: new Array<number>(batch).fill(1),
    chains: Array.from({ length: batch }, () => new DescriptorChain()),
    outT: new Array<number | undefined>(batch).fill(undefined),
    outL: new Uint32Array(batch),
  };
}

/**
 * Split, batch 32, the two sides timed apart (ns per packet; one clock read per phase, ≈ 1 ns
 * per packet included): the calls the two-thread workers make, either one buffer per call
 * (addOutbuf / pop + fill / getBuf) or through the burst entry points (addOutbufs / popBurst +
 * fillBurst / getBufs). Direct, monomorphic calls, as in the workers.
 */
function splitPerSide(burst: boolean): (count: number) => { drv: number; dev: number } {
  const B = 32;
  const { d, v, gpas, lens, toks, chains, outT, outL } = burstRig(256, B);
  return (count) => {
    let tDrv = 0;
    let tDev = 0;
    for (let done = 0; done < count; done += B) {
      const t0 = performance.now();
      if (burst) {
        for (let k = 0; k < B; k++) gpas[k] = 0x80000 + 64 * ((done + k) & 255);
        d.addOutbufs(gpas, lens, toks, B);
      } else {
        for (let k = 0; k < B; k++) d.addOutbuf(0x80000 + 64 * ((done + k) & 255), 64, 1);
      }
      d.kickPrepare();
      const t1 = performance.now();
      if (burst) {
        const n = v.popBurst(chains, B);
        v.fillBurst(chains, n, 0);
      } else {
        for (let c = v.pop(chains[0]); c !== null; c = v.pop(chains[0])) v.fill(c, 0);
      }
      v.flush();
      v.shouldNotify();
      const t2 = performance.now();
      let got = 0;
      if (burst) got = d.getBufs(outT, outL, B);
      else while (d.getBuf() !== undefined) got++;
      if (got !== B) throw new Error('lost a buffer');
      const t3 = performance.now();
      tDrv += t1 - t0 + (t3 - t2);
      tDev += t2 - t1;
    }
    return { drv: (tDrv * 1e6) / count, dev: (tDev * 1e6) / count };
  };
}

function section1(): void {
  console.log('\n== 1. single thread: add → pop → push → get_buf, 64-byte buffers, queue 256 (chains/s, median of 5) ==');
  const chains = QUICK ? 200_000 : 1_000_000;
  const ctx = createSimContext();
  const traced = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  let seen = 0;
  const sub = traced.events$.subscribe(() => {
    seen++;
  });
  const configs: Array<[string, Side, number]> = [
    ['split  batch 1 ', makeSide('split'), 1],
    ['split  batch 32', makeSide('split'), 32],
    ['packed batch 1 ', makeSide('packed'), 1],
    ['packed batch 32', makeSide('packed'), 32],
    ['split  batch 32, tracing on (subscriber attached)', makeSide('split', traced), 32],
  ];
  const res = configs.map(() => [] as number[]);
  for (const [, s, b] of configs) singleThread(s, b, chains / 4); // warm up
  for (let round = 0; round < 5; round++) configs.forEach(([, s, b], i) => res[i]!.push(singleThread(s, b, i === 4 ? chains / 8 : chains)));
  configs.forEach(([name], i) => console.log(`  ${name}: ${fmt(median(res[i]!))}chains/s`));
  for (const burst of [false, true]) {
    const run = splitPerSide(burst);
    run(chains / 4);
    const drv: number[] = [];
    const dev: number[] = [];
    for (let round = 0; round < 5; round++) {
      const r = run(chains);
      drv.push(r.drv);
      dev.push(r.dev);
    }
    console.log(`  split  batch 32, per side, ${burst ? 'burst entry points' : 'one buffer per call'}: driver ${median(drv).toFixed(1)} ns/packet, device ${median(dev).toFixed(1)} ns/packet`);
  }
  sub.unsubscribe();
  void seen;
}

// ---------------------------------------------------------------- 2. two threads vs C
const SIZE = 256;
const BATCH = 32;
/** Pin driver and device to different CPUs in both implementations (needs taskset and ≥ 2 CPUs). */
const PIN = process.env['BENCH_PIN'] !== '0' && os.cpus().length >= 2 && hasTaskset();
function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Packets each two-thread run handles before its timed window (both TS and C), so JIT warm-up and
 * first-touch faults are not timed. Rates per 65,536-packet slice show the TS workers still
 * tiering up (a re-optimisation after a deopt) until ≈ 400,000 packets, hence 1,000,000.
 */
const WARM = 1_000_000;

/** `ring-worker.ts`: @virq/virtio-ring; `inline-worker.ts`: the same loops as C written straight in JS (the JS floor). */
async function tsTwoThreads(count: number, availPublish: 'immediate' | 'on-kick', worker = './ring-worker.ts'): Promise<number> {
  const sab = new SharedArrayBuffer(0x100000);
  const ctl = new SharedArrayBuffer(8);
  const c = new Int32Array(ctl);
  const url = new URL(worker, import.meta.url);
  const execArgv = ['--import', new URL('../../../tools/ts-register.mjs', import.meta.url).href];
  const mk = (role: string): Worker => new Worker(url, { workerData: { role, sab, ctl, size: SIZE, batch: BATCH, count, availPublish, pin: PIN, warm: WARM }, execArgv });
  const ws = [mk('device'), mk('driver')];
  const done = ws.map((w) => new Promise<{ windowMs?: number }>((res, rej) => {
    w.on('message', res);
    w.on('error', rej);
  }));
  while (Atomics.load(c, 1) < 2) await new Promise((r) => setTimeout(r, 2));
  Atomics.store(c, 0, 1);
  const results = await Promise.all(done);
  // The driver times the window after WARM completions (the C reference does the same).
  const windowMs = results[1]!.windowMs!;
  return count / (windowMs / 1000);
}

function buildC(): string | undefined {
  const src = path.join(repo, 'tools/ring-ref/ring_ref.c');
  const out = path.join(os.tmpdir(), `virq-ring-ref-${process.pid}`);
  try {
    execFileSync('gcc', ['-O2', '-pthread', '-o', out, src], { stdio: 'pipe' });
    return out;
  } catch (e) {
    console.log(`  (C reference not built: ${(e as Error).message.split('\n')[0]})`);
    return undefined;
  }
}

function cTwoThreads(bin: string, count: number, availPublish: string): number {
  const line = execFileSync(bin, [String(count), String(BATCH), String(SIZE), availPublish, PIN ? 'pin' : 'nopin', String(WARM)], { encoding: 'utf8' });
  const m = /pps=(\d+)/.exec(line);
  if (m === null) throw new Error(`unexpected C output: ${line}`);
  return Number(m[1]);
}

async function section2(): Promise<void> {
  console.log(`\n== 2. two threads over one SharedArrayBuffer: split ring, queue ${SIZE}, batch ${BATCH}, polling (packets/s) ==`);
  console.log(`  host: ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (spinning pairs are sensitive to it); driver/device ${PIN ? 'pinned to CPUs 0/1 in both' : 'not pinned'}`);
  const bin = buildC();
  const count = QUICK ? 300_000 : 1_000_000;
  const pairs = QUICK ? 3 : 5;
  const INLINE = './inline-worker.ts';
  for (const mode of ['on-kick', 'immediate'] as const) {
    const ts: number[] = [];
    const js: number[] = [];
    const cs: number[] = [];
    const ratios: number[] = [];
    const jsRatios: number[] = [];
    await tsTwoThreads(count / 4, mode); // warm-up of the loader and the code cache
    await tsTwoThreads(count / 4, mode, INLINE);
    for (let p = 0; p < pairs; p++) {
      // Alternate the order so drift in host load hits every column.
      let t: number;
      let j: number;
      let cv = Number.NaN;
      if (p % 2 === 0) {
        t = await tsTwoThreads(count, mode);
        j = await tsTwoThreads(count, mode, INLINE);
        if (bin !== undefined) cv = cTwoThreads(bin, count, mode);
      } else {
        if (bin !== undefined) cv = cTwoThreads(bin, count, mode);
        j = await tsTwoThreads(count, mode, INLINE);
        t = await tsTwoThreads(count, mode);
      }
      ts.push(t);
      js.push(j);
      cs.push(cv);
      ratios.push(t / cv);
      jsRatios.push(j / cv);
      console.log(`  [avail.idx ${mode}] pair ${p + 1}: TS ${fmt(t)}pps   JS floor ${fmt(j)}pps   C ${Number.isNaN(cv) ? '-' : fmt(cv)}pps   TS/C ${(t / cv).toFixed(2)}   JS floor/C ${(j / cv).toFixed(2)}`);
    }
    console.log(`  [avail.idx ${mode}] median: TS ${fmt(median(ts))}pps   JS floor ${fmt(median(js))}pps   C ${bin === undefined ? '-' : fmt(median(cs))}pps   median per-pair TS/C ratio ${median(ratios).toFixed(2)} (target ≥ 0.5), JS floor/C ${median(jsRatios).toFixed(2)}`);
    if (bin !== undefined) {
      // Two spinning threads on a 2-vCPU VM: where the hypervisor places them moves C by up to
      // 4× between runs; a ratio against a slow C run says little about the TS ring.
      const lo = Math.min(...cs);
      const hi = Math.max(...cs);
      if (hi / lo > 1.5) console.log(`  [avail.idx ${mode}] note: C itself ranged ${fmt(lo)}–${fmt(hi)}pps (×${(hi / lo).toFixed(1)}) across pairs; TS against the fastest C run: ${(median(ts) / hi).toFixed(2)}`);
    }
  }
  if (bin !== undefined) fs.rmSync(bin, { force: true });
  oneThreadFloor(pairs);
}

/**
 * The same loops in one thread, in turn (driver batch → device batch → driver reclaim): the
 * ring through its burst entry points, the JS floor (bench/floor-one-thread.ts) and the C
 * (tools/ring-ref/ring_ref_one_thread.c). No second core, so no cache-line traffic: JS floor/C
 * is what V8 makes of this loop against gcc, TS/JS floor what the ring's code adds to it.
 */
function oneThreadFloor(pairs: number): void {
  const src = path.join(repo, 'tools/ring-ref/ring_ref_one_thread.c');
  const bin = path.join(os.tmpdir(), `virq-ring-ref-1t-${process.pid}`);
  try {
    execFileSync('gcc', ['-O2', '-o', bin, src], { stdio: 'pipe' });
  } catch (e) {
    console.log(`  (one-thread C reference not built: ${(e as Error).message.split('\n')[0]})`);
    return;
  }
  const count = QUICK ? 1_000_000 : 5_000_000;
  const c1 = (): number => {
    const line = execFileSync(bin, [String(count), String(BATCH), String(SIZE), String(WARM)], { encoding: 'utf8' });
    const m = /pps=(\d+).*errors=0/.exec(line);
    if (m === null) throw new Error(`unexpected C output: ${line}`);
    return Number(m[1]);
  };
  const ts1 = tsOneThread();
  const ts: number[] = [];
  const js: number[] = [];
  const cs: number[] = [];
  for (let p = 0; p < pairs; p++) {
    if (p % 2 === 0) {
      ts.push(ts1(count));
      js.push(floorOneThread(count, BATCH, SIZE, WARM));
      cs.push(c1());
    } else {
      cs.push(c1());
      js.push(floorOneThread(count, BATCH, SIZE, WARM));
      ts.push(ts1(count));
    }
  }
  fs.rmSync(bin, { force: true });
  const per = (a: number[], b: number[]): string => median(a.map((x, i) => x / b[i]!)).toFixed(2);
  console.log(`  [one thread, same loops in turn] median: TS ${fmt(median(ts))}pps   JS floor ${fmt(median(js))}pps   C ${fmt(median(cs))}pps   per-pair TS/C ${per(ts, cs)}   JS floor/C ${per(js, cs)}   TS/JS floor ${per(ts, js)}`);
}

/** The ring in one thread through the burst entry points (the calls ring-worker.ts makes), warmed by WARM packets. */
function tsOneThread(): (count: number) => number {
  const { d, v, gpas, lens, toks, chains, outT, outL } = burstRig(SIZE, BATCH);
  const run = (count: number): void => {
    for (let done = 0; done < count; done += BATCH) {
      for (let k = 0; k < BATCH; k++) gpas[k] = 0x80000 + 64 * ((done + k) & 255);
      d.addOutbufs(gpas, lens, toks, BATCH);
      d.kickPrepare();
      const n = v.popBurst(chains, BATCH);
      v.fillBurst(chains, n, 0);
      v.flush();
      v.shouldNotify();
      if (d.getBufs(outT, outL, BATCH) !== BATCH) throw new Error('lost a buffer');
    }
  };
  run(WARM);
  return (count) => {
    const t0 = performance.now();
    run(count);
    return count / ((performance.now() - t0) / 1000);
  };
}

// ---------------------------------------------------------------- 3. notifications per buffer
/**
 * Steady producer/consumer in discrete ticks: the driver adds one 64-byte buffer per tick and
 * calls virtqueue_kick after each (start_xmit). A kick wakes the device handler `wake` ticks
 * later (a vhost worker's wake-up); the handler runs QEMU's loop (disable notifications, pop
 * everything, push, notify; re-enable and re-check), so the device keeps up. An interrupt runs
 * the driver's NAPI handler `irqWake` ticks later (disable_cb, get_buf…, enable_cb re-check).
 */
function notifications(format: 'split' | 'packed', eventIdx: boolean, ticks: number, wake: number, irqWake: number): { kicksPerBuf: number; irqsPerBuf: number } {
  const mem = GuestMemory.ofSize(0x100000);
  const size = 256;
  const features = { eventIdx, packed: format === 'packed' };
  let kicks = 0;
  let irqs = 0;
  const l = format === 'split' ? splitRingLayout(size, 0x10000) : packedRingLayout(size, 0x10000);
  const drv = format === 'split' ? new SplitVirtqueueDriver<number>(mem, { ...l, features }) : new PackedVirtqueueDriver<number>(mem, { ...l, features });
  const dev = format === 'split' ? new SplitVirtqueueDevice(mem, { ...l, features }) : new PackedVirtqueueDevice(mem, { ...l, features });
  const chain = new DescriptorChain();
  let devAt = -1;
  let irqAt = -1;
  let added = 0;
  for (let t = 0; t < ticks; t++) {
    if (drv.addOutbuf(0x80000 + 64 * (t & 255), 64, t + 1)) {
      added++;
      if (drv.kickPrepare()) {
        kicks++;
        if (devAt < 0) devAt = t + wake;
      }
    }
    if (devAt === t) {
      devAt = -1;
      for (;;) {
        dev.disableNotification();
        for (let c = dev.pop(chain); c !== null; c = dev.pop(chain)) dev.fill(c, 0);
        dev.flush();
        if (dev.notify()) {
          irqs++;
          if (irqAt < 0) irqAt = t + irqWake;
        }
        if (!dev.enableNotification()) break;
      }
    }
    if (irqAt === t) {
      irqAt = -1;
      drv.interrupt();
      drv.disableCb();
      for (;;) {
        while (drv.getBuf() !== undefined) {
          /* reclaim */
        }
        if (drv.enableCb()) break;
        drv.disableCb();
      }
    }
  }
  return { kicksPerBuf: kicks / added, irqsPerBuf: irqs / added };
}

function section3(): void {
  console.log('\n== 3. notifications per buffer, steady producer (1 buffer/tick, kick after each) and a device that keeps up ==');
  const ticks = QUICK ? 20_000 : 200_000;
  console.log('  format  kick→device  irq→driver  EVENT_IDX  kicks/buffer  interrupts/buffer   (latencies in ticks)');
  for (const format of ['split', 'packed'] as const) {
    for (const [wake, irqWake] of [[1, 1], [4, 4], [16, 16], [1, 16], [16, 1]] as const) {
      for (const ev of [false, true]) {
        const r = notifications(format, ev, ticks, wake, irqWake);
        console.log(`  ${format.padEnd(6)}  ${String(wake).padStart(10)}  ${String(irqWake).padStart(10)}  ${(ev ? 'on' : 'off').padStart(9)}  ${r.kicksPerBuf.toFixed(3).padStart(12)}  ${r.irqsPerBuf.toFixed(3).padStart(17)}`);
      }
    }
  }
}

const only = process.env['BENCH_ONLY'];
if (only === undefined || only === '1') section1();
if (only === undefined || only === '2') await section2();
if (only === undefined || only === '3') section3();
