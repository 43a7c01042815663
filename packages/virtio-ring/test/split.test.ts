import { TraceRecorder } from '@virq/core';
import {
  DescriptorChain,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_USED_F_NO_NOTIFY,
} from '@virq/virtio-ring';
import { DATA_GPA, INDIRECT_GPA, RING_GPA, buf, splitPair } from './ring-fixture.js';

describe('split virtqueue: byte layout (FACTS §1.1)', () => {
  test('driver add writes the descriptor, avail.ring[] and avail.idx at the spec offsets', () => {
    const { mem, layout, driver } = splitPair({ size: 8 });
    expect(layout.driver).toBe(RING_GPA + 16 * 8);
    expect(driver.addOutbuf(0x1_2345_6780, 64, 7)).toBe(true);
    // Descriptor 0: addr u64 @0, len u32 @8, flags u16 @12, next u16 @14.
    expect(mem.read64(RING_GPA)).toBe(0x1_2345_6780n);
    expect(mem.read32(RING_GPA + 8)).toBe(64);
    expect(mem.read16(RING_GPA + 12)).toBe(0);
    // avail: flags @0, idx @2, ring[0] @4.
    expect(mem.read16(layout.driver + 2)).toBe(1);
    expect(mem.read16(layout.driver + 4)).toBe(0);
  });

  test('device push writes used.ring[i] = {id u32, len u32} and then used.idx', () => {
    const { mem, layout, driver, device } = splitPair({ size: 8 });
    driver.addInbuf(DATA_GPA, 1500, 1);
    driver.addInbuf(DATA_GPA + 2048, 1500, 2);
    const c1 = device.pop()!;
    const c2 = device.pop()!;
    expect(c1.id).toBe(0);
    expect(c2.id).toBe(1);
    device.fill(c2, 60);
    device.fill(c1, 42);
    expect(mem.read16(layout.device + 2)).toBe(0); // not visible before flush
    device.flush();
    expect(mem.read16(layout.device + 2)).toBe(2);
    expect(mem.read32(layout.device + 4)).toBe(1);
    expect(mem.read32(layout.device + 8)).toBe(60);
    expect(mem.read32(layout.device + 12)).toBe(0);
    expect(mem.read32(layout.device + 16)).toBe(42);
    expect(driver.getBuf()).toBe(2);
    expect(driver.lastLen).toBe(60);
    expect(driver.getBuf()).toBe(1);
    expect(driver.lastLen).toBe(42);
    expect(driver.getBuf()).toBeUndefined();
    expect(driver.numFree).toBe(8);
  });

  test('a chain of readable then writable buffers links descriptors with NEXT/WRITE and round-trips its bytes', () => {
    const { mem, driver, device } = splitPair({ size: 8 });
    mem.writeBytes(DATA_GPA, new Uint8Array([1, 2, 3, 4, 5, 6]));
    driver.addSgs([{ gpa: DATA_GPA, len: 4 }, { gpa: DATA_GPA + 4, len: 2 }], [{ gpa: DATA_GPA + 100, len: 1 }], 9);
    expect(mem.read16(RING_GPA + 12)).toBe(VRING_DESC_F_NEXT);
    const next = mem.read16(RING_GPA + 14);
    expect(mem.read16(RING_GPA + 16 * next + 12)).toBe(VRING_DESC_F_NEXT);
    const last = mem.read16(RING_GPA + 16 * next + 14);
    expect(mem.read16(RING_GPA + 16 * last + 12)).toBe(VRING_DESC_F_WRITE);
    const c = device.pop()!;
    expect(c.readable()).toEqual([{ gpa: DATA_GPA, len: 4 }, { gpa: DATA_GPA + 4, len: 2 }]);
    expect(c.writable()).toEqual([{ gpa: DATA_GPA + 100, len: 1 }]);
    const got = new Uint8Array(6);
    expect(device.readFromChain(c, got)).toBe(6);
    expect(Array.from(got)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(device.writeToChain(c, new Uint8Array([0]))).toBe(1); // VIRTIO_NET_OK
    device.push(c, 1);
    expect(driver.getBuf()).toBe(9);
    expect(driver.lastLen).toBe(1);
  });

  test('indirect: one ring descriptor with INDIRECT pointing at a table of len/16 entries', () => {
    const { mem, driver, device } = splitPair({ size: 8, features: { indirectDesc: true }, indirectEntries: 4 });
    driver.addSgs([{ gpa: DATA_GPA, len: 10 }], [{ gpa: DATA_GPA + 64, len: 20 }, { gpa: DATA_GPA + 128, len: 30 }], 5);
    expect(driver.numFree).toBe(7);
    expect(mem.read16(RING_GPA + 12)).toBe(VRING_DESC_F_INDIRECT);
    expect(mem.read32(RING_GPA + 8)).toBe(3 * 16);
    expect(mem.read64n(RING_GPA)).toBe(INDIRECT_GPA);
    expect(mem.read16(INDIRECT_GPA + 16 + 12)).toBe(VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
    const c = device.pop()!;
    expect(c.indirect).toBe(true);
    expect(c.outBytes).toBe(10);
    expect(c.inBytes).toBe(50);
    device.push(c, 50);
    expect(driver.getBuf()).toBe(5);
    expect(driver.numFree).toBe(8);
  });

  test('full ring: add fails with no room (Linux -ENOSPC) and still notifies for an outbuf', () => {
    const p = splitPair({ size: 4 });
    for (let i = 0; i < 4; i++) expect(p.driver.addOutbuf(buf(i), 64, i)).toBe(true);
    expect(p.kicks).toBe(0);
    expect(p.driver.addOutbuf(buf(5), 64, 5)).toBe(false);
    expect(p.kicks).toBe(1);
    expect(p.driver.addInbuf(buf(5), 64, 5)).toBe(false);
    expect(p.kicks).toBe(1);
  });

  test('descriptor free list is reused after get_buf, across 16-bit index wrap', () => {
    const { driver, device, mem, layout } = splitPair({ size: 4 });
    const chain = new DescriptorChain();
    let wrong = 0;
    for (let i = 0; i < 70000; i++) {
      if (!driver.addOutbuf(buf(i), 64, i)) wrong++;
      const c = device.pop(chain);
      if (c === null) wrong++;
      else device.push(c, 0);
      if (driver.getBuf() !== i) wrong++;
    }
    expect(wrong).toBe(0);
    expect(mem.read16(layout.driver + 2)).toBe(70000 & 0xffff);
    expect(mem.read16(layout.device + 2)).toBe(70000 & 0xffff);
  });
});

describe('split virtqueue: notification suppression (FACTS §1.3, §1.4)', () => {
  test('without EVENT_IDX the driver kicks unless used.flags has VRING_USED_F_NO_NOTIFY', () => {
    const { driver, device, mem, layout } = splitPair();
    driver.addOutbuf(buf(0), 64, 0);
    expect(driver.kickPrepare()).toBe(true);
    device.disableNotification();
    expect(mem.read16(layout.device) & VRING_USED_F_NO_NOTIFY).toBe(1);
    driver.addOutbuf(buf(1), 64, 1);
    expect(driver.kickPrepare()).toBe(false);
    device.pop();
    device.pop();
    expect(device.enableNotification()).toBe(false);
    expect(mem.read16(layout.device)).toBe(0);
  });

  test('with EVENT_IDX the driver kicks iff avail_event is in [old, new)', () => {
    const { driver, mem, layout } = splitPair({ features: { eventIdx: true } });
    const availEvent = layout.device + 4 + 8 * 8;
    mem.write16(availEvent, 0);
    driver.addOutbuf(buf(0), 64, 0);
    driver.addOutbuf(buf(1), 64, 1);
    expect(driver.kickPrepare()).toBe(true); // event 0 in [0, 2)
    mem.write16(availEvent, 5);
    driver.addOutbuf(buf(2), 64, 2);
    expect(driver.kickPrepare()).toBe(false); // 5 not in [2, 3)
    for (let i = 3; i < 6; i++) driver.addOutbuf(buf(i), 64, i);
    expect(driver.kickPrepare()).toBe(true); // 5 in [3, 6)
  });

  test('device interrupt: NO_INTERRUPT without EVENT_IDX; used_event window with it, first always', () => {
    const a = splitPair();
    a.driver.addInbuf(buf(0), 64, 0);
    a.device.push(a.device.pop()!, 0);
    expect(a.device.notify()).toBe(true);
    a.driver.disableCb();
    expect(a.mem.read16(a.layout.driver) & VRING_AVAIL_F_NO_INTERRUPT).toBe(1);
    expect(a.device.notify()).toBe(false);
    expect(a.calls).toBe(1);

    const b = splitPair({ features: { eventIdx: true } });
    const usedEvent = b.layout.driver + 4 + 2 * 8;
    b.mem.write16(usedEvent, 100); // far away: only the "nothing signalled yet" rule notifies
    b.driver.addInbuf(buf(0), 64, 0);
    b.driver.addInbuf(buf(1), 64, 1);
    b.driver.addInbuf(buf(2), 64, 2);
    b.device.push(b.device.pop()!, 0);
    expect(b.device.notify()).toBe(true); // signalled_used_valid was false
    b.device.push(b.device.pop()!, 0);
    expect(b.device.notify()).toBe(false); // used_event 100 not in [1, 2)
    b.mem.write16(usedEvent, 2);
    b.device.push(b.device.pop()!, 0);
    expect(b.device.notify()).toBe(true); // 2 in [2, 3)
  });

  test('get_buf publishes used_event = last_used_idx while callbacks are enabled', () => {
    const { driver, device, mem, layout } = splitPair({ features: { eventIdx: true } });
    driver.addInbuf(buf(0), 64, 0);
    driver.addInbuf(buf(1), 64, 1);
    device.push(device.pop()!, 0);
    device.push(device.pop()!, 0);
    driver.getBuf();
    expect(mem.read16(layout.driver + 4 + 16)).toBe(1);
    driver.disableCb();
    driver.getBuf();
    expect(mem.read16(layout.driver + 4 + 16)).toBe(0); // Linux's disable writes 0x0
    expect(driver.enableCb()).toBe(true);
    expect(mem.read16(layout.driver + 4 + 16)).toBe(2);
  });

  test('enable_cb re-check: returns false when buffers were used while callbacks were off', () => {
    const { driver, device } = splitPair({ features: { eventIdx: true } });
    driver.addInbuf(buf(0), 64, 0);
    driver.disableCb();
    device.push(device.pop()!, 0);
    expect(driver.enableCb()).toBe(false);
    expect(driver.getBuf()).toBe(0);
    expect(driver.enableCb()).toBe(true);
  });

  test('device enable re-check: a buffer added while notifications were off is reported pending', () => {
    const { driver, device, mem, layout } = splitPair({ features: { eventIdx: true } });
    const availEvent = layout.device + 4 + 8 * 8;
    driver.addOutbuf(buf(0), 64, 0);
    expect(driver.kickPrepare()).toBe(true); // avail_event 0 in [0, 1)
    device.disableNotification(); // EVENT_IDX: avail_event simply stops moving
    expect(device.pop()!.id).toBe(0);
    expect(mem.read16(availEvent)).toBe(0);
    driver.addOutbuf(buf(1), 64, 1);
    expect(driver.kickPrepare()).toBe(false); // 0 not in [1, 2): suppressed
    expect(device.enableNotification()).toBe(true); // the re-check finds buffer 1
    expect(mem.read16(availEvent)).toBe(2);
    expect(device.pop()!.id).toBe(1);
    expect(device.enableNotification()).toBe(false);
  });

  test('pop moves avail_event to last_avail_idx while notifications are enabled (QEMU vring_set_avail_event)', () => {
    const { driver, device, mem, layout } = splitPair({ features: { eventIdx: true } });
    const availEvent = layout.device + 4 + 8 * 8;
    for (let i = 0; i < 3; i++) driver.addOutbuf(buf(i), 64, i);
    device.pop();
    device.pop();
    expect(mem.read16(availEvent)).toBe(2);
  });

  test('trace names the real functions with the indexes', () => {
    const { driver, device, trace } = splitPair({ features: { eventIdx: true } });
    const rec = new TraceRecorder(trace.events$);
    driver.addOutbuf(buf(0), 64, 0);
    driver.kick();
    device.push(device.pop()!, 0);
    device.notify();
    driver.interrupt();
    driver.getBuf();
    expect(rec.functions()).toEqual([
      'virtqueue_add_split',
      'virtqueue_kick_prepare',
      'virtqueue_notify',
      'virtqueue_pop',
      'virtqueue_fill',
      'virtqueue_flush',
      'virtio_split_should_notify',
      'virtio_irq',
      'vring_interrupt',
      'virtqueue_get_buf_ctx_split',
    ]);
    const kick = rec.events.find((e) => e.kind === 'vring.kick_prepare')!;
    expect(kick.args).toMatchObject({ oldIdx: 0, newIdx: 1, event: 0, needsKick: true });
  });

  test('DPDK flavor: the interrupt decision is traced as vhost_vring_call_split then eventfd_write', () => {
    const { driver, device, trace } = splitPair({ features: { eventIdx: true }, device: { flavor: 'dpdk' } });
    const rec = new TraceRecorder(trace.events$);
    driver.addInbuf(buf(0), 64, 0);
    device.push(device.pop()!, 10);
    device.notify();
    expect(rec.functions().slice(-2)).toEqual(['vhost_vring_call_split', 'eventfd_write']);
  });
});
