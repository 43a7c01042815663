import fc from 'fast-check';
import { EdgeDetector, IrqLine, VirqError } from '@virq/core';

describe('IrqLine (per-source OR, as __kvm_irq_line_state)', () => {
  it('the level is the OR of the sources', () => {
    const l = new IrqLine('gsi4');
    expect(l.set(0, true)).toEqual({ level: true, rose: true, fell: false });
    expect(l.set(1, true)).toEqual({ level: true, rose: false, fell: false });
    expect(l.set(0, false)).toEqual({ level: true, rose: false, fell: false });
    expect(l.set(1, false)).toEqual({ level: false, rose: false, fell: true });
  });

  it('sources above 31 use the high word', () => {
    const l = new IrqLine();
    l.set(40, true);
    expect(l.level).toBe(true);
    expect(l.sourceLevel(40)).toBe(true);
    expect(l.sourceLevel(8)).toBe(false);
    l.set(40, false);
    expect(l.level).toBe(false);
  });

  it('rejects bad source ids', () => {
    const l = new IrqLine();
    for (const bad of [-1, 64, 1.5, Number.NaN]) expect(() => l.set(bad, true)).toThrow(VirqError);
  });

  it('listeners see every change with its source', () => {
    const l = new IrqLine();
    const seen: string[] = [];
    const off = l.onChange((c, src) => seen.push(`${src}:${c.level ? 1 : 0}${c.rose ? '↑' : ''}${c.fell ? '↓' : ''}`));
    l.setLevel(true, 3);
    l.setLevel(true);
    l.setLevel(false, 3);
    l.setLevel(false);
    off();
    l.setLevel(true);
    expect(seen).toEqual(['3:1↑', '0:1', '3:1', '0:0↓']);
  });

  it('property: level == OR of a reference bitmap; rose/fell are the OR transitions', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.boolean()), { maxLength: 100 }), (ops) => {
        const l = new IrqLine();
        const ref = new Set<number>();
        for (const [src, lvl] of ops) {
          const before = ref.size > 0;
          if (lvl) ref.add(src);
          else ref.delete(src);
          const after = ref.size > 0;
          expect(l.set(src, lvl)).toEqual({ level: after, rose: !before && after, fell: before && !after });
          for (const s of [src, (src + 7) % 64]) expect(l.sourceLevel(s)).toBe(ref.has(s));
        }
      }),
    );
  });
});

describe('EdgeDetector', () => {
  it('reports only 0→1 transitions', () => {
    const e = new EdgeDetector();
    expect([true, true, false, true, false, false, true].map((v) => e.feed(v))).toEqual([true, false, false, true, false, false, true]);
  });
});
