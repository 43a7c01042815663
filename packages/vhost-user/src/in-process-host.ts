import { EventFd, VirqError, type Actor, type Scheduler } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import type { CallNotifier, MappedRegion, VhostUserHost } from './host.js';

/**
 * An fd of the in-process transport: a memory object (what a memfd is), an eventfd, or a
 * socket end. Closing twice is a bug the tests look for (`InProcessHost.doubleCloses`).
 */
export class InProcessFd {
  closed = false;
  private constructor(
    readonly kind: 'memory' | 'eventfd' | 'socket',
    readonly memory: ArrayBuffer | SharedArrayBuffer | undefined,
    readonly eventfd: EventFd | undefined,
    readonly name: string,
  ) {}
  static memory(buffer: ArrayBuffer | SharedArrayBuffer, name = 'memfd'): InProcessFd {
    return new InProcessFd('memory', buffer, undefined, name);
  }
  static eventfd(fd: EventFd): InProcessFd {
    return new InProcessFd('eventfd', undefined, fd, fd.name);
  }
  static socket(name = 'socket'): InProcessFd {
    return new InProcessFd('socket', undefined, undefined, name);
  }
}

export interface InProcessHostOptions {
  /** Actor the back end's kick handling runs on (its thread); the kick waiter's actor. */
  actor?: Actor;
  /** Delay between a kick write and the back end noticing it (thread wake-up). Default 0. */
  wakeupNs?: number;
}

/** The host side of the in-process transport: fds are InProcessFd objects. */
export class InProcessHost implements VhostUserHost<InProcessFd> {
  closes = 0;
  doubleCloses = 0;
  maps = 0;
  unmaps = 0;

  constructor(
    readonly scheduler: Scheduler,
    private readonly options: InProcessHostOptions = {},
  ) {}

  mapMemory(fd: InProcessFd, offset: number, size: number): MappedRegion {
    if (fd.closed || fd.kind !== 'memory' || fd.memory === undefined) {
      throw new VirqError(VhostUserErrorCode.Map, `cannot mmap ${fd.name}: ${fd.closed ? 'closed' : `a ${fd.kind} fd is not memory`}`, { errno: 'EBADF' });
    }
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size <= 0 || offset + size > fd.memory.byteLength) {
      throw new VirqError(VhostUserErrorCode.Map, `mmap of [${offset}, +${size}) reaches past the ${fd.memory.byteLength}-byte memory object ${fd.name}`, { errno: 'EINVAL', details: { offset, size, fdSize: fd.memory.byteLength } });
    }
    this.maps++;
    let mapped = true;
    return {
      buffer: fd.memory,
      offset,
      size,
      unmap: () => {
        if (mapped) this.unmaps++;
        mapped = false;
      },
    };
  }

  watchKick(fd: InProcessFd, onKick: () => void): () => void {
    const efd = this.eventfdOf(fd);
    return efd.addWaiter({
      actor: this.options.actor,
      delayNs: this.options.wakeupNs ?? 0,
      wake: (e) => {
        if (e.testAndClear() > 0) onKick();
      },
    });
  }

  notifier(fd: InProcessFd): CallNotifier {
    const efd = this.eventfdOf(fd);
    return { signal: () => void efd.tryWrite(1) };
  }

  close(fd: InProcessFd): void {
    if (fd.closed) {
      this.doubleCloses++;
      if (process.env['VU_DEBUG']) console.log(new Error('double close ' + fd.name).stack);
      return;
    }
    fd.closed = true;
    this.closes++;
  }

  createSharedMemory(size: number): { fd: InProcessFd; region: MappedRegion } {
    const fd = InProcessFd.memory(new ArrayBuffer(size), 'inflight');
    return { fd, region: this.mapMemory(fd, 0, size) };
  }

  private eventfdOf(fd: InProcessFd): EventFd {
    if (fd.closed || fd.eventfd === undefined) {
      throw new VirqError(VhostUserErrorCode.FdCount, `${fd.name} is ${fd.closed ? 'closed' : `a ${fd.kind} fd, not an eventfd`}`, { errno: 'EBADF' });
    }
    return fd.eventfd;
  }
}
