import { VirqError } from '@virq/core';
import { FdWatcher, NativeEventFd, closeFd, memfdCreate, mmapFd, nativeSupport } from '@virq/native';
import { VhostUserErrorCode } from './errors.js';
import type { CallNotifier, MappedRegion, VhostUserHost } from './host.js';

/**
 * The real host: fds are host fd numbers received with SCM_RIGHTS. Memory fds are mmapped
 * MAP_SHARED (zero copy: the ArrayBuffer is the front end's RAM), kick eventfds are watched
 * in Node's event loop (a uv_poll on the fd, level-triggered; drained on every wake-up, so
 * nothing spins), call eventfds are written with eventfd_write(fd, 1).
 */
export class NativeVhostUserHost implements VhostUserHost<number> {
  private readonly eventfds = new Map<number, NativeEventFd>();
  private readonly watchers = new Map<number, FdWatcher>();
  closes = 0;

  constructor() {
    const s = nativeSupport();
    if (!s.ok) throw new VirqError(VhostUserErrorCode.NoHostSupport, `the real vhost-user transport needs @virq/native: ${s.reason}`, { errno: 'ENOSYS' });
  }

  mapMemory(fd: number, offset: number, size: number): MappedRegion {
    // DPDK maps from file offset 0 through mmap_offset + memory_size and adds the offset, so
    // an mmap_offset that is not page aligned still works.
    let m;
    try {
      m = mmapFd(fd, offset + size, 0);
    } catch (e) {
      throw new VirqError(VhostUserErrorCode.Map, `cannot mmap fd ${fd} for [${offset}, +${size}): ${e instanceof Error ? e.message : String(e)}`, { errno: 'EINVAL', cause: e });
    }
    return {
      buffer: m.buffer,
      offset,
      size,
      unmap: () => {
        if (m.mapped) m.unmap();
      },
    };
  }

  private eventfd(fd: number): NativeEventFd {
    let e = this.eventfds.get(fd);
    if (e === undefined) {
      try {
        e = NativeEventFd.fromFd(fd);
      } catch (err) {
        throw new VirqError(VhostUserErrorCode.FdCount, `fd ${fd} cannot be used as an eventfd: ${err instanceof Error ? err.message : String(err)}`, { errno: 'EBADF', cause: err });
      }
      this.eventfds.set(fd, e);
    }
    return e;
  }

  watchKick(fd: number, onKick: () => void): () => void {
    const e = this.eventfd(fd);
    const w = new FdWatcher(fd, () => {
      let got = false;
      try {
        got = e.tryRead() !== undefined;
      } catch {
        w.stop();
        return;
      }
      if (got) onKick();
    }, { onError: () => undefined });
    this.watchers.set(fd, w);
    return () => {
      w.stop();
      this.watchers.delete(fd);
    };
  }

  notifier(fd: number): CallNotifier {
    const e = this.eventfd(fd);
    return {
      signal: () => {
        try {
          e.tryWrite(1);
        } catch {
          // The front end went away; the disconnect will clean up.
        }
      },
    };
  }

  close(fd: number): void {
    this.closes++;
    this.watchers.get(fd)?.stop();
    this.watchers.delete(fd);
    const e = this.eventfds.get(fd);
    this.eventfds.delete(fd);
    try {
      if (e !== undefined) e.close();
      else closeFd(fd);
    } catch {
      // already closed
    }
  }

  createSharedMemory(size: number): { fd: number; region: MappedRegion } {
    const fd = memfdCreate('vhost-inflight', size);
    return { fd, region: this.mapMemory(fd, 0, size) };
  }
}
