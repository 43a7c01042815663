import { VirqError } from '@virq/core';
import { UnixSocketServer, UnixStreamSocket } from '@virq/native';
import { VhostUserErrorCode } from './errors.js';
import { requestName } from './protocol.js';
import { NativeVhostUserHost } from './native-host.js';
import { packetHandler, type PacketHandler, type PacketMode } from './packet-handler.js';
import { VhostUserSocketConnection } from './socket-connection.js';
import { VhostUserNetBackend } from './vhost-user-net.js';

export interface VhostUserNetServerOptions {
  socketPath: string;
  /** Connect to a front end that listens (QEMU server=on) instead of listening. */
  client?: boolean;
  /** Client mode: retry connecting (every second) and reconnect after a disconnect. */
  reconnect?: boolean;
  mode?: PacketMode;
  handler?: PacketHandler;
  /** Busy-poll the TX rings (VRING_USED_F_NO_NOTIFY set); default: event driven, idle when quiet. */
  poll?: boolean;
  queuePairs?: number;
  /** Log every message received, numbered per connection (`  N VHOST_USER_<NAME>`). */
  logMessages?: boolean;
  log?: (line: string) => void;
}

/**
 * `virq vhost-user-net`: a vhost-user-net back end on a real Unix socket. Server mode (the
 * default) creates the socket and serves one front end at a time, going back to listening
 * when it disconnects (QEMU's `reconnect=1` comes back); client mode connects to a listening
 * front end and, with `reconnect`, keeps trying.
 */
export class VhostUserNetServer {
  readonly host = new NativeVhostUserHost();
  readonly net: VhostUserNetBackend<number>;
  private server: UnixSocketServer | undefined;
  private conn: VhostUserSocketConnection | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  connections = 0;
  private wasRunning = false;
  readonly log: (line: string) => void;

  constructor(readonly options: VhostUserNetServerOptions) {
    this.log = options.log ?? (() => undefined);
    this.net = new VhostUserNetBackend<number>(this.host, {
      handler: options.handler ?? packetHandler(options.mode ?? 'macswap'),
      poll: options.poll ?? false,
      queuePairs: options.queuePairs ?? 1,
      dataPath: 'fast',
      defer: (fn) => void setImmediate(fn),
    });
  }

  start(): void {
    if (this.options.client) this.connect();
    else {
      this.server = UnixSocketServer.listen(this.options.socketPath);
      this.server.onConnection((s) => this.accept(s));
      this.log(`vhost-user-net: listening on ${this.options.socketPath} (mode ${this.net.handler.name}, ${this.net.poll ? 'poll' : 'event'} mode)`);
    }
  }

  private connect(): void {
    if (this.stopped) return;
    try {
      const s = UnixStreamSocket.connect(this.options.socketPath);
      this.log(`vhost-user-net: connected to ${this.options.socketPath}`);
      this.accept(s);
    } catch (e) {
      if (!this.options.reconnect) throw new VirqError(VhostUserErrorCode.Closed, `cannot connect to ${this.options.socketPath}: ${e instanceof Error ? e.message : String(e)}; start the front end (QEMU server=on) first or pass --reconnect`, { errno: 'ENOTCONN', cause: e });
      this.retry = setTimeout(() => this.connect(), 1000);
    }
  }

  private accept(s: UnixStreamSocket): void {
    if (this.conn !== undefined && !this.conn.closed) {
      this.log('vhost-user-net: refusing a second front end (one device per socket)');
      s.close();
      return;
    }
    this.connections++;
    let n = 0;
    if (this.options.logMessages) this.log('== connection accepted');
    this.conn = new VhostUserSocketConnection(
      s,
      (m) => {
        const r = this.net.handleMessage(m);
        if (this.options.logMessages) this.log(`${String(++n).padStart(3)} ${requestName(m.request)}${r.error ? `  (rejected: ${r.error.code}: ${r.error.message})` : ''}`);
        if (this.options.logMessages && r.error === undefined && !this.wasRunning && this.net.running) this.log('== device ready (virtio_is_ready → new_device)');
        this.wasRunning = this.net.running;
        return r;
      },
      () => this.closed(),
    );
  }

  private closed(): void {
    const err = this.conn?.lastError;
    this.log(`vhost-user-net: front end disconnected${err ? ` (last error: ${err.code}: ${err.message})` : ''}`);
    this.net.disconnect();
    this.wasRunning = false;
    this.conn = undefined;
    if (this.options.client && this.options.reconnect && !this.stopped) this.retry = setTimeout(() => this.connect(), 1000);
  }

  stop(): void {
    this.stopped = true;
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.conn?.close();
    this.server?.close();
    this.net.disconnect();
  }
}
