import { binding } from './binding.js';
import { Errno, NativeErrorCode, argumentError, closedError, syscallError } from './errors.js';
import { closeFd, setNonBlocking } from './fd.js';
import { FdWatcher, PollEvent } from './fd-watcher.js';

/** What recvMsg returns: the bytes and the fds that came with them (SCM_RIGHTS). */
export interface ReceivedMessage {
  readonly data: Uint8Array;
  /** New fds in this process (close-on-exec); the caller owns and must close them. */
  readonly fds: number[];
  /** More fds were attached than `maxFds`: the extra ones were closed (MSG_CTRUNC). */
  readonly fdsTruncated: boolean;
}

/** What recvInto returns. */
export interface ReceivedInto {
  readonly bytes: number;
  readonly fds: number[];
  readonly fdsTruncated: boolean;
}

/** Most fds one sendmsg may carry (the kernel's SCM_MAX_FD). vhost-user needs up to 8. */
export const SCM_MAX_FD = 253;
const MSG_CTRUNC = 0x8;

/**
 * A connected AF_UNIX SOCK_STREAM socket (what vhost-user runs on), non-blocking, with
 * sendmsg/recvmsg carrying fds as SCM_RIGHTS. Received fds are opened MSG_CMSG_CLOEXEC.
 * Readiness comes from one FdWatcher (uv_poll) in Node's loop: onReadable / onWritable.
 *
 * Stream semantics: byte boundaries are not kept, but a recvmsg that picks up fds stops at
 * the end of the bytes they were sent with (Linux unix_stream_read_generic), so a reader that
 * takes exactly the header, then exactly the payload (as QEMU and DPDK do) gets every
 * message's fds with that message's header. Bytes sent without fds may glue onto the
 * following fd-carrying bytes in one read.
 */
export class UnixStreamSocket {
  private fdValue: number;
  private watcher: FdWatcher | undefined;
  private readable: (() => void) | undefined;
  private writable: (() => void) | undefined;
  private refed = true;
  private readonly recvOut = new Int32Array(2 + SCM_MAX_FD);

  private constructor(fd: number) {
    this.fdValue = fd;
  }

  /** connect(2) to a listening socket at `path` (the front end's side, or a client-mode back end). */
  static connect(path: string): UnixStreamSocket {
    if (Buffer.byteLength(path) >= 108) throw argumentError(`Unix socket path is at most 107 bytes (sun_path), got ${Buffer.byteLength(path)}: use a shorter path`);
    const fd = binding().unixConnect(path);
    if (fd < 0) {
      throw syscallError(NativeErrorCode.Connect, 'connect', fd, `nothing listens on ${path} (ENOENT/ECONNREFUSED), or its backlog is full (EAGAIN): start the server first or retry`, { path });
    }
    return new UnixStreamSocket(fd);
  }

  /** socketpair(AF_UNIX, SOCK_STREAM): two connected sockets (tests, in-process peers). */
  static pair(): [UnixStreamSocket, UnixStreamSocket] {
    const out = new Int32Array(2);
    const r = binding().socketpair(out);
    if (r < 0) throw syscallError(NativeErrorCode.Socketpair, 'socketpair', r, 'the process may be out of file descriptors');
    return [new UnixStreamSocket(out[0]), new UnixStreamSocket(out[1])];
  }

  /** Adopts a connected stream socket fd (e.g. inherited from a parent); sets O_NONBLOCK. */
  static fromFd(fd: number): UnixStreamSocket {
    if (!Number.isInteger(fd) || fd < 0) throw argumentError(`fromFd needs an fd, got ${fd}`);
    setNonBlocking(fd, true);
    return new UnixStreamSocket(fd);
  }

  /** @internal adopts an fd accept4() returned (already non-blocking). */
  static adoptAccepted(fd: number): UnixStreamSocket {
    return new UnixStreamSocket(fd);
  }

  get fd(): number {
    if (this.fdValue < 0) throw closedError('UnixStreamSocket');
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue < 0;
  }

