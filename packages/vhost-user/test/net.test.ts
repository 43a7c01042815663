import { TraceRecorder } from '@virq/core';
import { VhostUserRequest, counterHandler, encodeVringState, icmpEchoHandler, inetChecksum, bit } from '@virq/vhost-user';
import { RXBUF, frame, guestPostRx, guestSend, makeNetRig as makeRig, type NetRigOptions } from './net-rig.js';

describe.each(['virtio-ring', 'fast'] as const)('vhost-user-net back end, %s data path (model, in-process transport)', (dataPath) => {
  const makeNetRig = (o: NetRigOptions = {}) => makeRig({ dataPath, ...o });
  it('macswap: frames the guest sends come back with MACs swapped, virtio_net_hdr num_buffers = 1', () => {
    const r = makeNetRig();
    expect(r.net.running).toBe(true);
    guestPostRx(r, 8);
    for (let i = 0; i < 4; i++) guestSend(r, i, frame(i), i === 3);
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.txFrames).toBe(4);
    expect(r.net.counters.rxFrames).toBe(4);
    const got: number[] = [];
    for (let t = r.rx.getBuf(); t !== undefined; t = r.rx.getBuf()) got.push(t);
    expect(got).toEqual([0, 1, 2, 3]);
    const b = r.mem.readBytes(RXBUF, 12 + 60);
    expect(b[10]).toBe(1); // num_buffers
    expect(Array.from(b.subarray(12, 24))).toEqual([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x02, 0, 0, 0, 0, 0x01]);
    let done = 0;
    while (r.tx.getBuf() !== undefined) done++;
    expect(done).toBe(4);
  });

  it('a full RX ring drops frames and keeps draining TX (P3 contract rule 5)', () => {
    const r = makeNetRig();
    guestPostRx(r, 2);
    for (let i = 0; i < 10; i++) guestSend(r, i);
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.txFrames).toBe(10);
    expect(r.net.counters.rxFrames).toBe(2);
    expect(r.net.counters.rxDropped).toBe(8);
  });

  it('MRG_RXBUF spreads a frame over several small buffers and says so in num_buffers', () => {
    const r = makeNetRig();
    guestPostRx(r, 8, 32);
    guestSend(r, 0);
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.rxFrames).toBe(1);
    expect(r.mem.read16(RXBUF + 10)).toBe(3); // 12 + 60 bytes over 32-byte buffers
    const lens: number[] = [];
    for (let t = r.rx.getBuf(); t !== undefined; t = r.rx.getBuf()) lens.push(r.rx.lastLen);
    expect(lens).toEqual([32, 32, 8]);
  });

  it('F16 with EVENT_IDX: the first used buffer is signalled, later ones only when used_event falls in [old, new)', () => {
    const r = makeNetRig({ handler: counterHandler() });
    // used_event stays 0 because the guest never re-arms: vring_need_event(0, new, old) is
    // true only for old = 0 (the first batch), and the first signal is unconditional anyway.
    guestSend(r, 0);
    r.ctx.scheduler.runUntilIdle();
    expect(r.interrupts[1]).toBe(1);
    guestSend(r, 1);
    r.ctx.scheduler.runUntilIdle();
    guestSend(r, 2);
    r.ctx.scheduler.runUntilIdle();
    expect(r.interrupts[1]).toBe(1);
    expect(r.net.counters.callsSuppressed).toBe(2);
    // The guest re-arms: used_event = last used it saw (0 reclaimed → 0..2 reclaimed → 3).
    while (r.tx.getBuf() !== undefined);
    r.tx.enableCb();
    guestSend(r, 3);
    r.ctx.scheduler.runUntilIdle();
    expect(r.interrupts[1]).toBe(2);
  });

  it('F16 without EVENT_IDX: VRING_AVAIL_F_NO_INTERRUPT suppresses every call', () => {
    const r = makeNetRig({ handler: counterHandler(), features: bit(32) | bit(15) });
    r.tx.disableCb();
    for (let i = 0; i < 5; i++) guestSend(r, i);
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.txFrames).toBe(5);
    expect(r.interrupts[1]).toBe(0);
    r.tx.enableCb();
    guestSend(r, 5);
    r.ctx.scheduler.runUntilIdle();
    expect(r.interrupts[1]).toBe(1);
  });

  it('traces vhost_vring_call_split and eventfd_write with DPDK names (F16)', () => {
    const r = makeNetRig();
    const rec = new TraceRecorder(r.ctx.trace.events$);
    guestPostRx(r, 1);
    guestSend(r, 0);
    r.ctx.scheduler.runUntilIdle();
    const fns = rec.functions();
    if (dataPath === 'virtio-ring') expect(fns).toContain('fill_vec_buf_split');
    expect(r.net.fast).toBe(dataPath === 'fast');
    const i = fns.indexOf('vhost_vring_call_split');
    expect(i).toBeGreaterThanOrEqual(0);
    expect(fns[i + 1]).toBe('eventfd_write');
  });

  it('GET_VRING_BASE after traffic answers the avail index the back end reached', () => {
    const r = makeNetRig({ handler: counterHandler() });
    for (let i = 0; i < 7; i++) guestSend(r, i);
    r.ctx.scheduler.runUntilIdle();
    expect(r.fe.stop(2)).toEqual([0, 7]);
  });

  it('a started but disabled TX ring is drained without side effects (FACTS §10.5)', () => {
    const r = makeNetRig();
    guestPostRx(r, 4);
    r.link.request({ request: VhostUserRequest.SET_VRING_ENABLE, flags: 1, payload: encodeVringState({ index: 1, num: 0 }), fds: [] });
    guestSend(r, 0);
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.txDropped).toBe(1);
    expect(r.net.counters.rxFrames).toBe(0);
  });

  it('a descriptor outside guest memory breaks the ring (NEEDS_RESET), touches nothing and does not loop', () => {
    const r = makeNetRig();
    guestPostRx(r, 2);
    guestSend(r, 0);
    r.ctx.scheduler.runUntilIdle();
    // Corrupt the next TX descriptor: address far outside the 4 MiB of guest memory.
    const head = r.tx.availIdx;
    guestSend(r, 1, frame(1), false);
    const descTable = 0x20000;
    const slot = r.mem.read16(0x20000 + 16 * 256 + 4 + 2 * (head & 255));
    r.mem.write64(descTable + 16 * slot, 0x7fff_0000_0000);
    r.tx.kick();
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.ringErrors + (r.net.fastQueues()[1]?.broken ? 1 : 0)).toBeGreaterThan(0);
    expect(r.net.counters.txFrames).toBe(1);
  });

  it('F14: SET_VRING_CALL with "no fd" (a queue without an MSI-X vector) still makes the ring ready, and nothing is signalled', () => {
    const r = makeNetRig({ handler: counterHandler() });
    r.link.request({ request: VhostUserRequest.SET_VRING_CALL, flags: 1, payload: new Uint8Array([1, 1, 0, 0, 0, 0, 0, 0]), fds: [] });
    expect(r.net.protocol.vrings[1]!.callFd).toBeNull();
    expect(r.net.running).toBe(true);
    guestSend(r, 0);
    r.ctx.scheduler.runUntilIdle();
    expect(r.net.counters.txFrames).toBe(1);
    expect(r.interrupts[1]).toBe(0);
  });

  it('icmpecho answers ARP requests and ICMP echo requests with valid checksums', () => {
    const h = icmpEchoHandler();
    const r = makeNetRig({ handler: h });
    guestPostRx(r, 4);
    const arp = new Uint8Array(42);
    arp.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
    guestSend(r, 0, arp);
    const icmp = new Uint8Array(14 + 20 + 16);
    icmp.set([0x02, 0, 0, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00]);
    icmp.set([0x45, 0, 0, 36, 0, 1, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1], 14);
    const ipc = inetChecksum(icmp, 14, 34);
    icmp[24] = ipc >> 8;
    icmp[25] = ipc & 0xff;
    icmp.set([8, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8], 34);
    const c = inetChecksum(icmp, 34, 50);
    icmp[36] = c >> 8;
    icmp[37] = c & 0xff;
    guestSend(r, 1, icmp);
    r.ctx.scheduler.runUntilIdle();
    expect(h.arpReplies).toBe(1);
    expect(h.echoReplies).toBe(1);
    const a = r.mem.readBytes(RXBUF + 12, 42);
    expect(a[21]).toBe(2);
    expect(Array.from(a.subarray(28, 32))).toEqual([10, 0, 0, 1]);
    expect(Array.from(a.subarray(38, 42))).toEqual([10, 0, 0, 2]);
    const e = r.mem.readBytes(RXBUF + 2048 + 12, 50);
    expect(e[34]).toBe(0);
    expect(Array.from(e.subarray(26, 30))).toEqual([10, 0, 0, 1]);
    expect(inetChecksum(e, 14, 34)).toBe(0);
    expect(inetChecksum(e, 34, 50)).toBe(0);
  });
});
