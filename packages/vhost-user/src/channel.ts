import { VirqError } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import { decodeMessage, encodeMessage, type VhostUserMessage } from './message.js';
import type { VhostUserBackend } from './vhost-user-backend.js';

/**
 * A front end's synchronous view of its connection: send one message, get the reply (if the
 * back end sent one). The in-process link is synchronous; a socket front end would wrap the
 * same messages in promises.
 */
export interface VhostUserChannel<F> {
  request(msg: VhostUserMessage<F>): VhostUserMessage<F> | undefined;
  readonly closed: boolean;
}

/**
 * The in-process transport: every message is encoded to the exact bytes a socket would carry,
 * decoded again (so the codec is exercised end to end) and handed to the back end together
 * with its fds (objects instead of SCM_RIGHTS). `sent` logs the requests in order.
 */
export class InProcessVhostUserLink<F> implements VhostUserChannel<F> {
  closed = false;
  readonly sent: number[] = [];

  constructor(readonly backend: VhostUserBackend<F>) {}

  request(msg: VhostUserMessage<F>): VhostUserMessage<F> | undefined {
    if (this.closed) throw new VirqError(VhostUserErrorCode.Closed, 'the vhost-user connection is closed; reconnect to send more messages', { errno: 'ENOTCONN' });
    this.sent.push(msg.request);
    const wire = decodeMessage(encodeMessage(msg.request, msg.flags, msg.payload), msg.fds);
    const r = this.backend.handle(wire);
    if (r.close) this.close();
    if (r.reply === undefined) return undefined;
    return decodeMessage(encodeMessage(r.reply.request, r.reply.flags, r.reply.payload), r.reply.fds);
  }

  /** Raw bytes path (for fuzzing): decode errors close the connection as a socket back end does. */
  requestBytes(bytes: Uint8Array, fds: F[]): VhostUserMessage<F> | undefined {
    const m = decodeMessage(bytes, fds);
    return this.request(m);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.backend.disconnect();
  }
}
