import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UnixSocketServer, closeFd, fdInfo, type UnixStreamSocket } from '@virq/native';
import { describeNative, until } from './native-support.js';

// A real QEMU 7.2 as vhost-user front end talking to a @virq/native socket: QEMU connects at
// start-up and sends, in this order (../shared/realvm/qemu-vhost-user-sequence.txt, and
// docs/interop/vhost-user.rst for the header: u32 request, u32 flags (version 1, 0x4 = reply),
// u32 size): GET_FEATURES(1), GET_PROTOCOL_FEATURES(15), SET_PROTOCOL_FEATURES(16),
// GET_QUEUE_NUM(17, with MQ), SET_SLAVE_REQ_FD(21, one socket fd), SET_OWNER(3),
// GET_FEATURES(1), then SET_VRING_CALL(13)/SET_VRING_ERR(14) per vring, each with an eventfd.
// This checks the socket layer only — the protocol itself is @virq/vhost-user's.

const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim();

const REQ = { GET_FEATURES: 1, SET_OWNER: 3, SET_VRING_CALL: 13, SET_VRING_ERR: 14, GET_PROTOCOL_FEATURES: 15, SET_PROTOCOL_FEATURES: 16, GET_QUEUE_NUM: 17, SET_VRING_ENABLE: 18, SET_SLAVE_REQ_FD: 21 } as const;
const FLAG_VERSION = 0x1;
const FLAG_REPLY = 0x4;
const VHOST_USER_F_PROTOCOL_FEATURES = 30n;
const VIRTIO_F_VERSION_1 = 32n;
const PROTOCOL_F_MQ = 0n;
const PROTOCOL_F_SLAVE_REQ = 5n;

interface Msg {
  request: number;
  flags: number;
  payload: Uint8Array;
  fds: number[];
}

/** Reads whole vhost-user messages: exactly the 12-byte header, then exactly `size` bytes. */
class MessageReader {
  private hdr = new Uint8Array(12);
  private body = new Uint8Array(0);
  private have = 0;
  private inBody = false;
  private fds: number[] = [];
  eof = false;

  constructor(private readonly sock: UnixStreamSocket) {}

  next(): Msg | undefined {
    for (;;) {
      const buf = this.inBody ? this.body : this.hdr;
      if (this.inBody && this.body.length === 0) return this.finish();
      const r = this.sock.recvInto(buf.subarray(this.have), 8);
      if (r === undefined) return undefined;
      if (r === null) {
        this.eof = true;
        return undefined;
      }
      this.fds.push(...r.fds);
      this.have += r.bytes;
      if (this.have < buf.length) continue;
      if (!this.inBody) {
        const size = new DataView(this.hdr.buffer).getUint32(8, true);
        this.body = new Uint8Array(size);
        this.inBody = true;
        this.have = 0;
        if (size === 0) return this.finish();
        continue;
      }
      return this.finish();
    }
  }

  private finish(): Msg {
    const dv = new DataView(this.hdr.buffer);
    const m = { request: dv.getUint32(0, true), flags: dv.getUint32(4, true), payload: this.body, fds: this.fds };
    this.hdr = new Uint8Array(12);
    this.body = new Uint8Array(0);
    this.have = 0;
    this.inBody = false;
    this.fds = [];
    return m;
  }
}

function replyU64(sock: UnixStreamSocket, request: number, value: bigint): void {
  const b = new Uint8Array(20);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, request, true);
  dv.setUint32(4, FLAG_VERSION | FLAG_REPLY, true);
  dv.setUint32(8, 8, true);
  dv.setBigUint64(12, value, true);
  expect(sock.sendMsg(b)).toBe(20);
}

function fdKind(fd: number): string {
  return fs.readlinkSync(`/proc/self/fd/${fd}`);
}

