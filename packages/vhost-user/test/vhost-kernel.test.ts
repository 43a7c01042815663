import { EventFd, GuestMemory, TraceRecorder, VirqError, createSimContext } from '@virq/core';
import { SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';
import { VhostKernelNet, bit, loopbackHandler } from '@virq/vhost-user';

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
});
