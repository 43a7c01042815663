import { TraceRecorder, VirqError } from '@virq/core';
import {
  QEMU_PROTOCOL_FEATURES,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VhostUserErrorCode,
  VhostUserFlag,
  VhostUserFrontend,
  VhostUserRequest,
  bit,
  decodeHeader,
  decodeMessage,
  decodeVringState,
  encodeMessage,
  encodeU64,
  encodeVringAddr,
  encodeVringState,
  requestName,
  InProcessFd,
} from '@virq/vhost-user';
import { GUEST_UVA, MEM_SIZE, capturedSequence, makeRig, ringGpas, type Rig } from './helpers.js';

function qemuStart(rig: Rig, fe: VhostUserFrontend<InProcessFd>, calls: InProcessFd[], kicks: InProcessFd[]): void {
  fe.start({
    features: bit(32) | bit(15) | bit(29),
    regions: [{ region: { guestPhysAddr: 0, memorySize: MEM_SIZE, userspaceAddr: GUEST_UVA, mmapOffset: 0 }, fd: rig.memFd }],
    rings: [0, 1].map((i) => {
      const g = ringGpas(i);
      return { num: 256, base: 0, desc: GUEST_UVA + g.desc, avail: GUEST_UVA + g.avail, used: GUEST_UVA + g.used, kick: kicks[i]!, call: calls[i]! };
    }),
  });
}

describe('header codec (FACTS §10.1)', () => {
  it('encodes request, flags, size little endian in 12 bytes', () => {
    const b = encodeMessage(VhostUserRequest.SET_VRING_NUM, VhostUserFlag.VERSION, encodeVringState({ index: 1, num: 256 }));
    expect(Array.from(b.subarray(0, 12))).toEqual([8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]);
    expect(decodeVringState(decodeMessage(b).payload)).toEqual({ index: 1, num: 256 });
  });
  it('rejects version ≠ 1, reserved flag bits, oversized and truncated messages with typed errors', () => {
    const bad = (bytes: Uint8Array, code: string): void => {
      let err: unknown;
      try {
        decodeMessage(bytes);
      } catch (e) {
        err = e;
      }
      expect(VirqError.is(err, code)).toBe(true);
    };
    bad(encodeMessage(1, 0), VhostUserErrorCode.BadVersion);
    bad(encodeMessage(1, 2), VhostUserErrorCode.BadVersion);
    bad(encodeMessage(1, 0x11), VhostUserErrorCode.BadVersion);
    bad(new Uint8Array(11), VhostUserErrorCode.Truncated);
    const big = encodeMessage(1, 1);
    new DataView(big.buffer).setUint32(8, 1 << 20, true);
    expect(() => decodeHeader(big)).toThrow(/exceeds/);
    bad(encodeMessage(1, 1, new Uint8Array(8)).subarray(0, 15), VhostUserErrorCode.Truncated);
  });
  it('names requests as DPDK logs them', () => {
    expect(requestName(13)).toBe('VHOST_USER_SET_VRING_CALL');
    expect(requestName(21)).toBe('VHOST_USER_SET_BACKEND_REQ_FD');
    expect(requestName(99)).toBe('UNKNOWN(99)');
  });
});

