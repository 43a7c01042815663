import { EventFd, GuestMemory, createSimContext } from '@virq/core';
import { SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';
import { InProcessFd, InProcessHost, InProcessVhostUserLink, QEMU_PROTOCOL_FEATURES, VhostUserFrontend, VhostUserNetBackend, bit } from '@virq/vhost-user';

describe.each(['virtio-ring', 'fast'] as const)('multiqueue vhost-user-net (%s data path)', (dataPath) => {
  it('GET_QUEUE_NUM reports the pairs; frames on pair 1 (rings 2/3) come back on pair 1 only', () => {
    const ctx = createSimContext({ seed: 22 });
    const be = ctx.scheduler.actor({ name: 'vhost-user-net', kind: 'backend', cpu: 1 });
    const buffer = new ArrayBuffer(4 << 20);
    const mem = new GuestMemory([{ gpa: 0, size: 4 << 20, buffer }]);
    const net = new VhostUserNetBackend<InProcessFd>(new InProcessHost(ctx.scheduler, { actor: be }), { queuePairs: 2, dataPath, defer: (fn) => void ctx.scheduler.after(0, be, fn) });
    const fe = new VhostUserFrontend<InProcessFd>(new InProcessVhostUserLink(net.protocol), { protocolFeatures: QEMU_PROTOCOL_FEATURES });
    const ev = () => new EventFd(ctx.scheduler);
    fe.init(4, []);
    expect(fe.queueNum).toBe(2);
    fe.setVringEnable(4, true);
    const features = bit(32) | bit(15) | bit(22);
    const lay = [0, 1, 2, 3].map((i) => splitRingLayout(64, 0x10000 + i * 0x4000));
    const kicks = lay.map(() => ev());
    fe.start({
      features,
      regions: [{ region: { guestPhysAddr: 0, memorySize: 4 << 20, userspaceAddr: 0x7f0000000000, mmapOffset: 0 }, fd: InProcessFd.memory(buffer) }],
      rings: lay.map((l, i) => ({ num: 64, base: 0, desc: 0x7f0000000000 + l.desc, avail: 0x7f0000000000 + l.driver, used: 0x7f0000000000 + l.device, kick: InProcessFd.eventfd(kicks[i]!), call: InProcessFd.eventfd(ev()) })),
    });
    expect(net.running).toBe(true);
    const drv = lay.map((l, i) => new SplitVirtqueueDriver<number>(mem, { size: 64, desc: l.desc, driver: l.driver, device: l.device, features, index: i, notify: () => void kicks[i]!.write(1) }));
    for (const rx of [0, 2]) {
      for (let i = 0; i < 4; i++) drv[rx]!.addInbuf(0x100000 + rx * 0x10000 + i * 2048, 2048, i);
      drv[rx]!.kick();
    }
    mem.writeBytes(0x200000 + 12, new Uint8Array(60).fill(9));
    drv[3]!.addOutbuf(0x200000, 72, 1);
    drv[3]!.kick();
    ctx.scheduler.runUntilIdle();
    expect(drv[3]!.getBuf()).toBe(1);
    expect(drv[2]!.getBuf()).toBe(0);
    expect(drv[0]!.getBuf()).toBeUndefined();
    expect(net.counters.rxFrames).toBe(1);
  });
});
