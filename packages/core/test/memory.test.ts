import fc from 'fast-check';
import { GuestMemory, VirqError } from '@virq/core';

function twoRegions(): GuestMemory {
  // [0x1000, 0x2000) and [0x2000, 0x3000) adjacent; [0x8000, 0x8100) apart.
  return new GuestMemory([
    { gpa: 0x1000, size: 0x1000 },
    { gpa: 0x2000, size: 0x1000 },
    { gpa: 0x8000, size: 0x100 },
  ]);
}

function snapshotBytes(m: GuestMemory): string[] {
  return m.regions().map((r) => Buffer.from(r.bytes).toString('hex'));
}

describe('GuestMemory', () => {
  it('reads and writes little-endian scalars', () => {
    const m = twoRegions();
    m.write32(0x1010, 0x11223344);
    expect(m.read8(0x1010)).toBe(0x44);
    expect(m.read16(0x1010)).toBe(0x3344);
    expect(m.read32(0x1010)).toBe(0x11223344);
    m.write64(0x1020, 0x0102030405060708n);
    expect(m.read64(0x1020)).toBe(0x0102030405060708n);
    expect(m.read8(0x1020)).toBe(0x08);
    m.write64(0x1030, 2 ** 40 + 5);
    expect(m.read64n(0x1030)).toBe(2 ** 40 + 5);
    m.store16(0x1040, 0xbeef);
    expect(m.load16(0x1040)).toBe(0xbeef);
    m.store32(0x1044, 0xdeadbeef);
    expect(m.load32(0x1044)).toBe(0xdeadbeef);
  });

  it('Atomics accessors work over SharedArrayBuffer regions', () => {
    const m = GuestMemory.ofSize(4096, { shared: true });
    expect(m.regions()[0]!.shared).toBe(true);
    m.store16(10, 7);
    expect(m.read16(10)).toBe(7);
    m.store32(12, 0xfffffffe);
    expect(m.read32(12)).toBe(0xfffffffe);
  });

  it('byte copies may span adjacent regions, never a hole', () => {
    const m = twoRegions();
    const data = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    m.writeBytes(0x1ff0, data);
    expect(Array.from(m.readBytes(0x1ff0, 32))).toEqual(Array.from(data));
    expect(m.read8(0x2000)).toBe(17);
    expect(() => m.writeBytes(0x2ff0, data)).toThrow(expect.objectContaining({ code: 'memory.out-of-range', errno: 'EFAULT' }));
    expect(m.read8(0x2ff0)).toBe(0); // nothing written
  });

  it('scalars must lie in one region', () => {
    const m = twoRegions();
    expect(() => m.read32(0x1ffe)).toThrow(VirqError);
  });

  it('rejects overlapping and malformed regions', () => {
    const m = twoRegions();
    expect(() => m.addRegion({ gpa: 0x2800, size: 0x1000 })).toThrow(expect.objectContaining({ code: 'memory.region-overlap' }));
    expect(() => m.addRegion({ gpa: -1, size: 10 })).toThrow(expect.objectContaining({ code: 'memory.region-invalid' }));
    expect(() => m.addRegion({ gpa: 0x10000, size: 0 })).toThrow(expect.objectContaining({ code: 'memory.region-invalid' }));
    expect(() => m.addRegion({ gpa: 0x10000, size: 16, buffer: new ArrayBuffer(8) })).toThrow(expect.objectContaining({ code: 'memory.region-invalid' }));
  });

  it('copy is checked on both sides before anything moves', () => {
    const m = twoRegions();
    m.fill(0x1000, 16, 0xaa);
    m.copy(0x8000, 0x1000, 16);
    expect(m.read8(0x800f)).toBe(0xaa);
    const before = snapshotBytes(m);
    expect(() => m.copy(0x80f8, 0x1000, 16)).toThrow(VirqError);
    expect(snapshotBytes(m)).toEqual(before);
  });

  it('view is zero-copy', () => {
    const m = twoRegions();
    const v = m.view(0x8000, 4);
    v[0] = 9;
    expect(m.read8(0x8000)).toBe(9);
  });

  it('property: every access outside the regions is rejected and writes nothing', () => {
    const m = twoRegions();
    const inside = (a: number, len: number): boolean => {
      if (a < 0 || a > 0x10000) return false;
      for (let x = a; x < a + len; x++) if (!((x >= 0x1000 && x < 0x3000) || (x >= 0x8000 && x < 0x8100))) return false;
      return true;
    };
    const oneRegion = (a: number, len: number): boolean =>
      (a >= 0x1000 && a + len <= 0x2000) || (a >= 0x2000 && a + len <= 0x3000) || (a >= 0x8000 && a + len <= 0x8100);
    const addr = fc.oneof(fc.integer({ min: 0, max: 0x9000 }), fc.constantFrom(0xfff, 0x2ffc, 0x2ffd, 0x80fc, 0x80ff, 0x8100), fc.double({ noNaN: false }));
    fc.assert(
      fc.property(addr, fc.constantFrom(1, 2, 4, 8), fc.integer({ min: 1, max: 64 }), (a, width, blen) => {
        const before = snapshotBytes(m);
        const scalarOk = Number.isInteger(a) && oneRegion(a, width);
        const writer = { 1: () => m.write8(a, 0x5a), 2: () => m.write16(a, 0x5a5a), 4: () => m.write32(a, 0x5a5a5a5a), 8: () => m.write64(a, 0x5a5a5a5an) }[width]!;
        if (scalarOk) {
          writer();
        } else {
          expect(writer).toThrow(VirqError);
          expect(() => ({ 1: m.read8, 2: m.read16, 4: m.read32, 8: m.read64n }[width]!.call(m, a))).toThrow(VirqError);
          expect(snapshotBytes(m)).toEqual(before);
        }
        const bytesOk = Number.isInteger(a) && inside(a, blen);
        const before2 = snapshotBytes(m);
        if (bytesOk) {
          m.writeBytes(a, new Uint8Array(blen).fill(1));
          expect(m.isValid(a, blen)).toBe(true);
        } else {
          expect(() => m.writeBytes(a, new Uint8Array(blen).fill(1))).toThrow(VirqError);
          expect(() => m.readBytes(a, blen)).toThrow(VirqError);
          expect(m.isValid(a, blen)).toBe(false);
          expect(snapshotBytes(m)).toEqual(before2);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
