import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * The split ring across two real threads over one SharedArrayBuffer: the driver in one worker,
 * the device in another (bench/ring-worker.ts, compiled by the repo's loader). The device checks
 * that every descriptor it reads is the one the driver published for that packet; a missing
 * barrier or a lost index update shows as a mismatch, a NEEDS_RESET, or a hang (timeout).
 */
const root = path.resolve(__dirname, '../../..');
const worker = path.join(__dirname, '../bench/ring-worker.ts');
const register = pathToFileURL(path.join(root, 'tools/ts-register.mjs')).href;

async function run(size: number, batch: number, count: number, availPublish: 'immediate' | 'on-kick'): Promise<number[]> {
  const sab = new SharedArrayBuffer(0x100000);
  const ctl = new SharedArrayBuffer(8);
  const mk = (role: string): Worker => new Worker(worker, { workerData: { role, sab, ctl, size, batch, count, availPublish }, execArgv: ['--import', register] });
  const ws = [mk('device'), mk('driver')];
  const done = ws.map(
    (w) =>
      new Promise<number>((res, rej) => {
        w.on('message', (m: { result: number }) => res(m.result));
        w.on('error', rej);
      }),
  );
  const c = new Int32Array(ctl);
  while (Atomics.load(c, 1) < 2) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(c, 0, 1);
  const out = await Promise.all(done);
  // Both sides saw every packet: used.idx and avail.idx ended at count mod 2^16.
  const u16 = new Uint16Array(sab);
  const availIdx = u16[(0x10000 + 16 * size + 2) / 2]!;
  expect(availIdx).toBe(count & 0xffff);
  return out;
}

describe('two threads over a SharedArrayBuffer', () => {
  test.each([
    [16, 8, 'immediate'],
    [16, 8, 'on-kick'],
    [256, 32, 'on-kick'],
  ] as const)('queue %i, batch %i, avail.idx %s: 100,000 packets, every descriptor seen as published', async (size, batch, mode) => {
    const [deviceNotifies, driverKicks] = await run(size, batch, 100_000, mode);
    // Both sides poll with suppression on: the device set NO_NOTIFY, the driver NO_INTERRUPT.
    expect(driverKicks).toBe(0);
    expect(deviceNotifies).toBe(0);
  }, 60_000);
});
