import { VirqError } from '@virq/core';
import {
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_RING_PACKED,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VRING_PACKED_DESC_F_AVAIL,
  VRING_PACKED_DESC_F_USED,
  VirtioRingErrorCode,
  packedRingLayout,
  ringFeatures,
  splitRingLayout,
  vringNeedEvent,
} from '@virq/virtio-ring';

describe('layout (FACTS §1.1, §2.1)', () => {
  test('split areas: 16Q descriptor bytes, 6+2Q avail (with used_event), 6+8Q used (with avail_event)', () => {
    const l = splitRingLayout(256, 0x10000);
    expect([l.descBytes, l.driverBytes, l.deviceBytes]).toEqual([4096, 518, 2054]);
    expect(l.driver).toBe(0x10000 + 4096);
    // Legacy vring_size: align(16Q + 2(3+Q), 4096) + 2·3 + 8Q.
    expect(l.device).toBe(0x10000 + 8192);
    expect(l.totalBytes).toBe(8192 + 2054);
    const tight = splitRingLayout(8, 0x1000, 4);
    expect(tight.device).toBe(0x1000 + 128 + 24); // 6+16 = 22 rounded to 4
  });

  test('split queue size: a power of two up to 32768', () => {
    expect(splitRingLayout(32768, 0).size).toBe(32768);
    expect(splitRingLayout(1, 0).size).toBe(1);
    for (const bad of [0, 3, 100, 65536, 32769]) {
      expect(() => splitRingLayout(bad, 0)).toThrow(VirqError);
      try {
        splitRingLayout(bad, 0);
      } catch (e) {
        expect((e as VirqError).code).toBe(VirtioRingErrorCode.BadQueueSize);
      }
    }
  });

  test('packed, every size 1..32768, descriptors then the two 4-byte event structures', () => {
    const l = packedRingLayout(3, 0x2000);
    expect([l.desc, l.driver, l.device, l.totalBytes]).toEqual([0x2000, 0x2030, 0x2034, 56]);
    expect(packedRingLayout(32768, 0).size).toBe(32768);
    expect(() => packedRingLayout(32769, 0)).toThrow(/1 to 32768/);
    expect(() => packedRingLayout(0, 0)).toThrow(VirqError);
  });

  test('packed flag bits: AVAIL = bit 7, USED = bit 15', () => {
    expect(VRING_PACKED_DESC_F_AVAIL).toBe(0x80);
    expect(VRING_PACKED_DESC_F_USED).toBe(0x8000);
  });

  test('feature bits (FACTS §1.5) decode from a 64-bit feature word', () => {
    const f = (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)) | (1n << 34n) | (1n << 35n) | (1n << 28n) | (1n << 32n);
    expect(ringFeatures(f)).toEqual({ eventIdx: true, indirectDesc: true, inOrder: true, notifyOnEmpty: false, packed: true });
    expect([VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_RING_PACKED, VIRTIO_F_IN_ORDER]).toEqual([28, 29, 34, 35]);
    expect(ringFeatures(1 << 24).notifyOnEmpty).toBe(true);
  });
});

describe('vring_need_event (FACTS §1.4)', () => {
  test('the spec examples', () => {
    expect(vringNeedEvent(5, 6, 5)).toBe(true); // event = old
    expect(vringNeedEvent(6, 6, 5)).toBe(false); // event = new
    expect(vringNeedEvent(0xffff, 0x0002, 0xfffe)).toBe(true); // wrap-safe
    expect(vringNeedEvent(0x0002, 0x0002, 0xfffe)).toBe(false);
  });
  test('equals "event in [old, new)" for every small window', () => {
    for (let old = 0xfff0; old < 0x10010; old += 3) {
      for (let n = 0; n < 20; n++) {
        const nw = (old + n) & 0xffff;
        for (let d = -5; d < 25; d++) {
          const ev = (old + d) & 0xffff;
          expect(vringNeedEvent(ev, nw, old & 0xffff)).toBe(d >= 0 && d < n);
        }
      }
    }
  });
});
