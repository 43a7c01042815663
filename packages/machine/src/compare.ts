import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RunMetrics } from './metrics.js';
import type { TableRow } from './render-table.js';
import { runTopology } from './scenario.js';
import { machineRunProblem, parseTopology } from './topology.js';
import { applyVary, expandMatrix, type VaryDimension } from './vary.js';
import { VirqError } from '@virq/core';
import { MachineErrorCode, machineError } from './errors.js';

export interface CompareOptions {
  /** Worker threads; default one per core. 0 runs every cell in this thread. */
  workers?: number;
  /** Called after each finished cell (for a progress bar). */
  onProgress?: (done: number, total: number) => void;
}

export interface CellJob {
  index: number;
  label: Record<string, string>;
  doc: Record<string, unknown>;
}

/** Runs one cell: applies its settings to the document, validates it, runs it. */
export function runCell(job: CellJob): RunMetrics {
  const doc = structuredClone(job.doc);
  for (const [k, v] of Object.entries(job.label)) applyVary(doc, k, v);
  return runTopology(parseTopology(doc)).metrics;
}

/**
 * Runs the matrix of `dims` over a topology document. Every cell is validated before any
 * runs (a bad value fails fast, naming the cell), then cells run on worker threads, one per
 * core; each is deterministic by its seed, so the table does not depend on scheduling.
 */
export async function compareTopologies(doc: Record<string, unknown>, dims: readonly VaryDimension[], options: CompareOptions = {}): Promise<TableRow[]> {
  const cells = expandMatrix(dims);
  const jobs: CellJob[] = cells.map((label, index) => ({ index, label, doc }));
  for (const j of jobs) {
    const d = structuredClone(doc);
    try {
      for (const [k, v] of Object.entries(j.label)) applyVary(d, k, v);
      const problem = machineRunProblem(parseTopology(d));
      if (problem !== undefined) throw machineError(MachineErrorCode.Unsupported, problem);
    } catch (e) {
      if (e instanceof VirqError) throw new VirqError(e.code, `cell ${cellName(j.label)}: ${e.message}`, { details: { cell: j.label } });
      throw e;
    }
  }
  const workers = Math.min(options.workers ?? Math.max(1, os.availableParallelism()), jobs.length);
  const results: RunMetrics[] = new Array(jobs.length);
  let done = 0;
  if (workers <= 0) {
    for (const j of jobs) {
      results[j.index] = runCell(j);
      options.onProgress?.(++done, jobs.length);
    }
  } else {
    const { url, execArgv } = workerEntry();
    let next = 0;
    // The first failure stops every worker (no more cells are fed) and is a typed error.
    let failed = false;
    const pool: Worker[] = [];
    const fail = (reject: (e: unknown) => void, e: VirqError): void => {
      if (!failed) {
        failed = true;
        for (const w of pool) void w.terminate();
      }
      reject(e);
    };
    await Promise.all(
      Array.from({ length: workers }, () =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(url, { execArgv });
          pool.push(w);
          const feed = (): void => {
            if (failed || next >= jobs.length) {
              void w.terminate().then(() => resolve());
              return;
            }
            w.postMessage(jobs[next++]);
          };
          w.on('message', (m: { index: number; metrics?: RunMetrics; error?: string; code?: string }) => {
            if (m.error !== undefined) {
              fail(reject, new VirqError(m.code ?? MachineErrorCode.Unsupported, `cell ${cellName(jobs[m.index]!.label)}: ${m.error}`, { details: { cell: jobs[m.index]!.label } }));
              return;
            }
            results[m.index] = m.metrics!;
            options.onProgress?.(++done, jobs.length);
            feed();
          });
          w.on('error', (e) => fail(reject, machineError(MachineErrorCode.Unsupported, `a compare worker failed: ${e.message}`)));
          feed();
        }),
      ),
    );
  }
  return jobs.map((j) => ({ label: j.label, metrics: results[j.index]! }));
}

function cellName(label: Record<string, string>): string {
  return Object.entries(label).map(([k, v]) => `${k}=${v}`).join(' ');
}

/**
 * Where the worker script is. From a build it is compare-worker.js beside this file; from the
 * sources (.ts, run through tools/ts-register.mjs) the worker needs the same loader.
 */
function workerEntry(): { url: URL; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ext = path.extname(here);
  const url = new URL(`./compare-worker${ext}`, import.meta.url);
  if (ext !== '.ts') return { url, execArgv: [] };
  let dir = path.dirname(here);
  for (let i = 0; i < 8; i++) {
    const reg = path.join(dir, 'tools', 'ts-register.mjs');
    if (fs.existsSync(reg)) return { url, execArgv: ['--import', reg] };
    dir = path.dirname(dir);
  }
  return { url, execArgv: process.execArgv };
}
