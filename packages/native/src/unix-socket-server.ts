import fs from 'node:fs';
import { binding } from './binding.js';
import { Errno, NativeErrorCode, argumentError, closedError, syscallError } from './errors.js';
import { closeFd } from './fd.js';
import { FdWatcher, PollEvent } from './fd-watcher.js';
import { UnixStreamSocket } from './unix-stream-socket.js';

export interface UnixSocketServerOptions {
  /** listen(2) backlog. Default 16. */
  backlog?: number;
  /**
   * A socket file left at `path` by a dead server (connect gives ECONNREFUSED) is removed
   * first, as QEMU's server=on and DPDK's vhost driver do. A live one is EADDRINUSE. Default true.
   */
  replaceStale?: boolean;
}

function isStaleSocket(path: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return false;
  }
  if (!st.isSocket()) return false;
  const fd = binding().unixConnect(path);
  if (fd >= 0) {
    binding().close(fd);
    return false;
  }
  return fd === -111 /* ECONNREFUSED */;
}

/** A listening AF_UNIX SOCK_STREAM socket (vhost-user server mode: the back end creates the socket). */
export class UnixSocketServer {
  readonly path: string;
  private fdValue: number;
  private watcher: FdWatcher | undefined;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fdValue = fd;
  }

  static listen(path: string, opts: UnixSocketServerOptions = {}): UnixSocketServer {
    if (Buffer.byteLength(path) >= 108) throw argumentError(`Unix socket path is at most 107 bytes (sun_path), got ${Buffer.byteLength(path)}: use a shorter path`);
    const backlog = opts.backlog ?? 16;
    if (!Number.isInteger(backlog) || backlog < 1) throw argumentError(`backlog must be a positive integer, got ${backlog}`);
    if ((opts.replaceStale ?? true) && isStaleSocket(path)) fs.unlinkSync(path);
    const fd = binding().unixListen(path, backlog);
    if (fd < 0) throw syscallError(NativeErrorCode.Listen, 'bind/listen', fd, `${path} exists and is in use (EADDRINUSE) or its directory is not writable`, { path });
    return new UnixSocketServer(path, fd);
  }

  get fd(): number {
    if (this.fdValue < 0) throw closedError('UnixSocketServer');
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue < 0;
  }

  /** accept4(2) one pending connection (non-blocking, cloexec), or undefined when none waits. */
  accept(): UnixStreamSocket | undefined {
    const r = binding().unixAccept(this.fd);
    if (r >= 0) return UnixStreamSocket.adoptAccepted(r);
    if (r === -Errno.EAGAIN || r === -103 /* ECONNABORTED */) return undefined;
    throw syscallError(NativeErrorCode.Accept, 'accept4', r, 'the process may be out of file descriptors (EMFILE)', { path: this.path });
  }

  /** Calls `cb` from Node's loop for every new connection; `undefined` stops accepting. */
  onConnection(cb: ((socket: UnixStreamSocket) => void) | undefined, opts: { ref?: boolean } = {}): void {
    this.watcher?.stop();
    this.watcher = undefined;
    if (!cb) return;
    this.watcher = new FdWatcher(
      this.fd,
      () => {
        for (;;) {
          if (this.fdValue < 0) return;
          const s = this.accept();
          if (!s) return;
          cb(s);
        }
      },
      { events: PollEvent.Readable, ...(opts.ref === undefined ? {} : { ref: opts.ref }) },
    );
  }

  ref(): void {
    this.watcher?.ref();
  }

  unref(): void {
    this.watcher?.unref();
  }

  /** Stops accepting, closes the listening fd and removes the socket file (idempotent). */
  close(opts: { unlink?: boolean } = {}): void {
    if (this.fdValue < 0) return;
    this.watcher?.stop();
    this.watcher = undefined;
    const fd = this.fdValue;
    this.fdValue = -1;
    closeFd(fd);
    if (opts.unlink ?? true) {
      try {
        fs.unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }
}
