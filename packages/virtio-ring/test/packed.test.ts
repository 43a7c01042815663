import { TraceRecorder } from '@virq/core';
import {
  DescriptorChain,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_PACKED_DESC_F_AVAIL,
  VRING_PACKED_DESC_F_USED,
  VRING_PACKED_EVENT_FLAG_DESC,
  VRING_PACKED_EVENT_FLAG_DISABLE,
  VRING_PACKED_EVENT_FLAG_ENABLE,
} from '@virq/virtio-ring';
import { DATA_GPA, INDIRECT_GPA, RING_GPA, buf, packedPair } from './ring-fixture.js';

const AVAIL = VRING_PACKED_DESC_F_AVAIL;
const USED = VRING_PACKED_DESC_F_USED;

describe('packed virtqueue: layout and ownership bits (FACTS §2.1, §2.2)', () => {
  test('driver marks a descriptor available with AVAIL = wrap (1), USED = !wrap; id at @12, flags at @14', () => {
    const { mem, driver } = packedPair({ size: 4 });
    driver.addOutbuf(DATA_GPA, 64, 1);
    expect(mem.read64n(RING_GPA)).toBe(DATA_GPA);
    expect(mem.read32(RING_GPA + 8)).toBe(64);
    expect(mem.read16(RING_GPA + 12)).toBe(0); // buffer id 0
    expect(mem.read16(RING_GPA + 14)).toBe(AVAIL);
  });

  test('device marks used with AVAIL = USED = used wrap; second lap flips the bits', () => {
    const { mem, driver, device } = packedPair({ size: 2 });
    const flagsAt = (slot: number): number => mem.read16(RING_GPA + 16 * slot + 14);
    for (let lap = 0; lap < 2; lap++) {
      driver.addInbuf(buf(0), 64, 10);
      driver.addInbuf(buf(1), 64, 11);
      const wrap = lap === 0;
      expect(flagsAt(0)).toBe((wrap ? AVAIL : USED) | VRING_DESC_F_WRITE);
      expect(flagsAt(1)).toBe((wrap ? AVAIL : USED) | VRING_DESC_F_WRITE);
      const a = device.pop()!;
      const b = device.pop()!;
      expect(device.pop()).toBeNull();
      device.fill(a, 5);
      device.fill(b, 6);
      device.flush();
      expect(flagsAt(0) & (AVAIL | USED)).toBe(wrap ? AVAIL | USED : 0);
      expect(mem.read32(RING_GPA + 8)).toBe(5);
      expect(driver.getBuf()).toBe(10);
      expect(driver.lastLen).toBe(5);
      expect(driver.getBuf()).toBe(11);
      expect(driver.getBuf()).toBeUndefined();
    }
  });

  test('a chain takes consecutive slots, NEXT on all but the last, and both sides skip by its length', () => {
    const { mem, driver, device } = packedPair({ size: 4 });
    driver.addSgs([{ gpa: DATA_GPA, len: 8 }, { gpa: DATA_GPA + 8, len: 8 }], [{ gpa: DATA_GPA + 64, len: 16 }], 3);
    expect(mem.read16(RING_GPA + 14)).toBe(AVAIL | VRING_DESC_F_NEXT);
    expect(mem.read16(RING_GPA + 16 + 14)).toBe(AVAIL | VRING_DESC_F_NEXT);
    expect(mem.read16(RING_GPA + 32 + 14)).toBe(AVAIL | VRING_DESC_F_WRITE);
    driver.addOutbuf(DATA_GPA + 256, 4, 4);
    const c = device.pop()!;
    expect(c.ndescs).toBe(3);
    expect(c.readable()).toHaveLength(2);
    expect(c.writable()).toEqual([{ gpa: DATA_GPA + 64, len: 16 }]);
    const d = device.pop()!;
    expect(d.ndescs).toBe(1);
    device.push(c, 16);
    device.push(d, 0);
    expect(driver.getBuf()).toBe(3);
    expect(driver.getBuf()).toBe(4);
    expect(driver.numFree).toBe(4);
  });

  test('indirect table: one ring slot, packed-format table entries used in order', () => {
    const { mem, driver, device } = packedPair({ size: 4, features: { indirectDesc: true }, indirectEntries: 4 });
    driver.addSgs([{ gpa: DATA_GPA, len: 10 }], [{ gpa: DATA_GPA + 64, len: 20 }], 8);
    expect(mem.read16(RING_GPA + 14)).toBe(AVAIL | VRING_DESC_F_INDIRECT);
    expect(mem.read64n(RING_GPA)).toBe(INDIRECT_GPA);
    const c = device.pop()!;
    expect(c.indirect).toBe(true);
    expect(c.outBytes).toBe(10);
    expect(c.inBytes).toBe(20);
    device.push(c, 20);
    expect(driver.getBuf()).toBe(8);
  });

  test('many laps with mixed chain lengths keep both sides in step', () => {
    const { driver, device } = packedPair({ size: 5 });
    const chain = new DescriptorChain();
    let bad = 0;
    for (let i = 0; i < 5000; i++) {
      const n = 1 + (i % 3);
      const segs = Array.from({ length: n }, (_, k) => ({ gpa: buf(k), len: 64 }));
      if (!driver.addSgs(segs, [], i)) bad++;
      const c = device.pop(chain);
      if (c === null || c.ndescs !== n) bad++;
      else device.push(c, 0);
      if (driver.getBuf() !== i) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('packed virtqueue: event suppression (FACTS §2.3)', () => {
  test('driver kick: ENABLE → kick, DISABLE → none, DESC → need_event on off_wrap', () => {
    const { mem, layout, driver, device } = packedPair({ size: 8, features: { eventIdx: true } });
    driver.addOutbuf(buf(0), 64, 0);
    expect(driver.kickPrepare()).toBe(true); // flags 0 = ENABLE
    device.disableNotification();
    expect(mem.read16(layout.device + 2)).toBe(VRING_PACKED_EVENT_FLAG_DISABLE);
    driver.addOutbuf(buf(1), 64, 1);
    expect(driver.kickPrepare()).toBe(false);
    device.pop();
    device.pop();
    expect(device.enableNotification()).toBe(false);
    expect(mem.read16(layout.device + 2)).toBe(VRING_PACKED_EVENT_FLAG_DESC);
    expect(mem.read16(layout.device)).toBe(2 | 0x8000); // next slot 2, wrap 1
    driver.addOutbuf(buf(2), 64, 2);
    expect(driver.kickPrepare()).toBe(true); // 2 in [2, 3)
    driver.addOutbuf(buf(3), 64, 3);
    expect(driver.kickPrepare()).toBe(false); // 2 not in [3, 4)
  });

  test('device interrupt: DISABLE/ENABLE from the driver event structure, DESC with the first-always rule', () => {
    const { mem, layout, driver, device } = packedPair({ size: 8, features: { eventIdx: true } });
    for (let i = 0; i < 4; i++) driver.addInbuf(buf(i), 64, i);
    device.push(device.pop()!, 0);
    expect(device.shouldNotify()).toBe(true); // ENABLE (0) initially
    driver.disableCb();
    expect(mem.read16(layout.driver + 2)).toBe(VRING_PACKED_EVENT_FLAG_DISABLE);
    device.push(device.pop()!, 0);
    expect(device.shouldNotify()).toBe(false);
    driver.getBuf();
    driver.getBuf();
    expect(driver.enableCb()).toBe(true);
    expect(mem.read16(layout.driver + 2)).toBe(VRING_PACKED_EVENT_FLAG_DESC);
    expect(mem.read16(layout.driver)).toBe(2 | 0x8000);
    device.push(device.pop()!, 0);
    expect(device.shouldNotify()).toBe(true); // 2 in [2, 3)
    device.push(device.pop()!, 0);
    expect(device.shouldNotify()).toBe(false); // driver did not move off_wrap yet (no get_buf)
    expect(VRING_PACKED_EVENT_FLAG_ENABLE).toBe(0);
  });

  test('trace: virtqueue_add_packed, kick_prepare, pop, fill, flush, should_notify', () => {
    const { driver, device, trace } = packedPair({ size: 4 });
    const rec = new TraceRecorder(trace.events$);
    driver.addOutbuf(buf(0), 64, 0);
    driver.kick();
    device.push(device.pop()!, 0);
    device.notify();
    expect(rec.functions()).toEqual(['virtqueue_add_packed', 'virtqueue_kick_prepare', 'virtqueue_notify', 'virtqueue_pop', 'virtqueue_fill', 'virtqueue_flush', 'virtio_packed_should_notify', 'virtio_irq']);
  });
});
