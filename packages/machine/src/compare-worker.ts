import { parentPort } from 'node:worker_threads';
import { VirqError } from '@virq/core';
import { runCell, type CellJob } from './compare.js';

parentPort?.on('message', (job: CellJob) => {
  try {
    parentPort!.postMessage({ index: job.index, metrics: runCell(job) });
  } catch (e) {
    // The error's code crosses the thread boundary so the parent rethrows a typed VirqError.
    parentPort!.postMessage({ index: job.index, error: e instanceof Error ? e.message : String(e), ...(e instanceof VirqError ? { code: e.code } : {}) });
  }
});
