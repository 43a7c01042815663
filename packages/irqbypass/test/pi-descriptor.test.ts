import { PI_DESC_SIZE, POSTED_INTR_VECTOR, POSTED_INTR_WAKEUP_VECTOR, PiDescriptor, piNdst } from '@virq/irqbypass';
import fc from 'fast-check';

/** Bit n of the 64-byte descriptor, as hardware reads it (little-endian bytes). */
function bit(d: PiDescriptor, n: number): number {
  return (d.bytes[n >>> 3]! >>> (n & 7)) & 1;
}

describe('Posted-Interrupt Descriptor layout (FACTS §8.1, asm/posted_intr.h)', () => {
  test('is 64 bytes, 64-byte aligned', () => {
    expect(PI_DESC_SIZE).toBe(64);
    expect(() => new PiDescriptor(0x1040)).not.toThrow();
    expect(() => new PiDescriptor(0x1020)).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });

  test('PIR: vector v is bit v (bits 255:0)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), (v) => {
        const d = new PiDescriptor(0);
        expect(d.testAndSetPir(v)).toBe(false);
        expect(bit(d, v)).toBe(1);
        expect(d.bytes.reduce((n, b) => n + popcount(b), 0)).toBe(1);
        expect(d.testAndSetPir(v)).toBe(true);
      }),
    );
  });

  test('ON is bit 256, SN bit 257, NV bits 279:272, NDST bits 319:288', () => {
    const d = new PiDescriptor(0);
    d.testAndSetOn();
    expect(bit(d, 256)).toBe(1);
    expect(d.bytes[32]).toBe(0x01);
    d.setSn();
    expect(bit(d, 257)).toBe(1);
    d.updateControl({ nv: POSTED_INTR_VECTOR, ndst: 0x0000000b });
    expect(d.bytes[34]).toBe(0xf2);
    expect([...d.bytes.subarray(36, 40)]).toEqual([0x0b, 0, 0, 0]);
    expect(d.nv).toBe(0xf2);
    expect(d.ndst).toBe(11);
    // Reserved bits 271:258 and 287:280 stay clear.
    for (let b = 258; b <= 271; b++) expect(bit(d, b)).toBe(0);
    for (let b = 280; b <= 287; b++) expect(bit(d, b)).toBe(0);
    expect(d.testAndClearOn()).toBe(true);
    expect(d.on).toBe(false);
    expect(d.sn).toBe(true);
  });

  test('host vectors: notification 0xF2, wakeup 0xF1', () => {
    expect(POSTED_INTR_VECTOR).toBe(0xf2);
    expect(POSTED_INTR_WAKEUP_VECTOR).toBe(0xf1);
  });

  test('NDST format: x2APIC id as is, xAPIC id in bits 15:8', () => {
    expect(piNdst(5, true)).toBe(5);
    expect(piNdst(5, false)).toBe(0x0500);
  });

  test('takePir returns every posted vector in ascending order and empties the PIR', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }), (vs) => {
        const d = new PiDescriptor(64);
        for (const v of vs) d.testAndSetPir(v);
        expect(d.takePir()).toEqual([...vs].sort((a, b) => a - b));
        expect(d.pirEmpty).toBe(true);
      }),
    );
  });

  test('snapshot/restore round-trips', () => {
    const d = new PiDescriptor(128);
    d.testAndSetPir(0x41);
    d.testAndSetPir(0xee);
    d.updateControl({ nv: POSTED_INTR_WAKEUP_VECTOR, ndst: 7, sn: true });
    d.testAndSetOn();
    const e = new PiDescriptor(192);
    e.restore(JSON.parse(JSON.stringify(d.snapshot())));
    expect([...e.bytes]).toEqual([...d.bytes]);
  });
});

function popcount(b: number): number {
  let n = 0;
  for (let x = b; x !== 0; x &= x - 1) n++;
  return n;
}
