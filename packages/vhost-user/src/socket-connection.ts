import { VirqError } from '@virq/core';
import { closeFd, type UnixStreamSocket } from '@virq/native';
import { VhostUserErrorCode } from './errors.js';
import { decodeHeader, encodeMessage, type VhostUserMessage } from './message.js';
import { VHOST_USER_HDR_SIZE, VHOST_USER_MAX_FDS } from './protocol.js';
import type { VhostUserHandleResult } from './vhost-user-backend.js';

/**
 * One vhost-user connection on a Unix stream socket, back-end side: reads exactly the
 * 12-byte header (with the fds that came with it, as DPDK's read_fd_message does), then
 * exactly `size` payload bytes, hands the message to `handle`, and sends the reply. Framing
 * errors (bad version, oversized payload) close the connection, as DPDK and QEMU do.
 */
export class VhostUserSocketConnection {
  private readonly hdr = new Uint8Array(VHOST_USER_HDR_SIZE);
  private hdrGot = 0;
  private payload: Uint8Array | undefined;
  private payloadGot = 0;
  private request = 0;
  private flags = 0;
  private fds: number[] = [];
  private closedFlag = false;
  private pendingOut: Uint8Array[] = [];
  lastError: VirqError | undefined;

  constructor(
    readonly socket: UnixStreamSocket,
    private readonly handle: (msg: VhostUserMessage<number>) => VhostUserHandleResult<number>,
    private readonly onClose: (conn: VhostUserSocketConnection) => void,
  ) {
    socket.onReadable(() => this.readable());
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private readable(): void {
    for (;;) {
      if (this.closedFlag) return;
      if (this.payload === undefined) {
        const r = this.recv(this.hdr.subarray(this.hdrGot));
        if (r === undefined) return;
        if (r === null) return this.close();
        this.hdrGot += r;
        if (this.hdrGot < VHOST_USER_HDR_SIZE) continue;
        let h;
        try {
          h = decodeHeader(this.hdr);
        } catch (e) {
          this.lastError = e instanceof VirqError ? e : undefined;
          return this.close();
        }
        this.request = h.request;
        this.flags = h.flags;
        this.payload = new Uint8Array(h.size);
        this.payloadGot = 0;
      }
      if (this.payloadGot < this.payload.length) {
        const r = this.recv(this.payload.subarray(this.payloadGot));
        if (r === undefined) return;
        if (r === null) return this.close();
        this.payloadGot += r;
        if (this.payloadGot < this.payload.length) continue;
      }
      const msg: VhostUserMessage<number> = { request: this.request, flags: this.flags, payload: this.payload, fds: this.fds };
      this.payload = undefined;
      this.hdrGot = 0;
      this.fds = [];
      const res = this.handle(msg);
      if (res.error !== undefined) this.lastError = res.error;
      if (res.reply !== undefined) this.send(encodeMessage(res.reply.request, res.reply.flags, res.reply.payload), res.reply.fds);
      if (res.close) return this.close();
    }
  }

  /** recvmsg into `into`; fds are collected for the current message. */
  private recv(into: Uint8Array): number | null | undefined {
    let r;
    try {
      r = this.socket.recvInto(into, VHOST_USER_MAX_FDS);
    } catch {
      return null;
    }
    if (r === null || r === undefined) return r;
    for (const fd of r.fds) this.fds.push(fd);
    if (this.fds.length > VHOST_USER_MAX_FDS || r.fdsTruncated) {
      // More fds than any message may carry: the message is refused by the fd-count check.
      this.lastError = new VirqError(VhostUserErrorCode.FdCount, `more than ${VHOST_USER_MAX_FDS} fds arrived with one message`, { errno: 'EINVAL' });
    }
    return r.bytes;
  }

  private send(bytes: Uint8Array, fds: number[]): void {
    if (this.pendingOut.length > 0) {
      this.pendingOut.push(bytes);
      return;
    }
    let sent = 0;
    try {
      sent = this.socket.sendMsg(bytes, fds);
    } catch {
      return this.close();
    }
    if (sent < bytes.length) {
      this.pendingOut.push(bytes.subarray(sent));
      this.socket.onWritable(() => this.flushOut());
    }
  }

  private flushOut(): void {
    while (this.pendingOut.length > 0) {
      const b = this.pendingOut[0]!;
      let n = 0;
      try {
        n = this.socket.sendMsg(b);
      } catch {
        return this.close();
      }
      if (n < b.length) {
        this.pendingOut[0] = b.subarray(n);
        return;
      }
      this.pendingOut.shift();
    }
    this.socket.onWritable(undefined);
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    for (const fd of this.fds) {
      try {
        closeFd(fd);
      } catch {
        // ignore
      }
    }
    this.fds = [];
    this.socket.close();
    this.onClose(this);
  }
}
