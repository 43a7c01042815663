import { EventFd, GuestMemory, TraceRecorder, VirqError, createSimContext } from '@virq/core';
import { SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';
import { TUN_RING_FRAMES, VHOST_NET_PKT_WEIGHT, VhostKernelNet, bit, loopbackHandler } from '@virq/vhost-user';

function rig() {
  const ctx = createSimContext({ seed: 11 });
  const memory = GuestMemory.ofSize(1 << 20);
  const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 0 });
  const net = new VhostKernelNet(ctx, { memory, ownerPid: 4242, handler: loopbackHandler() });
  return { ctx, memory, vcpu, net };
}

const errnoOf = (fn: () => void): string | undefined => {
  try {
    fn();
  } catch (e) {
    if (VirqError.is(e)) return (e.details?.['errno'] as string | undefined) ?? e.errno;
    throw e;
  }
  return undefined;
};

describe('kernel vhost-net model (drivers/vhost, FACTS §11.1)', () => {
  it('enforces ownership and argument rules with the kernel errnos', () => {
    const { net } = rig();
    expect(errnoOf(() => net.setVringNum(0, 256))).toBe('EPERM');
    net.setOwner();
    expect(errnoOf(() => net.setOwner())).toBe('EBUSY');
    expect(errnoOf(() => net.setVringNum(0, 0))).toBe('EINVAL');
    expect(errnoOf(() => net.setVringNum(0, 3))).toBe('EINVAL');
    expect(errnoOf(() => net.setVringNum(2, 256))).toBe('ENOBUFS');
    expect(errnoOf(() => net.setMemTable([{ guestPhysAddr: 0, memorySize: 2 << 20, userspaceAddr: 0x7f0000000000 }]))).toBe('EFAULT');
    net.setMemTable([{ guestPhysAddr: 0, memorySize: 1 << 20, userspaceAddr: 0x7f0000000000 }]);
    net.setVringNum(1, 256);
    expect(errnoOf(() => net.setVringAddr(1, { desc: 0x1000, avail: 0x2000, used: 0x3000 }))).toBe('EINVAL');
    expect(errnoOf(() => net.setBackend(1, true))).toBe('EFAULT');
  });

  it('a guest kick wakes the vhost worker: vhost_poll_wakeup in the kicker, handle_tx_kick on vhost-<pid>, vhost_signal → call eventfd', () => {
    const { ctx, memory, vcpu, net } = rig();
    const rec = new TraceRecorder(ctx.trace.events$);
    const features = bit(32) | bit(29);
    const lay = [splitRingLayout(256, 0x10000), splitRingLayout(256, 0x20000)];
    const kick = [new EventFd(ctx.scheduler), new EventFd(ctx.scheduler)];
    const call = [new EventFd(ctx.scheduler), new EventFd(ctx.scheduler)];
    net.setOwner();
    net.setFeatures(features);
    net.setMemTable([{ guestPhysAddr: 0, memorySize: 1 << 20, userspaceAddr: 0x7f0000000000 }]);
    lay.forEach((l, i) => {
      net.setVringNum(i, 256);
      net.setVringBase(i, 0);
      net.setVringAddr(i, { desc: 0x7f0000000000 + l.desc, avail: 0x7f0000000000 + l.driver, used: 0x7f0000000000 + l.device });
      net.setVringKick(i, kick[i]!);
      net.setVringCall(i, call[i]!);
      net.setBackend(i, true);
    });
    const rx = new SplitVirtqueueDriver<number>(memory, { size: 256, desc: lay[0]!.desc, driver: lay[0]!.driver, device: lay[0]!.device, features });
    const tx = new SplitVirtqueueDriver<number>(memory, { size: 256, desc: lay[1]!.desc, driver: lay[1]!.driver, device: lay[1]!.device, features, notify: () => void kick[1]!.write(1) });
    rx.addInbuf(0x80000, 2048, 0);
    memory.writeBytes(0x90000 + 12, new Uint8Array(60).fill(7));
    tx.addOutbuf(0x90000, 72, 0);
    ctx.scheduler.at(1000, vcpu, () => void tx.kick());
    ctx.scheduler.runUntilIdle();
    const ev = rec.events;
    const wake = ev.find((e) => e.fn === 'vhost_poll_wakeup')!;
    const handle = ev.find((e) => e.fn === 'handle_tx_kick')!;
    expect(wake.actor.name).toBe('CPU 0/KVM');
    expect(handle.actor.name).toBe('vhost-4242');
    expect(handle.time - wake.time).toBe(ctx.costs.ns.threadWakeup);
    const fns = rec.functions();
    expect(fns.indexOf('vhost_work_queue')).toBeGreaterThan(fns.indexOf('vhost_poll_wakeup'));
    expect(fns).toContain('vhost_get_vq_desc');
    expect(fns).toContain('vhost_signal');
    expect(call[1]!.count).toBe(1n);
    expect(call[0]!.count).toBe(1n);
    expect(net.counters.txFrames).toBe(1);
    expect(net.counters.rxFrames).toBe(1);
    expect(memory.read8(0x80000 + 12)).toBe(7);
    expect(net.getVringBase(1)).toBe(1);
  });

  describe('frames from the outside on the tap (handle_rx)', () => {
    /** A vhost-net with both rings attached and a guest rx driver with `bufs` 2 KiB buffers. */
    function attached(bufs: number) {
      const r = rig();
      const { ctx, memory, net } = r;
      const features = bit(32) | bit(29);
      const lay = [splitRingLayout(256, 0x10000), splitRingLayout(256, 0x20000)];
      const kick = [new EventFd(ctx.scheduler), new EventFd(ctx.scheduler)];
      const call = [new EventFd(ctx.scheduler), new EventFd(ctx.scheduler)];
      net.setOwner();
      net.setFeatures(features);
      net.setMemTable([{ guestPhysAddr: 0, memorySize: 1 << 20, userspaceAddr: 0x7f0000000000 }]);
      lay.forEach((l, i) => {
        net.setVringNum(i, 256);
        net.setVringBase(i, 0);
        net.setVringAddr(i, { desc: 0x7f0000000000 + l.desc, avail: 0x7f0000000000 + l.driver, used: 0x7f0000000000 + l.device });
        net.setVringKick(i, kick[i]!);
        net.setVringCall(i, call[i]!);
        net.setBackend(i, true);
      });
      const rx = new SplitVirtqueueDriver<number>(memory, { size: 256, desc: lay[0]!.desc, driver: lay[0]!.driver, device: lay[0]!.device, features, notify: () => void kick[0]!.write(1) });
      for (let i = 0; i < bufs; i++) rx.addInbuf(0x40000 + i * 2048, 2048, i);
      const nic = ctx.scheduler.actor({ name: 'irq/nic0', kind: 'host-cpu', cpu: 0 });
      return { ...r, rx, call, nic };
    }
    const frame = (n: number): Uint8Array => new Uint8Array(64).fill(n & 0xff);

    it('tun_net_xmit queues the frame and wakes the rx socket poll; handle_rx_net on the worker fills a buffer and signals once', () => {
      const { ctx, memory, net, rx, call, nic } = attached(8);
      const rec = new TraceRecorder(ctx.trace.events$);
      ctx.scheduler.at(1000, nic, () => {
        net.tapXmit(frame(1));
        net.tapXmit(frame(2));
      });
      ctx.scheduler.runUntilIdle();
      const fns = rec.functions();
      expect(fns.indexOf('tun_net_xmit')).toBeLessThan(fns.indexOf('vhost_poll_wakeup'));
      expect(rec.events.find((e) => e.fn === 'vhost_poll_wakeup')!.caller).toBe('__wake_up_common'); // the socket's wait queue, in the sender's context
      expect(rec.events.find((e) => e.fn === 'vhost_poll_wakeup')!.actor.name).toBe('irq/nic0');
      const handle = rec.events.find((e) => e.fn === 'handle_rx_net')!;
      expect(handle.actor.name).toBe('vhost-4242');
      expect(handle.time).toBe(1000 + ctx.costs.ns.threadWakeup); // one wake-up for both frames
      expect(fns.filter((f) => f === 'vhost_work_queue')).toHaveLength(1);
      expect(net.counters.rxFrames).toBe(2);
      expect(call[0]!.count).toBe(1n); // one signal for the batch
      expect(rx.getBuf()).toBe(0);
      expect(rx.getBuf()).toBe(1);
      expect(memory.read8(0x40000 + 12)).toBe(1);
      expect(memory.read8(0x40000 + 2048 + 12)).toBe(2);
      expect(memory.read8(0x40000 + 10)).toBe(1); // num_buffers
    });

    it('out of rx buffers: frames wait on the tap; the guest\'s rx kick (handle_rx_kick) drains them', () => {
      const { ctx, net, rx, nic } = attached(1);
      ctx.scheduler.at(1000, nic, () => {
        for (let i = 0; i < 3; i++) net.tapXmit(frame(i));
      });
      ctx.scheduler.runUntilIdle();
      expect(net.counters.rxFrames).toBe(1);
      expect(net.tapQueued).toBe(2);
      const rec = new TraceRecorder(ctx.trace.events$);
      const vcpu = ctx.scheduler.actor({ name: 'CPU 1/KVM', kind: 'vcpu', cpu: 1 });
      ctx.scheduler.at(ctx.scheduler.now + 1000, vcpu, () => {
        rx.addInbuf(0x60000, 2048, 10);
        rx.addInbuf(0x60800, 2048, 11);
        rx.kick(); // vhost enabled rx notifications when it ran dry
      });
      ctx.scheduler.runUntilIdle();
      expect(rec.functions()).toContain('handle_rx_kick');
      expect(net.counters.rxFrames).toBe(3);
      expect(net.tapQueued).toBe(0);
    });

    it('the tun ring holds TUN_RING_FRAMES; beyond that tun_net_xmit drops; handle_rx takes VHOST_NET_PKT_WEIGHT per run', () => {
      const { ctx, net, nic } = attached(256);
      const rec = new TraceRecorder(ctx.trace.events$);
      ctx.scheduler.at(1000, nic, () => {
        for (let i = 0; i < TUN_RING_FRAMES + 5; i++) net.tapXmit(frame(i));
      });
      ctx.scheduler.runUntilIdle();
      expect(net.counters.tapDropped).toBe(5);
      expect(net.counters.tapFrames).toBe(TUN_RING_FRAMES);
      expect(net.counters.rxFrames).toBe(256); // the ring's 256 buffers; the rest wait for more
      // the first run stops at the weight and requeues itself; the second finds the ring empty
      expect(VHOST_NET_PKT_WEIGHT).toBe(256);
      expect(rec.events.filter((e) => e.fn === 'handle_rx_net')).toHaveLength(2);
    });

    it('a buffer too small for header + frame: the frame is discarded and the buffer stays for the next one', () => {
      const { ctx, memory, net } = rig();
      const features = bit(32);
      const l = splitRingLayout(256, 0x10000);
      const t = splitRingLayout(256, 0x20000);
      net.setOwner();
      net.setFeatures(features);
      net.setMemTable([{ guestPhysAddr: 0, memorySize: 1 << 20, userspaceAddr: 0x7f0000000000 }]);
      [l, t].forEach((x, i) => {
        net.setVringNum(i, 256);
        net.setVringAddr(i, { desc: 0x7f0000000000 + x.desc, avail: 0x7f0000000000 + x.driver, used: 0x7f0000000000 + x.device });
        net.setVringCall(i, new EventFd(ctx.scheduler));
        net.setBackend(i, true);
      });
      const rx = new SplitVirtqueueDriver<number>(memory, { size: 256, desc: l.desc, driver: l.driver, device: l.device, features });
      rx.addInbuf(0x40000, 40, 0); // 40 bytes < 12 + 64
      const cpu = ctx.scheduler.actor({ name: 'irq/nic0', kind: 'host-cpu', cpu: 0 });
      ctx.scheduler.at(1000, cpu, () => void net.tapXmit(frame(9)));
      ctx.scheduler.runUntilIdle();
      expect(net.counters.rxDropped).toBe(1);
      expect(net.counters.rxFrames).toBe(0);
      expect(rx.getBuf()).toBeUndefined(); // not used: returned to the ring
      expect(net.getVringBase(0)).toBe(0);
    });
  });
});

