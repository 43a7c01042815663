import { VirqError } from '@virq/core';
import type { UnixStreamSocket } from '@virq/native';
import type { VhostUserChannel } from './channel.js';
import { VhostUserErrorCode } from './errors.js';
import { decodeHeader, encodeMessage, type VhostUserMessage } from './message.js';
import { VHOST_USER_HDR_SIZE, VhostUserFlag } from './protocol.js';
import { requestSpec } from './request.js';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * A front end's channel over a real Unix socket that blocks the calling thread while it
 * waits for a reply (short sleeps, bounded by `timeoutMs`). For tools and tests that drive a
 * back end running in another process, with the synchronous VhostUserFrontend.
 */
export class BlockingSocketChannel implements VhostUserChannel<number> {
  closed = false;

  constructor(
    readonly socket: UnixStreamSocket,
    private readonly timeoutMs = 5000,
  ) {}

  request(msg: VhostUserMessage<number>): VhostUserMessage<number> | undefined {
    if (this.closed) throw new VirqError(VhostUserErrorCode.Closed, 'the vhost-user socket is closed', { errno: 'ENOTCONN' });
    const bytes = encodeMessage(msg.request, msg.flags, msg.payload);
    let off = 0;
    while (off < bytes.length) {
      const n = this.socket.sendMsg(off === 0 ? bytes : bytes.subarray(off), off === 0 ? msg.fds : []);
      off += n;
      if (n === 0) this.sleep();
    }
    const spec = requestSpec(msg.request)?.[1];
    const wants = (msg.flags & VhostUserFlag.NEED_REPLY) !== 0 || (spec !== undefined && spec.reply !== 'none' && spec.reply !== 'ack') || spec?.reply === 'ack';
    if (!wants) return undefined;
    const hdr = this.readExactly(VHOST_USER_HDR_SIZE);
    const fds = hdr.fds;
    const h = decodeHeader(hdr.data);
    const body = h.size > 0 ? this.readExactly(h.size) : { data: new Uint8Array(0), fds: [] };
    return { request: h.request, flags: h.flags, payload: body.data, fds: fds.concat(body.fds) };
  }

  private sleep(): void {
    Atomics.wait(sleeper, 0, 0, 1);
  }

  private readExactly(n: number): { data: Uint8Array; fds: number[] } {
    const data = new Uint8Array(n);
    const fds: number[] = [];
    let got = 0;
    const deadline = Date.now() + this.timeoutMs;
    while (got < n) {
      const r = this.socket.recvInto(data.subarray(got), 8);
      if (r === null) {
        this.closed = true;
        throw new VirqError(VhostUserErrorCode.Closed, 'the back end closed the connection while a reply was due', { errno: 'ENOTCONN' });
      }
      if (r === undefined) {
        if (Date.now() > deadline) throw new VirqError(VhostUserErrorCode.BadReply, `no reply within ${this.timeoutMs} ms`, { errno: 'EIO' });
        this.sleep();
        continue;
      }
      got += r.bytes;
      fds.push(...r.fds);
    }
    return { data, fds };
  }

  close(): void {
    this.closed = true;
    this.socket.close();
  }
}