  /**
   * sendmsg(2) of `data` with `fds` attached (SCM_RIGHTS, sent as copies: the caller keeps its
   * own). Returns the bytes sent: possibly fewer than data.length when the socket buffer fills
   * (the fds went with the first byte), 0 when nothing was sent (EAGAIN: wait for onWritable).
   * A peer that has gone away is 'native.sendmsg' EPIPE (no SIGPIPE is raised).
   */
  sendMsg(data: Uint8Array, fds?: readonly number[]): number {
    const fd = this.fd;
    if (fds && fds.length > 0) {
      if (data.length === 0) throw argumentError('fds must ride on at least one byte of data (a stream socket drops an empty message)');
      if (fds.length > SCM_MAX_FD) throw argumentError(`at most ${SCM_MAX_FD} fds per message (SCM_MAX_FD), got ${fds.length}`);
      for (const f of fds) if (!Number.isInteger(f) || f < 0) throw argumentError(`fds must be open fds (non-negative integers), got ${f}`);
    }
    const r = binding().sendmsg(fd, data, fds && fds.length > 0 ? fds : null);
    if (r >= 0) return r;
    if (r === -Errno.EAGAIN) return 0;
    throw syscallError(NativeErrorCode.Sendmsg, 'sendmsg', r, 'the peer closed the connection (EPIPE) or an attached fd is not open (EBADF)', { fd, bytes: data.length, fds: fds?.length ?? 0 });
  }

  /**
   * recvmsg(2) of up to `maxBytes` with up to `maxFds` fds (default 8, vhost-user's maximum).
   * undefined: nothing to read now (EAGAIN). null: the peer closed (EOF, or ECONNRESET).
   */
  recvMsg(maxBytes: number, maxFds = 8): ReceivedMessage | null | undefined {
    if (!Number.isInteger(maxBytes) || maxBytes <= 0) throw argumentError(`recvMsg maxBytes must be a positive integer, got ${maxBytes}`);
    const buf = new Uint8Array(maxBytes);
    const r = this.recvInto(buf, maxFds);
    if (r === null || r === undefined) return r;
    return { data: r.bytes === maxBytes ? buf : buf.subarray(0, r.bytes), fds: r.fds, fdsTruncated: r.fdsTruncated };
  }

  /** recvMsg into the caller's buffer (no allocation for the bytes); same undefined/null rules. */
  recvInto(buf: Uint8Array, maxFds = 8): ReceivedInto | null | undefined {
    const fd = this.fd;
    if (buf.length === 0) throw argumentError('recvInto needs a non-empty buffer (0 bytes cannot tell EOF apart)');
    if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > SCM_MAX_FD) throw argumentError(`maxFds must be 0..${SCM_MAX_FD}, got ${maxFds}`);
    const out = this.recvOut;
    const r = binding().recvmsg(fd, buf, maxFds, out);
    if (r < 0) {
      if (r === -Errno.EAGAIN) return undefined;
      if (r === -104 /* ECONNRESET */) return null;
      throw syscallError(NativeErrorCode.Recvmsg, 'recvmsg', r, 'the socket is not connected', { fd });
    }
    const n = out[0];
    const fds: number[] = [];
    for (let i = 0; i < n; i++) fds.push(out[2 + i]);
    if (r === 0 && n === 0) return null;
    return { bytes: r, fds, fdsTruncated: (out[1] & MSG_CTRUNC) !== 0 };
  }

  /**
   * `cb` runs from Node's loop while bytes (or EOF) are waiting — level-triggered: read until
   * recvMsg returns undefined (or null) in it. `undefined` stops reading.
   */
  onReadable(cb: (() => void) | undefined): void {
    this.readable = cb;
    this.updateWatcher();
  }

  /** `cb` runs while the socket can take more bytes (after sendMsg returned less than asked). */
  onWritable(cb: (() => void) | undefined): void {
    this.writable = cb;
    this.updateWatcher();
  }

  /** Whether an active watcher keeps Node's loop alive (default true). */
  ref(): void {
    this.refed = true;
    this.watcher?.ref();
  }

  unref(): void {
    this.refed = false;
    this.watcher?.unref();
  }

  /** Stops the watcher and closes the socket (idempotent); the peer then reads EOF. */
  close(): void {
    if (this.fdValue < 0) return;
    this.watcher?.stop();
    this.watcher = undefined;
    this.readable = undefined;
    this.writable = undefined;
    const fd = this.fdValue;
    this.fdValue = -1;
    closeFd(fd);
  }

  private updateWatcher(): void {
    const events = (this.readable ? PollEvent.Readable : 0) | (this.writable ? PollEvent.Writable : 0);
    if (events === 0) {
      this.watcher?.stop();
      this.watcher = undefined;
      return;
    }
    if (this.watcher) {
      this.watcher.setEvents(events);
      return;
    }
    this.watcher = new FdWatcher(this.fd, (ev) => this.dispatch(ev), { events, ref: this.refed });
  }

  private dispatch(events: number): void {
    // EOF/hang-up is reported as readable by epoll; recvMsg then returns null.
    if (events & (PollEvent.Readable | PollEvent.Disconnect)) this.readable?.();
    if (events & PollEvent.Writable && this.fdValue >= 0) this.writable?.();
  }
}
