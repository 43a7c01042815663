import fc from 'fast-check';
import { createSimContext, TraceRecorder } from '@virq/core';
import { PL011, Pl011 } from '../src/devices/pl011.js';
import { GuestPl011 } from '../src/guest/guest-pl011.js';

/** Behaviour held to QEMU 7.2's hw/char/pl011.c. */
function uart() {
  const ctx = createSimContext({ seed: 1 });
  const calls: string[] = [];
  const t = ctx.trace.channel('serial');
  const rec = new TraceRecorder(t.events$);
  const u = new Pl011('ttyAMA0', { raise: (c) => calls.push(`raise<-${c}`), lower: (c) => calls.push(`lower<-${c}`) }, t);
  return { u, calls, rec };
}

describe('PL011 (QEMU pl011.c semantics)', () => {
  it('resets as QEMU: FR = TXFE|RXFE, CR = 0x300, IFLS = 0x12; the ID words read part 0x011 and the PrimeCell ID', () => {
    const { u } = uart();
    expect(u.mmioRead(PL011.FR)).toBe(0x90);
    expect(u.mmioRead(PL011.CR)).toBe(0x300);
    expect(u.mmioRead(PL011.IFLS)).toBe(0x12);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => u.mmioRead(PL011.ID + 4 * i))).toEqual([0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    expect(u.mmioRead(0x800)).toBe(0); // a bad offset reads 0
  });

  it('a DR write transmits at once and sets TX whatever the mask; every pl011_update drives the line to (RIS & IMSC) != 0; only ICR clears TX', () => {
    const { u, calls, rec } = uart();
    u.mmioWrite(PL011.DR, 0x41);
    expect(u.transmitted).toEqual([0x41]);
    expect(u.mmioRead(PL011.RIS)).toBe(PL011.INT_TX);
    expect(u.mmioRead(PL011.MIS)).toBe(0);
    expect(calls).toEqual(['lower<-pl011_update']); // TXIM clear: the line is set low (again)
    u.mmioWrite(PL011.IMSC, PL011.INT_TX); // unmasking a raised TX raises the line
    expect(calls.at(-1)).toBe('raise<-pl011_update');
    expect(u.mmioRead(PL011.FR) & PL011.FR_TXFF).toBe(0); // QEMU never fills the TX FIFO
    u.mmioWrite(PL011.DR, 0x42); // still raised: set high once more
    expect(calls.at(-1)).toBe('raise<-pl011_update');
    u.mmioWrite(PL011.ICR, PL011.INT_TX);
    expect(calls.at(-1)).toBe('lower<-pl011_update');
    expect(u.mmioRead(PL011.RIS)).toBe(0);
    const upd = rec.events.filter((e) => e.fn === 'pl011_update').map((e) => e.caller);
    expect(upd).toEqual(['pl011_write', 'pl011_write', 'pl011_write', 'pl011_write']);
    expect(calls.length).toBe(upd.length); // one qemu_set_irq per pl011_update
  });

  it('receive: INT_RX with the first byte (the read trigger is always 1); it falls when a DR read empties the FIFO', () => {
    const { u, calls } = uart();
    u.mmioWrite(PL011.LCR_H, 0x70); // FIFOs on
    u.mmioWrite(PL011.IMSC, PL011.INT_RX);
    u.receive([0x61, 0x62]);
    // The IMSC write's update, then pl011_put_fifo's at the trigger (the second byte: none).
    expect(calls).toEqual(['lower<-pl011_update', 'raise<-pl011_update']);
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFE).toBe(0);
    expect(u.mmioRead(PL011.DR)).toBe(0x61);
    expect(u.level).toBe(true); // one byte left
    expect(u.mmioRead(PL011.DR)).toBe(0x62);
    expect(calls).toEqual(['lower<-pl011_update', 'raise<-pl011_update', 'raise<-pl011_update', 'lower<-pl011_update']);
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFE).toBe(PL011.FR_RXFE);
  });

  it('FIFO depth 16 with LCR_H.FEN, 1 without: the chardev holds what does not fit and offers it after each DR read', () => {
    const { u } = uart();
    u.mmioWrite(PL011.IMSC, PL011.INT_RX);
    u.receive([1, 2, 3]); // FEN clear: one-byte holding register
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFF).toBe(PL011.FR_RXFF);
    expect(u.unread).toBe(3);
    expect([u.mmioRead(PL011.DR), u.mmioRead(PL011.DR), u.mmioRead(PL011.DR)]).toEqual([1, 2, 3]);
    expect(u.unread).toBe(0);
    u.mmioWrite(PL011.LCR_H, PL011.LCR_H_FEN);
    const bytes = Array.from({ length: 20 }, (_, i) => 0x30 + i);
    u.receive(bytes);
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFF).toBe(PL011.FR_RXFF); // 16 in the FIFO, 4 waiting
    const got: number[] = [];
    while (!(u.mmioRead(PL011.FR) & PL011.FR_RXFE)) got.push(u.mmioRead(PL011.DR));
    expect(got).toEqual(bytes);
    expect(u.level).toBe(false);
  });

  it('toggling LCR_H.FEN forgets what the FIFO held but, as in QEMU 7.2, leaves FR alone: the next DR read returns a stale byte', () => {
    const { u } = uart();
    u.mmioWrite(PL011.LCR_H, PL011.LCR_H_FEN);
    u.receive([7, 8]);
    u.mmioWrite(PL011.LCR_H, 0);
    expect(u.unread).toBe(0);
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFE).toBe(0); // stale: still "not empty"
    expect(u.mmioRead(PL011.DR)).toBe(7); // read_fifo[read_pos = 0], read_count stays 0
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFE).toBe(PL011.FR_RXFE);
    expect(u.received).toEqual([]); // nothing was really received by that read
  });

  it('the chardev offers one byte per main-loop iteration: a DR read does not refill the FIFO under the guest', () => {
    const later: Array<() => void> = [];
    const u = new Pl011('p', { raise: () => undefined, lower: () => undefined }, undefined, { after: (_ns, fn) => (later.push(fn), () => undefined) });
    u.mmioWrite(PL011.LCR_H, PL011.LCR_H_FEN);
    u.receive([1, 2, 3]);
    expect(u.mmioRead(PL011.DR)).toBe(1);
    expect(u.mmioRead(PL011.FR) & PL011.FR_RXFE).toBe(PL011.FR_RXFE); // 2 and 3 are still in the chardev
    while (later.length > 0) later.shift()!();
    expect([u.mmioRead(PL011.DR), u.mmioRead(PL011.DR)]).toEqual([2, 3]);
    expect(u.unread).toBe(0);
  });

  it('property: over any mix of received bytes, register accesses and guest reads, every byte is read once and in order, and the line is always (RIS & IMSC) != 0', () => {
    type Op = { k: 'rx'; bytes: number[] } | { k: 'read' } | { k: 'imsc'; v: number } | { k: 'icr'; v: number } | { k: 'lcr'; v: number } | { k: 'dr'; v: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('rx' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 24 }) }),
      fc.record({ k: fc.constant('read' as const) }),
      fc.record({ k: fc.constant('imsc' as const), v: fc.integer({ min: 0, max: 0x7ff }) }),
      fc.record({ k: fc.constant('icr' as const), v: fc.integer({ min: 0, max: 0x7ff }) }),
      // LCR_H writes keep FEN as the run chose it (a FEN toggle drops data; tested above).
      fc.record({ k: fc.constant('lcr' as const), v: fc.constantFrom(0, 0x60) }),
      fc.record({ k: fc.constant('dr' as const), v: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(fc.boolean(), fc.array(op, { maxLength: 80 }), (fen, ops) => {
        let level = false;
        const u = new Pl011('p', { raise: () => void (level = true), lower: () => void (level = false) }, undefined);
        const fenBit = fen ? PL011.LCR_H_FEN : 0;
        u.mmioWrite(PL011.LCR_H, fenBit);
        const sent: number[] = [];
        const got: number[] = [];
        for (const o of ops) {
          if (o.k === 'rx') {
            sent.push(...o.bytes);
            u.receive(o.bytes);
          } else if (o.k === 'read') {
            if (!(u.mmioRead(PL011.FR) & PL011.FR_RXFE)) got.push(u.mmioRead(PL011.DR));
          } else if (o.k === 'imsc') u.mmioWrite(PL011.IMSC, o.v);
          else if (o.k === 'icr') u.mmioWrite(PL011.ICR, o.v);
          else if (o.k === 'dr') u.mmioWrite(PL011.DR, o.v);
          else u.mmioWrite(PL011.LCR_H, o.v | fenBit);
          expect(level).toBe(u.maskedStatus !== 0);
          expect(u.level).toBe(level);
        }
        while (!(u.mmioRead(PL011.FR) & PL011.FR_RXFE)) got.push(u.mmioRead(PL011.DR));
        expect(got).toEqual(sent);
        expect(u.unread).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('PL011 under a hostile guest', () => {
  it('fuzz: arbitrary accesses at arbitrary offsets (unaligned, outside the map, values of every range) never throw, loses no received byte and keeps the line equal to MIS != 0', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ write: fc.boolean(), off: fc.oneof(fc.integer({ min: 0, max: 0xfff }), fc.constantFrom(0, 0x18, 0x2c, 0x38, 0x3c, 0x40, 0x44, 0xfe0)), v: fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }), rx: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 3 }) }),
          { maxLength: 120 },
        ),
        (ops) => {
          let level = false;
          const u = new Pl011('p', { raise: () => void (level = true), lower: () => void (level = false) }, undefined);
          let sent = 0;
          for (const o of ops) {
            u.receive(o.rx);
            sent += o.rx.length;
            if (o.write) u.mmioWrite(o.off, o.v);
            else expect(Number.isInteger(u.mmioRead(o.off))).toBe(true);
            expect(level).toBe(u.maskedStatus !== 0);
            expect(u.unread).toBeGreaterThanOrEqual(0);
          }
          // What the guest did not read is still there (or was dropped by its own FEN toggle).
          expect(u.received.length + u.unread).toBeLessThanOrEqual(sent);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('guest amba-pl011 driver against the PL011', () => {
  function pair() {
    let level = false;
    const u = new Pl011('ttyAMA0', { raise: () => void (level = true), lower: () => void (level = false) }, undefined);
    const log: string[] = [];
    const regs = {
      read: (o: number) => (log.push(`r${o.toString(16)}`), u.mmioRead(o)),
      write: (o: number, v: number) => (log.push(`w${o.toString(16)}=${v.toString(16)}`), u.mmioWrite(o, v)),
    };
    const d = new GuestPl011(regs, undefined);
    d.startup();
    log.length = 0;
    return { u, d, log, level: () => level };
  }

  it('startup leaves RXIM|RTIM enabled, the UART enabled with RTS and DTR, and the FIFOs on', () => {
    const { u } = pair();
    expect(u.mmioRead(PL011.IMSC)).toBe(0x50);
    expect(u.mmioRead(PL011.CR)).toBe(0xf01);
    expect(u.mmioRead(PL011.LCR_H) & PL011.LCR_H_FEN).toBe(PL011.LCR_H_FEN);
  });

  it('a tty write on QEMU: FR read and DR write per character, then pl011_stop_tx\'s IMSC write — TXIM is never enabled, no interrupt', () => {
    const { u, d, log, level } = pair();
    d.write([0x68, 0x69]);
    expect(log).toEqual(['r18', 'w0=68', 'r18', 'w0=69', 'w38=50']);
    expect(u.transmitted).toEqual([0x68, 0x69]);
    expect(level()).toBe(false);
    expect(d.pendingTx).toBe(0);
  });

  it('pl011_int on a received byte: RIS, ICR (0), FR, DR, FR, RIS — and the line is low after', () => {
    const { u, d, log, level } = pair();
    u.receive([0x61]);
    expect(level()).toBe(true);
    expect(d.interrupt()).toBe(true);
    expect(log).toEqual(['r3c', 'w44=0', 'r18', 'r0', 'r18', 'r3c']);
    expect(d.received).toEqual([0x61]);
    expect(level()).toBe(false);
    log.length = 0;
    expect(d.interrupt()).toBe(false); // nothing pending: IRQ_NONE after one RIS read
    expect(log).toEqual(['r3c']);
  });
});
