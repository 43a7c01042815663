// Worker for fd-watcher.test.ts: watches an eventfd in the worker's own loop, reports each
// readiness to the parent, and stays alive (its watcher keeps the loop running) until terminated.
import { parentPort, workerData } from 'node:worker_threads';
import { NativeEventFd } from '@virq/native';

const e = NativeEventFd.fromFd((workerData as { fd: number }).fd);
e.onReadable(() => parentPort?.postMessage(`read ${e.read()}`));
parentPort?.postMessage('ready');