describeNative('interop with a real QEMU vhost-user front end', () => {
  if (!qemu) {
    it('is not run here: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86, or run ../shared/realvm/run-guest.sh once)', () => {
      console.warn('@virq/native: QEMU interop test not run: qemu-system-x86_64 not found');
      expect(qemu).toBe('');
    });
    return;
  }

  it('receives QEMU 7.2 start-up messages with their fds (slave socket, vring call/err eventfds)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virq-qemu-'));
    const sockPath = path.join(dir, 'vu.sock');
    const server = UnixSocketServer.listen(sockPath);
    const seen: Msg[] = [];
    let conn: UnixStreamSocket | undefined;
    let reader: MessageReader | undefined;
    server.onConnection((s) => {
      conn = s;
      reader = new MessageReader(s);
      s.onReadable(() => {
        for (;;) {
          const m = reader?.next();
          if (!m) {
            if (reader?.eof) s.onReadable(undefined);
            return;
          }
          seen.push(m);
          if (m.request === REQ.GET_FEATURES) replyU64(s, m.request, (1n << VHOST_USER_F_PROTOCOL_FEATURES) | (1n << VIRTIO_F_VERSION_1));
          if (m.request === REQ.GET_PROTOCOL_FEATURES) replyU64(s, m.request, (1n << PROTOCOL_F_MQ) | (1n << PROTOCOL_F_SLAVE_REQ));
          if (m.request === REQ.GET_QUEUE_NUM) replyU64(s, m.request, 1n);
        }
      });
    });
    let child: ChildProcess | undefined;
    let stderr = '';
    try {
      child = spawn(qemu, [
        '-nodefaults', '-no-user-config', '-S', '-display', 'none', '-monitor', 'none', '-serial', 'none',
        '-accel', 'tcg', '-machine', 'q35,memory-backend=mem', '-m', '64M',
        '-object', 'memory-backend-memfd,id=mem,size=64M,share=on',
        '-chardev', `socket,id=c0,path=${sockPath}`,
        '-netdev', 'vhost-user,id=n0,chardev=c0',
        '-device', 'virtio-net-pci,netdev=n0,vectors=0',
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      await until(() => seen.filter((m) => m.request === REQ.SET_VRING_CALL).length >= 2, 'SET_VRING_CALL for both vrings', 20000);
      const order = seen.map((m) => m.request);
      expect(order.slice(0, 7)).toEqual([
        REQ.GET_FEATURES, REQ.GET_PROTOCOL_FEATURES, REQ.SET_PROTOCOL_FEATURES, REQ.GET_QUEUE_NUM,
        REQ.SET_SLAVE_REQ_FD, REQ.SET_OWNER, REQ.GET_FEATURES,
      ]);
      for (const m of seen) expect(m.flags & 0x3).toBe(FLAG_VERSION);
      const slave = seen.find((m) => m.request === REQ.SET_SLAVE_REQ_FD);
      expect(slave?.fds).toHaveLength(1);
      expect(fdKind(slave?.fds[0] ?? -1)).toMatch(/^socket:\[\d+\]$/);
      const calls = seen.filter((m) => m.request === REQ.SET_VRING_CALL);
      for (const [i, c] of calls.slice(0, 2).entries()) {
        // payload: u64 vring index (bit 8 would mean "no fd")
        expect(new DataView(c.payload.buffer).getBigUint64(0, true)).toBe(BigInt(i));
        expect(c.fds).toHaveLength(1);
        expect(fdKind(c.fds[0])).toBe('anon_inode:[eventfd]');
        expect(fdInfo(c.fds[0]).closeOnExec).toBe(true);
      }
      for (const m of seen.filter((x) => x.fds.length === 0)) {
        expect([REQ.GET_FEATURES, REQ.GET_PROTOCOL_FEATURES, REQ.SET_PROTOCOL_FEATURES, REQ.GET_QUEUE_NUM, REQ.SET_OWNER, REQ.SET_VRING_ENABLE]).toContain(m.request);
      }
      // QEMU going away is EOF on our side.
      child.kill('SIGTERM');
      await until(() => reader?.eof === true, 'EOF after QEMU exits', 10000);
    } catch (e) {
      throw new Error(`${String(e)}\nQEMU stderr:\n${stderr}`);
    } finally {
      child?.kill('SIGKILL');
      for (const m of seen) for (const fd of m.fds) closeFd(fd);
      conn?.close();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 40000);
});
