import { parentPort } from 'node:worker_threads';
import { runCell, type CellJob } from './compare.js';

parentPort?.on('message', (job: CellJob) => {
  try {
    parentPort!.postMessage({ index: job.index, metrics: runCell(job) });
  } catch (e) {
    parentPort!.postMessage({ index: job.index, error: e instanceof Error ? e.message : String(e) });
  }
});
