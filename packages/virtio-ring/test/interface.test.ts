import { GuestMemory } from '@virq/core';
import { VIRTIO_F_RING_PACKED, VIRTIO_F_VERSION_1, createVirtqueueDevice, createVirtqueueDriver, packedRingLayout, splitRingLayout, type VirtqueueDevice } from '@virq/virtio-ring';

describe.each(['split', 'packed'] as const)('VirtqueueDevice interface (%s): unpop and the used index after a back end stops', (kind) => {
  function rig() {
    const mem = GuestMemory.ofSize(1 << 20);
    const features = (1n << BigInt(VIRTIO_F_VERSION_1)) | (kind === 'packed' ? 1n << BigInt(VIRTIO_F_RING_PACKED) : 0n);
    const lay = kind === 'packed' ? packedRingLayout(16, 0x10000) : splitRingLayout(16, 0x10000);
    const drv = createVirtqueueDriver<number>(mem, { ...lay, features, notify: () => undefined });
    const dev: VirtqueueDevice = createVirtqueueDevice(mem, { ...lay, features });
    return { mem, drv, dev, lay, features };
  }

  test('unpop puts chains back: the next pops return the same heads again', () => {
    const { drv, dev } = rig();
    drv.addSgs([{ gpa: 0x80000, len: 8 }, { gpa: 0x80100, len: 8 }], [], 1); // a 2-descriptor chain
    drv.addOutbuf(0x81000, 8, 2);
    drv.kick();
    const a = dev.pop()!.id;
    const b = dev.pop()!.id;
    expect(dev.unpop(2)).toBe(true);
    expect(dev.inFlight).toBe(0);
    expect([dev.pop()!.id, dev.pop()!.id]).toEqual([a, b]);
    expect(dev.pop()).toBeNull();
    expect(dev.unpop(5)).toBe(false);
  });

  test('a second device taking over after a stop continues from GET_VRING_BASE and the used index in memory', () => {
    const { mem, drv, dev, lay, features } = rig();
    for (let i = 0; i < 3; i++) drv.addOutbuf(0x80000 + i * 64, 8, i);
    drv.kick();
    const c0 = dev.pop()!;
    dev.pop(); // in flight when the back end stops
    dev.push(c0, 0);
    const base = dev.getVringBase();
    const next = createVirtqueueDevice(mem, { ...lay, features });
    next.setVringBase(base);
    next.updateUsedIdx();
    expect(next.inFlight).toBe(kind === 'split' ? 1 : 0);
    // The third buffer is the next to pop; the used entries continue after the first one.
    expect(next.pop()!.id).toBe(2);
    expect(drv.getBuf()).toBe(0);
  });
});
