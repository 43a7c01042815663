// @virq/native benchmarks: real syscalls and real readiness in Node's loop.
// Run: cd packages/native && npm run bench   (about 20 s; figures are medians of 5 runs)
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { NativeEventFd, UnixStreamSocket, closeFd, dupFd, nativeSupport } from '@virq/native';

const RUNS = 5;
const SLICE_MS = 400;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** eventfd A → callback → eventfd B → callback → A … in one loop; returns round trips/s. */
function eventfdPingPongSameLoop(ms: number): Promise<number> {
  return new Promise((resolve) => {
    const a = NativeEventFd.create();
    const b = NativeEventFd.create();
    let trips = 0;
    const t0 = performance.now();
    a.onReadable(() => {
      a.read();
      trips++;
      if (performance.now() - t0 >= ms) {
        a.close();
        b.close();
        resolve((trips * 1000) / (performance.now() - t0));
        return;
      }
      b.write(1);
    });
    b.onReadable(() => {
      b.read();
      a.write(1);
    });
    a.write(1);
  });
}

/** The same ping-pong with the echo side on a worker thread (its own libuv loop). */
async function eventfdPingPongWorker(ms: number): Promise<number> {
  const ping = NativeEventFd.create();
  const pong = NativeEventFd.create();
  const here = path.dirname(fileURLToPath(import.meta.url));
  const worker = new Worker(path.join(here, 'eventfd-echo-worker.ts'), {
    execArgv: ['--import', path.join(here, '..', '..', '..', 'tools', 'ts-register.mjs')],
    workerData: { ping: dupFd(ping.fd), pong: dupFd(pong.fd) },
  });
  await new Promise<void>((r) => worker.once('message', () => r()));
  const rate = await new Promise<number>((resolve) => {
    let trips = 0;
    const t0 = performance.now();
    pong.onReadable(() => {
      pong.read();
      trips++;
      if (performance.now() - t0 >= ms) {
        pong.onReadable(undefined);
        resolve((trips * 1000) / (performance.now() - t0));
        return;
      }
      ping.write(1);
    });
    ping.write(1);
  });
  ping.write(0xdead);
  await new Promise<void>((r) => worker.once('message', () => r()));
  await worker.terminate();
  ping.close();
  pong.close();
  return rate;
}

/** Many writes between callbacks: writes/s and how many callbacks they cost (coalescing). */
function eventfdBurst(ms: number): Promise<{ writes: number; callbacks: number }> {
  return new Promise((resolve) => {
    const e = NativeEventFd.create();
    let callbacks = 0;
    let counted = 0n;
    e.onReadable(() => {
      callbacks++;
      counted += e.read();
    });
    let writes = 0;
    const t0 = performance.now();
    const burst = (): void => {
      for (let i = 0; i < 256; i++) e.write(1);
      writes += 256;
      if (performance.now() - t0 < ms) {
        setImmediate(burst);
        return;
      }
      setImmediate(() => {
        const dt = performance.now() - t0;
        if (counted !== BigInt(writes)) throw new Error(`lost writes: ${counted} != ${writes}`);
        e.close();
        resolve({ writes: (writes * 1000) / dt, callbacks: (callbacks * 1000) / dt });
      });
    };
    burst();
  });
}

/** sendmsg + recvmsg of a 12-byte vhost-user header carrying `nfds` fds; messages/s. */
function sendRecv(ms: number, nfds: number): number {
  const [a, b] = UnixStreamSocket.pair();
  const efds = Array.from({ length: nfds }, () => NativeEventFd.create());
  const fds = efds.map((e) => e.fd);
  const hdr = new Uint8Array(12);
  const into = new Uint8Array(64);
  let n = 0;
  const t0 = performance.now();
  let dt = 0;
  do {
    for (let i = 0; i < 200; i++) {
      a.sendMsg(hdr, fds);
      const r = b.recvInto(into, 8);
      if (!r || r.fds.length !== nfds) throw new Error('lost a message');
      for (const fd of r.fds) closeFd(fd);
    }
    n += 200;
    dt = performance.now() - t0;
  } while (dt < ms);
  a.close();
  b.close();
  for (const e of efds) e.close();
  return (n * 1000) / dt;
}

/** Request/reply over a socketpair, each side woken by its onReadable; round trips/s. */
function socketPingPong(ms: number, withFd: boolean): Promise<number> {
  return new Promise((resolve) => {
    const [a, b] = UnixStreamSocket.pair();
    const e = NativeEventFd.create();
    const msg = new Uint8Array(12);
    const into = new Uint8Array(64);
    let trips = 0;
    const t0 = performance.now();
    b.onReadable(() => {
      for (;;) {
        const r = b.recvInto(into, 8);
        if (!r) return;
        for (const fd of r.fds) closeFd(fd);
        b.sendMsg(msg);
      }
    });
    a.onReadable(() => {
      for (;;) {
        const r = a.recvInto(into, 8);
        if (!r) return;
        trips++;
        if (performance.now() - t0 >= ms) {
          a.close();
          b.close();
          e.close();
          resolve((trips * 1000) / (performance.now() - t0));
          return;
        }
        a.sendMsg(msg, withFd ? [e.fd] : undefined);
      }
    });
    a.sendMsg(msg, withFd ? [e.fd] : undefined);
  });
}

async function main(): Promise<void> {
  const s = nativeSupport();
  if (!s.ok) {
    console.log(`@virq/native bench not run: ${s.reason}`);
    return;
  }
  const r: Record<string, number[]> = {};
  const add = (k: string, v: number): void => {
    (r[k] ??= []).push(v);
  };
  for (let i = 0; i < RUNS; i++) {
    add('eventfd ping-pong, one loop (round trips/s)', await eventfdPingPongSameLoop(SLICE_MS));
    add('eventfd ping-pong, main loop <-> worker thread (round trips/s)', await eventfdPingPongWorker(SLICE_MS));
    const burst = await eventfdBurst(SLICE_MS);
    add('eventfd writes/s, 256 per loop turn', burst.writes);
    add('  readiness callbacks/s for them', burst.callbacks);
    add('sendmsg+recvmsg 12 B, 0 fds (msgs/s)', sendRecv(SLICE_MS, 0));
    add('sendmsg+recvmsg 12 B, 1 fd (msgs/s)', sendRecv(SLICE_MS, 1));
    add('sendmsg+recvmsg 12 B, 8 fds (msgs/s)', sendRecv(SLICE_MS, 8));
    add('socket request/reply via onReadable, 0 fds (round trips/s)', await socketPingPong(SLICE_MS, false));
    add('socket request/reply via onReadable, 1 fd (round trips/s)', await socketPingPong(SLICE_MS, true));
  }
  console.log(`@virq/native bench (node ${process.version}, ${RUNS} runs x ${SLICE_MS} ms, medians; min..max)`);
  for (const [k, v] of Object.entries(r)) {
    const m = median(v);
    const extra = k.includes('round trips') ? `  = ${(1e6 / m).toFixed(1)} µs per round trip` : '';
    console.log(`  ${k.padEnd(64)} ${fmt(m).padStart(10)}  (${fmt(Math.min(...v))}..${fmt(Math.max(...v))})${extra}`);
  }
}

await main();
