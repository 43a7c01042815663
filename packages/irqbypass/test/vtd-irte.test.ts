import { decodeIrte, encodeIrte, irteToBigInt, type Irte } from '@virq/irqbypass';
import fc from 'fast-check';

const bits = (v: bigint, hi: number, lo: number): bigint => (v >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);

describe('VT-d IRTE (FACTS §8.4, include/linux/dmar.h)', () => {
  test('remapped format: P bit 0, DM 2, RH 3, TM 4, DLM 7:5, IM 15 = 0, vector 23:16, destination 63:32, SID 79:64, SQ 81:80, SVT 83:82', () => {
    const v = irteToBigInt(encodeIrte({ mode: 'remapped', present: true, fpd: false, avail: 0, sid: 0x3b00, sq: 2, svt: 1, destMode: 1, redirHint: true, triggerMode: 1, deliveryMode: 1, vector: 0x31, destId: 0x0b }));
    expect(bits(v, 0, 0)).toBe(1n);
    expect(bits(v, 2, 2)).toBe(1n);
    expect(bits(v, 3, 3)).toBe(1n);
    expect(bits(v, 4, 4)).toBe(1n);
    expect(bits(v, 7, 5)).toBe(1n);
    expect(bits(v, 15, 15)).toBe(0n);
    expect(bits(v, 23, 16)).toBe(0x31n);
    expect(bits(v, 63, 32)).toBe(0x0bn);
    expect(bits(v, 79, 64)).toBe(0x3b00n);
    expect(bits(v, 81, 80)).toBe(2n);
    expect(bits(v, 83, 82)).toBe(1n);
    expect(bits(v, 127, 84)).toBe(0n);
  });

  test('posted format: IM/PST bit 15 = 1, URG bit 14, guest vector 23:16, PDA[31:6] in 63:38, PDA[63:32] in 127:96', () => {
    const pda = 0x1_2345_6780;
    const v = irteToBigInt(encodeIrte({ mode: 'posted', present: true, fpd: false, avail: 0, sid: 0x3b00, sq: 0, svt: 1, urgent: true, vector: 0x41, pda }));
    expect(bits(v, 15, 15)).toBe(1n);
    expect(bits(v, 14, 14)).toBe(1n);
    expect(bits(v, 23, 16)).toBe(0x41n);
    expect(bits(v, 63, 38)).toBe(BigInt(pda >>> 6) & 0x3ffffffn);
    expect(bits(v, 37, 32)).toBe(0n);
    expect(bits(v, 127, 96)).toBe(BigInt(Math.floor(pda / 2 ** 32)));
    expect(bits(v, 7, 2)).toBe(0n);
  });

  const common = { present: fc.boolean(), fpd: fc.boolean(), avail: fc.nat(15), sid: fc.nat(0xffff), sq: fc.nat(3), svt: fc.nat(3) };
  const arbIrte: fc.Arbitrary<Irte> = fc.oneof(
    fc.record({ mode: fc.constant('remapped' as const), ...common, destMode: fc.constantFrom(0 as const, 1 as const), redirHint: fc.boolean(), triggerMode: fc.constantFrom(0 as const, 1 as const), deliveryMode: fc.nat(7), vector: fc.nat(255), destId: fc.nat(0xffffffff) }),
    fc.record({ mode: fc.constant('posted' as const), ...common, urgent: fc.boolean(), vector: fc.nat(255), pda: fc.nat(2 ** 46 - 1).map((x) => x * 64) }),
  );

  test('property: decode(encode(e)) = e', () => {
    fc.assert(fc.property(arbIrte, (e) => expect(decodeIrte(encodeIrte(e))).toEqual(e)));
  });

  test('reserved bits set are rejected (reserved-field fault)', () => {
    expect(() => decodeIrte([1 | (1 << 24), 0, 0, 0])).toThrow(expect.objectContaining({ code: 'iommu.irte-invalid' }));
    expect(() => decodeIrte([1 | (1 << 15) | (1 << 2), 0, 0, 0])).toThrow(expect.objectContaining({ code: 'iommu.irte-invalid' }));
    expect(() => decodeIrte([1 | (1 << 15), 0x20, 0, 0])).toThrow(expect.objectContaining({ code: 'iommu.irte-invalid' }));
  });

  test('an unaligned descriptor address cannot be encoded', () => {
    expect(() => encodeIrte({ mode: 'posted', present: true, fpd: false, avail: 0, sid: 0, sq: 0, svt: 0, urgent: false, vector: 1, pda: 0x1020 })).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });
});
