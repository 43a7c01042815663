import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  NativeEventFd,
  UnixSeqSocket,
  UnixSocketServer,
  UnixStreamSocket,
  closeFd,
  fdInfo,
  fdSize,
  memfdCreate,
  mmapFd,
} from '@virq/native';
import { describeNative, loopTurns, until } from './native-support.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

const tmpDirs: string[] = [];
function tmpSock(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virq-native-'));
  tmpDirs.push(dir);
  return path.join(dir, name);
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

// Facts checked: unix(7) SCM_RIGHTS duplicates descriptors into the receiver (new numbers, same
// open file description); MSG_CMSG_CLOEXEC sets FD_CLOEXEC on them; a stream recvmsg that
// picks up fds stops at the end of the bytes they came with; EOF reads 0; writing to a closed
// peer is EPIPE (MSG_NOSIGNAL: no SIGPIPE); fds beyond the control buffer set MSG_CTRUNC.
describeNative('Unix stream sockets with SCM_RIGHTS', () => {
  it('passes an eventfd and a memfd between two sockets of one process', () => {
    const [a, b] = UnixStreamSocket.pair();
    const efd = NativeEventFd.create();
    const memfd = memfdCreate('shared', 4096);
    try {
      expect(a.sendMsg(enc('header'), [efd.fd, memfd])).toBe(6);
      const m = b.recvMsg(64);
      expect(m).toBeTruthy();
      if (!m) return;
      expect(dec(m.data)).toBe('header');
      expect(m.fds).toHaveLength(2);
      expect(m.fdsTruncated).toBe(false);
      const [rEfd, rMem] = m.fds;
      expect(rEfd).not.toBe(efd.fd);
      expect(fdInfo(rEfd).closeOnExec).toBe(true);
      expect(fdInfo(rMem).closeOnExec).toBe(true);
      // Same eventfd counter behind both numbers.
      const remote = NativeEventFd.fromFd(rEfd);
      remote.write(9);
      expect(efd.read()).toBe(9n);
      remote.close();
      // Same memory behind both memfds.
      expect(fdSize(rMem).size).toBe(4096);
      const x = mmapFd(memfd, 4096);
      const y = mmapFd(rMem, 4096);
      new Uint8Array(x.buffer)[100] = 0xab;
      expect(new Uint8Array(y.buffer)[100]).toBe(0xab);
      x.unmap();
      y.unmap();
      closeFd(rMem);
      expect(b.recvMsg(64)).toBeUndefined(); // EAGAIN: nothing more
    } finally {
      a.close();
      b.close();
      efd.close();
      closeFd(memfd);
    }
  });

  it('carries 8 fds (vhost-user maximum) in order, and truncates beyond maxFds', () => {
    const [a, b] = UnixStreamSocket.pair();
    const efds = Array.from({ length: 8 }, (_, i) => NativeEventFd.create({ initval: i + 1 }));
    try {
      a.sendMsg(enc('eight'), efds.map((e) => e.fd));
      const m = b.recvMsg(16, 8);
      expect(m?.fds).toHaveLength(8);
      const values = m?.fds.map((fd) => {
        const e = NativeEventFd.fromFd(fd);
        const v = e.read();
        e.close();
        return v;
      });
      expect(values).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);

      a.sendMsg(enc('too many'), efds.slice(0, 3).map((e) => e.fd));
      const t = b.recvMsg(16, 1);
      expect(t?.fds).toHaveLength(1);
      expect(t?.fdsTruncated).toBe(true);
      for (const fd of t?.fds ?? []) closeFd(fd);

      a.sendMsg(enc('none wanted'), [efds[0].fd]);
      const z = b.recvMsg(16, 0);
      expect(z?.fds).toEqual([]);
      expect(z?.fdsTruncated).toBe(true); // the kernel had an fd for us; it was closed, not leaked
    } finally {
      a.close();
      b.close();
      for (const e of efds) e.close();
    }
  });

  it('stops a recvmsg at the end of the bytes that carried fds', () => {
    const [a, b] = UnixStreamSocket.pair();
    const e = NativeEventFd.create();
    try {
      a.sendMsg(enc('HDR1'), [e.fd]);
      a.sendMsg(enc('payload'));
      a.sendMsg(enc('HDR2'), [e.fd]);
      const first = b.recvMsg(100);
      expect(first && dec(first.data)).toBe('HDR1');
      expect(first?.fds).toHaveLength(1);
      const second = b.recvMsg(100);
      // bytes without fds glue onto the next fd-carrying bytes, which then end the read
      expect(second && dec(second.data)).toBe('payloadHDR2');
      expect(second?.fds).toHaveLength(1);
      for (const fd of [...(first?.fds ?? []), ...(second?.fds ?? [])]) closeFd(fd);
    } finally {
      a.close();
      b.close();
      e.close();
    }
  });

  it('reports EOF as null (also through onReadable) and EPIPE on send after the peer left', async () => {
    const [a, b] = UnixStreamSocket.pair();
    const got: (string | null)[] = [];
    b.onReadable(() => {
      for (;;) {
        const m = b.recvMsg(32, 0);
        if (m === undefined) return;
        got.push(m === null ? null : dec(m.data));
        if (m === null) {
          b.onReadable(undefined);
          return;
        }
      }
    });
    a.sendMsg(enc('last words'));
    a.close();
    await until(() => got.includes(null), 'EOF through onReadable');
    expect(got).toEqual(['last words', null]);
    expect(() => b.sendMsg(enc('anyone?'))).toThrow(expect.objectContaining({ code: 'native.sendmsg', errno: undefined, details: expect.objectContaining({ errnoName: 'EPIPE' }) }));
    b.close();
    expect(() => b.recvMsg(1)).toThrow(expect.objectContaining({ code: 'native.closed' }));
  });

  it('returns 0 when the socket buffer is full and calls onWritable once the peer drains', async () => {
    const [a, b] = UnixStreamSocket.pair();
    try {
      const chunk = new Uint8Array(64 * 1024).fill(7);
      let sent = 0;
      for (let i = 0; i < 1000; i++) {
        const n = a.sendMsg(chunk);
        sent += n;
        if (n === 0) break;
      }
      expect(a.sendMsg(chunk)).toBe(0);
      let writable = 0;
      a.onWritable(() => {
        writable++;
        a.onWritable(undefined);
      });
      await loopTurns(3);
      expect(writable).toBe(0);
      let drained = 0;
      const buf = new Uint8Array(256 * 1024);
      for (;;) {
        const r = b.recvInto(buf, 0);
        if (!r) break;
        drained += r.bytes;
      }
      expect(drained).toBe(sent);
      await until(() => writable === 1, 'onWritable after draining');
    } finally {
      a.close();
      b.close();
    }
  });

  it('listens, accepts through onConnection, and unlinks on close', async () => {
    const p = tmpSock('vu.sock');
    const server = UnixSocketServer.listen(p);
    const accepted: UnixStreamSocket[] = [];
    server.onConnection((s) => accepted.push(s));
    expect(server.accept()).toBeUndefined(); // nobody yet: EAGAIN
    const c1 = UnixSeqSocket.connect(p);
    const c2 = UnixStreamSocket.connect(p);
    await until(() => accepted.length === 2, 'two accepted connections');
    accepted[1].sendMsg(enc('to c?'));
    const fromServer = c1.recvMsg(16) ?? c2.recvMsg(16);
    expect(fromServer && dec(fromServer.data)).toBe('to c?');
    expect(fdInfo(accepted[0].fd)).toMatchObject({ nonBlocking: true, closeOnExec: true });
    // A second server on a live path is refused.
    expect(() => UnixSocketServer.listen(p)).toThrow(expect.objectContaining({ code: 'native.listen', details: expect.objectContaining({ errnoName: 'EADDRINUSE' }) }));
    for (const s of [c1, c2, ...accepted]) s.close();
    server.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('replaces a stale socket file and reports connect errors by errno', () => {
    const p = tmpSock('stale.sock');
    const s1 = UnixSocketServer.listen(p);
    s1.close({ unlink: false }); // leaves a socket file nobody listens on
    expect(fs.existsSync(p)).toBe(true);
    expect(() => UnixStreamSocket.connect(p)).toThrow(expect.objectContaining({ code: 'native.connect', details: expect.objectContaining({ errnoName: 'ECONNREFUSED' }) }));
    const s2 = UnixSocketServer.listen(p);
    const c = UnixStreamSocket.connect(p);
    c.close();
    s2.close();
    expect(() => UnixStreamSocket.connect(p)).toThrow(expect.objectContaining({ code: 'native.connect', errno: 'ENOENT' }));
    expect(() => UnixStreamSocket.connect('/tmp/' + 'x'.repeat(120))).toThrow(expect.objectContaining({ code: 'native.argument' }));
  });

  it('passes fds to and from a child process', async () => {
    const p = tmpSock('child.sock');
    const server = UnixSocketServer.listen(p);
    const memfd = memfdCreate('to-child', 4096);
    const mem = mmapFd(memfd, 4096);
    new TextEncoder().encodeInto('hello from parent', new Uint8Array(mem.buffer));
    const kick = NativeEventFd.create();
    const kicks: bigint[] = [];
    kick.onReadable(() => kicks.push(kick.read()));
    const replies: string[] = [];
    let childFd: NativeEventFd | undefined;
    let eof = false;
    server.onConnection((s) => {
      s.sendMsg(enc('take these'), [memfd, kick.fd]);
      s.onReadable(() => {
        for (;;) {
          const m = s.recvMsg(64);
          if (m === undefined) return;
          if (m === null) {
            eof = true;
            s.close();
            return;
          }
          replies.push(dec(m.data));
          if (m.fds.length === 1) {
            childFd = NativeEventFd.fromFd(m.fds[0]);
            childFd.write(5); // wakes the child's own watcher
          }
        }
      });
    });
    const child = spawn(process.execPath, ['--import', path.join(repoRoot, 'tools/ts-register.mjs'), path.join(here, 'fd-peer-child.ts'), p], {
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(() => eof, 'the child to finish', 20000);
      expect(await exit).toBe(0);
      expect(kicks).toEqual([1n]);
      expect(replies).toEqual(['ok', 'got 5']);
      const text = new TextDecoder().decode(new Uint8Array(mem.buffer, 1024, 100)).replace(/\0+$/, '');
      expect(text).toBe(`child ${child.pid} read "hello from parent" and "take these"`);
    } catch (e) {
      throw new Error(`${String(e)}\nchild stderr:\n${stderr}`);
    } finally {
      child.kill();
      childFd?.close();
      kick.close();
      mem.unmap();
      closeFd(memfd);
      server.close();
    }
  }, 30000);
});
