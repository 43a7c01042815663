import { GuestMemory } from '@virq/core';
import { DescriptorChain, PackedVirtqueueDevice, SplitVirtqueueDevice, SplitVirtqueueDriver, packedRingLayout, splitRingLayout } from '@virq/virtio-ring';
import { buf, packedPair, splitPair } from './ring-fixture.js';

describe('snapshot / restore and vhost GET/SET_VRING_BASE', () => {
  test('split: a back end stopped with GET_VRING_BASE and restarted with SET_VRING_BASE continues the stream', () => {
    const p = splitPair({ size: 16, features: { eventIdx: true } });
    for (let i = 0; i < 5; i++) p.driver.addOutbuf(buf(i), 64, i);
    for (let i = 0; i < 5; i++) p.device.push(p.device.pop()!, 0);
    const base = p.device.getVringBase();
    expect(base).toBe(5); // last_avail_idx
    // A new back end (another process) takes over the same guest memory.
    const next = new SplitVirtqueueDevice(p.mem, { ...p.layout, features: { eventIdx: true } });
    next.setVringBase(base);
    for (let i = 5; i < 9; i++) p.driver.addOutbuf(buf(i), 64, i);
    const ids: number[] = [];
    for (let c = next.pop(); c !== null; c = next.pop()) {
      ids.push(c.id);
      next.push(c, 0);
    }
    expect(ids).toHaveLength(4);
    expect(next.notify()).toBe(true); // signalled_used_valid was cleared: first completion notifies
    const got: number[] = [];
    for (let t = p.driver.getBuf(); t !== undefined; t = p.driver.getBuf()) got.push(t);
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test('split: device snapshot survives JSON and restores exactly', () => {
    const p = splitPair({ size: 8, features: { eventIdx: true } });
    for (let i = 0; i < 3; i++) p.driver.addOutbuf(buf(i), 64, i);
    const c = p.device.pop()!;
    p.device.push(c, 0);
    p.device.notify();
    p.device.pop();
    const snap = JSON.parse(JSON.stringify(p.device.snapshot()));
    expect(snap.state).toEqual({ lastAvailIdx: 2, shadowAvailIdx: 3, usedIdx: 1, signalledUsed: 1, signalledUsedValid: true, inuse: 1, notification: true, status: 'ok' });
    const other = new SplitVirtqueueDevice(p.mem, { ...p.layout, features: { eventIdx: true } });
    other.restore(snap);
    expect(other.snapshot()).toEqual(p.device.snapshot());
    expect(other.pop()?.id).toBe(p.device.pop()?.id);
    expect(() => other.restore({ type: 'virtio-ring.packed-device', version: 1, state: snap.state })).toThrow(/split-device/);
  });

  test('split: driver snapshot restores the free list and in-flight heads (tokens by head)', () => {
    const mem = GuestMemory.ofSize(0x100000);
    const layout = splitRingLayout(8, 0x10000);
    const a = new SplitVirtqueueDriver<string>(mem, layout);
    a.addOutbuf(buf(0), 64, 'x');
    a.addOutbuf(buf(1), 64, 'y');
    const snap = JSON.parse(JSON.stringify(a.snapshot()));
    const b = new SplitVirtqueueDriver<string>(mem, layout);
    b.restore(snap, new Map([[0, 'x'], [1, 'y']]));
    expect(b.numFree).toBe(6);
    const dev = new SplitVirtqueueDevice(mem, layout);
    const chain = new DescriptorChain();
    dev.push(dev.pop(chain)!, 0);
    dev.push(dev.pop(chain)!, 0);
    expect([b.getBuf(), b.getBuf()]).toEqual(['x', 'y']);
    expect(b.numFree).toBe(8);
  });

  test('packed: GET_VRING_BASE carries last_avail_idx | wrap << 15 and restarts after a wrap', () => {
    const p = packedPair({ size: 4, features: { eventIdx: true } });
    for (let i = 0; i < 6; i++) {
      p.driver.addOutbuf(buf(i), 64, i);
      p.device.push(p.device.pop()!, 0);
      p.driver.getBuf();
    }
    const base = p.device.getVringBase();
    expect(base).toBe(2); // slot 2, wrap counter now 0 after one full lap
    const layout = packedRingLayout(4, p.layout.desc);
    const next = new PackedVirtqueueDevice(p.mem, { ...layout, features: { packed: true, eventIdx: true } });
    next.setVringBase(base);
    p.driver.addOutbuf(buf(9), 64, 9);
    next.push(next.pop()!, 0);
    expect(p.driver.getBuf()).toBe(9);
    const snap = JSON.parse(JSON.stringify(next.snapshot()));
    expect(snap.state).toMatchObject({ lastAvailIdx: 3, availWrap: false, usedIdx: 3, usedWrap: false });
  });
});
