// Worker for bench/main.ts: echoes eventfd notifications from its own event loop
// (a second thread, like a vhost worker answering kicks with calls).
import { parentPort, workerData } from 'node:worker_threads';
import { NativeEventFd } from '@virq/native';

const { ping, pong } = workerData as { ping: number; pong: number };
const rx = NativeEventFd.fromFd(ping);
const tx = NativeEventFd.fromFd(pong);
rx.onReadable(() => {
  const v = rx.tryRead();
  if (v === undefined) return;
  if (v === 0xdeadn) {
    rx.onReadable(undefined);
    parentPort?.postMessage('done');
    return;
  }
  tx.write(v);
});
parentPort?.postMessage('ready');