describe('QEMU 7.2 front end against the back end (qemu-vhost-user-sequence.txt)', () => {
  function run(): { rig: Rig; names: string[]; readyAt: number; bases: number[]; beforeStopNames: number } {
    const rig = makeRig();
    const fe = new VhostUserFrontend<InProcessFd>(rig.link, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
    let readyAt = -1;
    const origNew = rig.backend.device.newDevice;
    expect(origNew).toBeDefined();
    const masked = [rig.eventfd('masked0'), rig.eventfd('masked1')];
    const errs = [rig.eventfd('err0'), rig.eventfd('err1')];
    fe.init(2, masked, errs, InProcessFd.socket('slave-req'));
    // virtio-net peer_attach on realize, machine reset and the driver's resets during probe.
    for (let k = 0; k < 5; k++) fe.setVringEnable(2, true);
    const kicks = [rig.eventfd('kick0'), rig.eventfd('kick1')];
    const calls = [rig.eventfd('call0'), rig.eventfd('call1')];
    qemuStart(rig, fe, calls, kicks);
    if (rig.events.newDevice === 1) readyAt = rig.link.sent.length;
    const beforeStopNames = rig.link.sent.length;
    const bases = fe.stop(2);
    fe.setVringEnable(2, true);
    return { rig, names: rig.link.sent.map((r) => requestName(r).replace('VHOST_USER_', '')), readyAt, bases, beforeStopNames };
  }

  it('sends exactly the captured order, message for message', () => {
    const { names } = run();
    const captured = capturedSequence('qemu-vhost-user-sequence.txt');
    expect(captured.length).toBe(42);
    expect(names).toEqual(captured);
  });

  it('becomes ready (virtio_is_ready → new_device) only with the last SET_STATUS(DRIVER_OK), message 37 of the capture', () => {
    const { rig, readyAt, names } = run();
    expect(readyAt).toBeGreaterThan(0);
    expect(names[readyAt - 1]).toBe('SET_STATUS');
    expect(rig.events.newDevice).toBe(1);
    expect(rig.events.destroyDevice).toBe(1);
  });

  it('negotiates the intersection of protocol features and acks SET_MEM_TABLE and SET_STATUS (REPLY_ACK)', () => {
    const { rig } = run();
    expect(rig.backend.rejected).toBe(0);
    expect(rig.backend.protocolFeatures & bit(3)).toBe(bit(3));
    expect(rig.backend.hasFeature(VHOST_USER_F_PROTOCOL_FEATURES)).toBe(true);
  });

  it('GET_VRING_BASE stops the ring and answers its next avail index', () => {
    const { rig, bases } = run();
    expect(bases).toEqual([0, 0]);
    expect(rig.backend.vrings[0]!.started).toBe(false);
    expect(rig.backend.running).toBe(false);
  });
});

describe('F15: the DPDK-style back end as a trace', () => {
  it('each message runs its handler under vhost_user_msg_handler; virtio_is_ready → new_device follow the last needed message', () => {
    const rig = makeRig();
    const rec = new TraceRecorder(rig.ctx.trace.events$);
    const fe = new VhostUserFrontend<InProcessFd>(rig.link, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
    fe.init(2, [rig.eventfd('m0'), rig.eventfd('m1')]);
    fe.setVringEnable(2, true);
    qemuStart(rig, fe, [rig.eventfd('c0'), rig.eventfd('c1')], [rig.eventfd('k0'), rig.eventfd('k1')]);
    const fns = rec.functions();
    expect(rec.events.filter((e) => e.fn.startsWith('vhost_user_')).every((e) => e.caller === 'vhost_user_msg_handler')).toBe(true);
    const ready = fns.indexOf('virtio_is_ready');
    expect(fns.slice(ready - 4, ready + 2)).toEqual(['vhost_user_set_vring_kick', 'vhost_user_set_vring_call', 'vhost_user_get_status', 'vhost_user_set_status', 'virtio_is_ready', 'new_device']);
    expect(fns.filter((f) => f === 'new_device').length).toBe(1);
  });
});

describe('back-end rules', () => {
  function owned(): Rig {
    const rig = makeRig();
    const fe = new VhostUserFrontend<InProcessFd>(rig.link);
    fe.init(2, [rig.eventfd('c0'), rig.eventfd('c1')]);
    return rig;
  }
  const send = (rig: Rig, req: number, payload: Uint8Array, fds: InProcessFd[] = [], flags = 1) => rig.backend.handle({ request: req, flags, payload, fds });

  it('SET_VRING_NUM rejects 0, non powers of two and > 32768', () => {
    const rig = owned();
    for (const num of [0, 3, 100, 65536]) {
      const r = send(rig, VhostUserRequest.SET_VRING_NUM, encodeVringState({ index: 0, num }));
      expect(r.error?.code).toBe(VhostUserErrorCode.RingSize);
    }
    expect(send(rig, VhostUserRequest.SET_VRING_NUM, encodeVringState({ index: 0, num: 1024 })).error).toBeUndefined();
  });

  it('rejects a ring index ≥ the number of rings (CVE-2020-10723 class) without allocating it', () => {
    const rig = owned();
    const r = send(rig, VhostUserRequest.SET_VRING_NUM, encodeVringState({ index: 200, num: 256 }));
    expect(r.error?.code).toBe(VhostUserErrorCode.RingIndex);
    expect(rig.backend.vrings.length).toBeLessThanOrEqual(4);
  });

  it('closes the fds of a message with the wrong fd count (SET_VRING_CALL with 2 fds, kick with "no fd" but an fd)', () => {
    const rig = owned();
    const a = rig.eventfd('a');
    const b = rig.eventfd('b');
    const r = send(rig, VhostUserRequest.SET_VRING_CALL, encodeU64(1), [a, b]);
    expect(r.error?.code).toBe(VhostUserErrorCode.FdCount);
    expect(a.closed && b.closed).toBe(true);
    const c = rig.eventfd('c');
    expect(send(rig, VhostUserRequest.SET_VRING_KICK, encodeU64(0x100), [c]).error?.code).toBe(VhostUserErrorCode.FdCount);
    expect(c.closed).toBe(true);
  });

  it('answers NEED_REPLY with a non-zero u64 when a message is rejected and REPLY_ACK is negotiated', () => {
    const rig = owned();
    const r = send(rig, VhostUserRequest.SET_VRING_NUM, encodeVringState({ index: 0, num: 3 }), [], VhostUserFlag.VERSION | VhostUserFlag.NEED_REPLY);
    expect(r.reply?.flags).toBe(5);
    expect(new DataView(r.reply!.payload.buffer, r.reply!.payload.byteOffset).getBigUint64(0, true)).toBe(1n);
  });

  it('refuses SET_VRING_ADDR that translates nowhere or only partly (CVE-2020-10725 class)', () => {
    const rig = owned();
    send(rig, VhostUserRequest.SET_FEATURES, encodeU64(bit(32) | bit(30) | bit(29)));
    send(rig, VhostUserRequest.SET_MEM_TABLE, new Uint8Array(0));
    const memTable = new Uint8Array(40);
    const d = new DataView(memTable.buffer);
    d.setUint32(0, 1, true);
    d.setBigUint64(8, 0n, true);
    d.setBigUint64(16, BigInt(MEM_SIZE), true);
    d.setBigUint64(24, BigInt(GUEST_UVA), true);
    expect(send(rig, VhostUserRequest.SET_MEM_TABLE, memTable, [rig.memFd]).error).toBeUndefined();
    send(rig, VhostUserRequest.SET_VRING_NUM, encodeVringState({ index: 0, num: 256 }));
    const nowhere = send(rig, VhostUserRequest.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 0, desc: 0x1000, used: 0x2000, avail: 0x3000, log: 0 }));
    expect(nowhere.error?.code).toBe(VhostUserErrorCode.Address);
    const partly = send(rig, VhostUserRequest.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 0, desc: GUEST_UVA + MEM_SIZE - 0x800, used: GUEST_UVA + 0x2000, avail: GUEST_UVA + 0x3000, log: 0 }));
    expect(partly.error?.code).toBe(VhostUserErrorCode.Address);
    const ok = send(rig, VhostUserRequest.SET_VRING_ADDR, encodeVringAddr({ index: 0, flags: 0, desc: GUEST_UVA + 0x10000, used: GUEST_UVA + 0x12000, avail: GUEST_UVA + 0x11000, log: 0 }));
    expect(ok.error).toBeUndefined();
    expect(rig.backend.vrings[0]!.descGpa).toBe(0x10000);
  });

  it('rejects memory tables with overflowing, overlapping, empty or unmapped regions (CVE-2020-10722 class)', () => {
    const rig = owned();
    const table = (regions: [bigint, bigint, bigint, bigint][]): Uint8Array => {
      const p = new Uint8Array(8 + 32 * regions.length);
      const d = new DataView(p.buffer);
      d.setUint32(0, regions.length, true);
      regions.forEach((r, i) => r.forEach((v, j) => d.setBigUint64(8 + 32 * i + 8 * j, v, true)));
      return p;
    };
    const M = BigInt(MEM_SIZE);
    const cases: [[bigint, bigint, bigint, bigint][], string][] = [
      [[[0xffff_ffff_ffff_f000n, 0x2000n, 0n, 0n]], VhostUserErrorCode.Overflow],
      [[[0n, M, 0xffff_ffff_ffff_ff00n, 0n]], VhostUserErrorCode.Overflow],
      [[[0n, M, 0n, 0xffff_ffff_ffff_ff00n]], VhostUserErrorCode.Overflow],
      [[[0n, 0n, 0n, 0n]], VhostUserErrorCode.MemoryTable],
      [[[0n, M / 2n, 0x1000000n, 0n], [0x1000n, M / 2n, 0x9000000n, 0n]], VhostUserErrorCode.MemoryTable],
      [[[0n, M, 0n, 0x1000n]], VhostUserErrorCode.Map],
      [[[0n, M * 2n, 0n, 0n]], VhostUserErrorCode.Map],
    ];
    for (const [regions, code] of cases) {
      const fds = regions.map(() => rig.memFd);
      const r = send(rig, VhostUserRequest.SET_MEM_TABLE, table(regions), fds);
      expect(r.error?.code).toBe(code);
    }
    expect(rig.backend.mem).toBeUndefined();
  });

  it('GET_QUEUE_NUM needs MQ negotiated; GET_FEATURES offers bit 30', () => {
    const rig = makeRig();
    const r = send(rig, VhostUserRequest.GET_QUEUE_NUM, new Uint8Array(0));
    expect(r.error?.code).toBe(VhostUserErrorCode.NotNegotiated);
    expect(r.close).toBe(true);
    const f = send(rig, VhostUserRequest.GET_FEATURES, new Uint8Array(0));
    expect(new DataView(f.reply!.payload.buffer, f.reply!.payload.byteOffset).getBigUint64(0, true) & bit(30)).toBe(bit(30));
  });

  it('without bit 30 in SET_FEATURES every ring is enabled at once (FACTS §10.5)', () => {
    const rig = owned();
    send(rig, VhostUserRequest.SET_FEATURES, encodeU64(bit(32)));
    expect(rig.backend.vrings.slice(0, 2).every((v) => v.enabled)).toBe(true);
  });

  it('RESET_DEVICE stops a running device (destroy_device), forgets the rings and the acked features', () => {
    const rig = makeRig();
    const fe = new VhostUserFrontend<InProcessFd>(rig.link, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
    fe.init(2, [rig.eventfd('m0'), rig.eventfd('m1')]);
    fe.setVringEnable(2, true);
    qemuStart(rig, fe, [rig.eventfd('c0'), rig.eventfd('c1')], [rig.eventfd('k0'), rig.eventfd('k1')]);
    expect(rig.backend.running).toBe(true);
    const kick = rig.backend.vrings[0]!.kickFd as InProcessFd;
    expect(send(rig, VhostUserRequest.RESET_DEVICE, new Uint8Array(0)).error).toBeUndefined();
    expect(rig.events.destroyDevice).toBe(1);
    expect(rig.backend.running).toBe(false);
    expect(rig.backend.vrings.length).toBe(0);
    expect(rig.backend.features).toBe(0n);
    expect(kick.closed).toBe(true);
  });

  it('GET_CONFIG answers the device config space when CONFIG is negotiated, and refuses reads past its end', () => {
    const cfg = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0]);
    const rig = makeRig({ protocolFeatures: bit(9), config: cfg });
    send(rig, VhostUserRequest.SET_PROTOCOL_FEATURES, encodeU64(bit(9)));
    const req = new Uint8Array(12 + 6);
    new DataView(req.buffer).setUint32(4, 6, true);
    const r = send(rig, VhostUserRequest.GET_CONFIG, req);
    expect(Array.from(r.reply!.payload.subarray(12))).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    new DataView(req.buffer).setUint32(0, 4, true);
    expect(send(rig, VhostUserRequest.GET_CONFIG, req).error?.code).toBe(VhostUserErrorCode.BadSize);
  });

  it('accepts SET_VRING_CALL at any time, closing the previous fd (F15 vhost_user_set_vring_call)', () => {
    const rig = owned();
    const first = rig.backend.vrings[0]!.callFd as InProcessFd;
    const next = rig.eventfd('n');
    expect(send(rig, VhostUserRequest.SET_VRING_CALL, encodeU64(0), [next]).error).toBeUndefined();
    expect(first.closed).toBe(true);
    expect(rig.backend.vrings[0]!.callFd).toBe(next);
  });
});
