import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VirqError } from '@virq/core';
import { NativeErrorCode } from './errors.js';

/** An opaque uv_poll handle owned by the addon. */
export interface PollHandle {
  readonly __pollHandle: unique symbol;
}

/**
 * The addon's functions (addon/virq_native.c). Every system call returns a non-negative
 * result or -errno; nothing here throws for a failed call.
 */
export interface NativeBinding {
  eventfd(initval: number, semaphore: boolean, nonblock: boolean): number;
  eventfdRead(fd: number): bigint | number;
  eventfdWrite(fd: number, value: bigint | number): number;
  memfdCreate(name: string, allowSealing: boolean): number;
  ftruncate(fd: number, size: number): number;
  fstatSize(fd: number): [number, boolean] | number;
  getSeals(fd: number): number;
  addSeals(fd: number, seals: number): number;
  close(fd: number): number;
  dup(fd: number): number;
  setNonBlocking(fd: number, on: boolean): number;
  fdFlags(fd: number): [number, number] | number;
  mmap(fd: number, size: number, offset: number, writable: boolean): ArrayBuffer | number;
  munmap(buffer: ArrayBuffer): number;
  unixListen(path: string, backlog: number): number;
  unixAccept(fd: number): number;
  unixConnect(path: string): number;
  socketpair(out: Int32Array): number;
  sendmsg(fd: number, data: Uint8Array, fds: readonly number[] | null): number;
  recvmsg(fd: number, into: Uint8Array, maxFds: number, out: Int32Array): number;
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): PollHandle | number;
  pollUpdate(handle: PollHandle, events: number): number;
  pollRef(handle: PollHandle, ref: boolean): number;
  pollStop(handle: PollHandle): number;
}

/** Where node-gyp puts the addon, relative to this file (src/ in the repo, dist/ when published). */
function addonPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.join(here, '..', 'build', 'Release', 'virq_native.node');
}

let loaded: { binding: NativeBinding } | { reason: string } | undefined;

function load(): { binding: NativeBinding } | { reason: string } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    loaded = { reason: `@virq/native needs Linux (eventfd, memfd, SCM_RIGHTS); this is ${process.platform}` };
    return loaded;
  }
  const file = addonPath();
  try {
    const req = createRequire(import.meta.url);
    loaded = { binding: req(file) as NativeBinding };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loaded = {
      reason: `the virq_native addon is not loadable (${why}); build it with \`cd packages/native && npm run build:addon\` (needs node-gyp, a C compiler and Node headers)`,
    };
  }
  return loaded;
}

/** Whether the real primitives are usable here; tests skip with `reason` when not. */
export function nativeSupport(): { ok: true } | { ok: false; reason: string } {
  const l = load();
  return 'binding' in l ? { ok: true } : { ok: false, reason: l.reason };
}

/** The loaded addon, or a VirqError 'native.unsupported' saying why it is not there. */
export function binding(): NativeBinding {
  const l = load();
  if ('binding' in l) return l.binding;
  throw new VirqError(NativeErrorCode.Unsupported, l.reason, { errno: 'ENOSYS' });
}
