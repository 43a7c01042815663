import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GuestMemory } from '@virq/core';
import { NativeEventFd, UnixSocketServer, UnixStreamSocket, memfdCreate, mmapFd, nativeSupport } from '@virq/native';
import { SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';
import { BlockingSocketChannel, QEMU_PROTOCOL_FEATURES, VhostUserFrontend, bit } from '@virq/vhost-user';

/**
 * The real transport end to end: the CLI (bin/vhost-user-net.mjs) in a child process serves a
 * Unix socket; this test is the front end (QEMU's message order), with guest RAM in a memfd
 * passed by SCM_RIGHTS, real kick/call eventfds, and the virtio-ring driver side as the guest.
 */
const support = nativeSupport();
const run = support.ok ? describe : describe.skip;
if (!support.ok) process.stdout.write(`real-socket tests skipped: ${support.reason}\n`);

const BIN = path.join(__dirname, '..', 'bin', 'vhost-user-net.mjs');
const MEM = 2 << 20;
const UVA = 0x7f0000000000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

async function startBackend(sock: string, extra: string[] = [], waitForSocket = true): Promise<{ child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [BIN, '--socket', sock, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  if (!waitForSocket) return { child, out: () => out };
  for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(50);
  if (!existsSync(sock)) throw new Error(`backend did not create ${sock}: ${out}`);
  return { child, out: () => out };
}

async function stopBackend(child: ChildProcess): Promise<number | null> {
  const done = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGINT');
  return done;
}

run('real Unix socket transport (@virq/native) against the CLI back end', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vu-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([['event', []], ['poll', ['--poll']]] as const)('serves frames over memfd rings with real eventfds (%s mode), then prints its counters on SIGINT', async (_name, extra) => {
    const sock = path.join(dir, `vu-${_name}.sock`);
    const { child, out } = await startBackend(sock, [...extra]);
    const memfd = memfdCreate('guest-ram', MEM);
    const map = mmapFd(memfd, MEM);
    const mem = new GuestMemory([{ gpa: 0, size: MEM, buffer: map.buffer }]);
    const s = UnixStreamSocket.connect(sock);
    const ch = new BlockingSocketChannel(s);
    const fe = new VhostUserFrontend<number>(ch, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
    const kicks = [NativeEventFd.create(), NativeEventFd.create()];
    const calls = [NativeEventFd.create(), NativeEventFd.create()];
    const features = bit(32) | bit(15) | bit(29);
    const lay = [splitRingLayout(256, 0x10000), splitRingLayout(256, 0x20000)];
    fe.init(2, [calls[0]!.fd, calls[1]!.fd]);
    fe.setVringEnable(2, true);
    fe.start({
      features,
      regions: [{ region: { guestPhysAddr: 0, memorySize: MEM, userspaceAddr: UVA, mmapOffset: 0 }, fd: memfd }],
      rings: lay.map((l, i) => ({ num: 256, base: 0, desc: UVA + l.desc, avail: UVA + l.driver, used: UVA + l.device, kick: kicks[i]!.fd, call: calls[i]!.fd })),
    });
    const mk = (i: number) => new SplitVirtqueueDriver<number>(mem, { size: 256, desc: lay[i]!.desc, driver: lay[i]!.driver, device: lay[i]!.device, features, index: i, notify: () => void kicks[i]!.write(1) });
    const rx = mk(0);
    const tx = mk(1);
    for (let i = 0; i < 64; i++) rx.addInbuf(0x100000 + i * 2048, 2048, i);
    rx.kick();
    const N = 40;
    for (let i = 0; i < N; i++) {
      const at = 0x180000 + i * 128;
      mem.fill(at, 12, 0);
      mem.writeBytes(at + 12, new Uint8Array([2, 0, 0, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5, i]));
      tx.addOutbuf(at, 12 + 60, i);
      if (i % 8 === 7) tx.kick();
    }
    let got = 0;
    for (let t = 0; t < 200 && got < N; t++) {
      await sleep(10);
      while (rx.getBuf() !== undefined) got++;
    }
    expect(got).toBe(N);
    // macswap: the source MAC of what came back is the guest's destination MAC.
    expect(Array.from(mem.readBytes(0x100000 + 12 + 6, 6))).toEqual([2, 0, 0, 0, 0, 1]);
    // The guest's RX used buffers were signalled on the real call eventfd (F16: first call).
    expect(calls[0]!.tryRead()).toBeDefined();
    expect(fe.stop(2)).toEqual([N, N]);
    ch.close();
    expect(await stopBackend(child)).toBe(0);
    expect(out()).toMatch(new RegExp(`tx_frames=${N} .*rx_frames=${N} `));
    map.unmap();
    for (const e of [...kicks, ...calls]) e.close();
  }, 30_000);

  it('rejects a memory table whose fd is smaller than the region and keeps serving the next connection', async () => {
    const sock = path.join(dir, 'vu-bad.sock');
    const { child, out } = await startBackend(sock);
    const memfd = memfdCreate('small', 4096);
    const s = UnixStreamSocket.connect(sock);
    const ch = new BlockingSocketChannel(s);
    const fe = new VhostUserFrontend<number>(ch, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
    fe.init(2, []);
    expect(() => fe.start({ features: bit(32), regions: [{ region: { guestPhysAddr: 0, memorySize: MEM, userspaceAddr: UVA, mmapOffset: 0 }, fd: memfd }], rings: [] })).toThrow(/REPLY_ACK 1/);
    ch.close();
    await sleep(100);
    const again = new VhostUserFrontend<number>(new BlockingSocketChannel(UnixStreamSocket.connect(sock)));
    again.init(2, []);
    expect(again.backendFeatures & bit(30)).toBe(bit(30));
    (again.channel as BlockingSocketChannel).close();
    expect(await stopBackend(child)).toBe(0);
    expect(out()).toMatch(/connections=2 /);
  }, 30_000);

  it('client mode with --reconnect: connects to a listening front end and comes back after a disconnect', async () => {
    const sock = path.join(dir, 'vu-client.sock');
    const server = UnixSocketServer.listen(sock);
    const { child, out } = await startBackend(sock, ['--client', '--reconnect'], false);
    const accept = async (): Promise<UnixStreamSocket> => {
      for (let i = 0; i < 100; i++) {
        const s = server.accept();
        if (s !== undefined) return s;
        await sleep(50);
      }
      throw new Error(`the back end did not connect: ${out()}`);
    };
    for (let round = 0; round < 2; round++) {
      const ch = new BlockingSocketChannel(await accept());
      const fe = new VhostUserFrontend<number>(ch, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
      fe.init(2, []);
      expect(fe.backendFeatures & bit(32)).toBe(bit(32));
      ch.close();
    }
    server.close();
    expect(await stopBackend(child)).toBe(0);
    expect(out()).toMatch(/connections=2 /);
  }, 30_000);
});
