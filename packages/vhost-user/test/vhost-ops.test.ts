import { EventFd, GuestMemory, TraceRecorder, createSimContext } from '@virq/core';
import { SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';
import { VhostKernelNetOps, VhostUserNetOps, bit, type VhostOpsLike } from './vhost-ops-like.js';

/**
 * The VhostOps seam of @virq/virtio-pci (QEMU's VhostOps) with our two back ends behind it,
 * driven in vhost_dev_start's order (SET_OWNER, features, mem table, per ring NUM/BASE/ADDR/
 * KICK/CALL). A guest kick from a vCPU reaches the back end's thread one wake-up later, and
 * its used-buffer notification comes back on the call eventfd (then irqfd, F9).
 */
describe.each(['user', 'kernel'] as const)('VhostOps seam backed by vhost-%s', (kind) => {
  it('serves a guest TX frame: kick → back-end thread after threadWakeup → used + call eventfd', () => {
    const ctx = createSimContext({ seed: 14 });
    const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 0 });
    const mem = GuestMemory.ofSize(1 << 20);
    const ops: VhostOpsLike = kind === 'user' ? new VhostUserNetOps({ ctx }) : new VhostKernelNetOps({ ctx, memory: mem, ownerPid: 777 });
    const rec = new TraceRecorder(ctx.trace.events$);
    const features = bit(32) | bit(29);
    const lay = [splitRingLayout(256, 0x10000), splitRingLayout(256, 0x20000)];
    const kick = [new EventFd(ctx.scheduler), new EventFd(ctx.scheduler)];
    const call = [new EventFd(ctx.scheduler), new EventFd(ctx.scheduler)];
    ops.setOwner();
    ops.setFeatures(ops.getFeatures() & features);
    ops.setMemTable(mem);
    lay.forEach((l, i) => {
      ops.setVringNum(i, 256);
      ops.setVringBase(i, 0);
      ops.setVringAddr({ index: i, desc: l.desc, avail: l.driver, used: l.device, flags: 0 });
      ops.setVringKick(i, kick[i]);
      ops.setVringCall(i, call[i]);
      ops.setNetBackend?.(i, true);
      ops.setVringEnable?.(i, true);
    });
    const tx = new SplitVirtqueueDriver<number>(mem, { size: 256, desc: lay[1]!.desc, driver: lay[1]!.driver, device: lay[1]!.device, features, notify: () => void kick[1]!.write(1) });
    mem.writeBytes(0x90000 + 12, new Uint8Array(60).fill(1));
    ctx.scheduler.at(5000, vcpu, () => {
      tx.addOutbuf(0x90000, 72, 7);
      tx.kick();
    });
    ctx.scheduler.runUntilIdle();
    expect(tx.getBuf()).toBe(7);
    expect(call[1]!.count).toBe(1n);
    const first = rec.events.find((e) => e.actor.name !== 'CPU 0/KVM' && e.time >= 5000)!;
    expect(first.time).toBe(5000 + ctx.costs.ns.threadWakeup);
    expect(first.actor.name).toBe(kind === 'user' ? 'vhost-user-net' : 'vhost-777');
    expect(ops.getVringBase(1)).toBe(1);
  });
});
