import fc from 'fast-check';
import { createSimContext, TraceRecorder } from '@virq/core';
import { Serial16550, UART } from '../src/devices/serial-16550.js';

/** Behaviour held to QEMU's hw/char/serial.c (serial_ioport_write/read, serial_xmit, serial_update_irq). */
function uart() {
  const ctx = createSimContext({ seed: 1 });
  const calls: string[] = [];
  const t = ctx.trace.channel('serial');
  const rec = new TraceRecorder(t.events$);
  const s = new Serial16550('ttyS0', 0x3f8, { raise: (c) => calls.push(`raise<-${c}`), lower: (c) => calls.push(`lower<-${c}`) }, t);
  return { s, calls, rec };
}

describe('16550 UART (QEMU serial.c semantics)', () => {
  it('IER.THRI turned on raises from serial_ioport_write (seed 000: addr=1 val=2); rewriting the same IER does not', () => {
    const { s, calls, rec } = uart();
    s.ioWrite(0x3f8 + UART.IER, 0x02);
    expect(calls).toEqual(['raise<-serial_update_irq']);
    expect(rec.events.filter((e) => e.fn === 'serial_update_irq').map((e) => e.caller)).toEqual(['serial_ioport_write']);
    expect(s.ioRead(0x3f8 + UART.IIR)).toBe(UART.IIR_THRI); // read clears THRI
    expect(calls.at(-1)).toBe('lower<-serial_update_irq');
    expect(rec.events.filter((e) => e.fn === 'serial_update_irq').at(-1)!.caller).toBe('serial_ioport_read');
    const n = calls.length;
    s.ioWrite(0x3f8 + UART.IER, 0x02); // unchanged: QEMU only acts on a changed THRI
    expect(calls.length).toBe(n);
    expect(s.level).toBe(false);
    s.ioWrite(0x3f8 + UART.IER, 0x00);
    s.ioWrite(0x3f8 + UART.IER, 0x02); // off → on: raised again
    expect(s.level).toBe(true);
  });

  it('a THR write drops THRI in serial_ioport_write, then serial_xmit empties THR and raises it again', () => {
    const { s, calls, rec } = uart();
    s.ioWrite(0x3f8 + UART.IER, 0x02);
    s.ioWrite(0x3f8 + UART.THR, 0x41); // line was high: it falls, then rises (a new edge)
    expect(calls).toEqual(['raise<-serial_update_irq', 'lower<-serial_update_irq', 'raise<-serial_update_irq']);
    expect(rec.events.filter((e) => e.fn === 'serial_update_irq').map((e) => e.caller)).toEqual(['serial_ioport_write', 'serial_ioport_write', 'serial_xmit']);
    expect(s.transmitted).toEqual([0x41]);
  });

  it('IIR bits 7:6 are set only while FCR enabled the FIFOs', () => {
    const { s } = uart();
    expect(s.ioRead(0x3f8 + UART.IIR)).toBe(UART.IIR_NO_INT);
    s.ioWrite(0x3f8 + UART.FCR, 0x01);
    expect(s.ioRead(0x3f8 + UART.IIR)).toBe(0xc1);
  });
});

/** The receive side held to QEMU's serial_receive1 / fifo_timeout_int / serial_can_receive. */
describe('16550 UART receive (QEMU serial.c semantics)', () => {
  function rxUart() {
    const timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
    let now = 0;
    let level = false;
    const s = new Serial16550('ttyS0', 0x3f8, { raise: () => void (level = true), lower: () => void (level = false) }, undefined, {
      after: (ns, fn) => {
        const t = { at: now + ns, fn, live: true };
        timers.push(t);
        return () => void (t.live = false);
      },
    });
    const advance = (ns: number) => {
      now += ns;
      for (const t of timers.filter((x) => x.live && x.at <= now)) {
        t.live = false;
        t.fn();
      }
    };
    // 115200 8N1 (divisor 1): a character is 10 bits, 86,805 ns in QEMU's float arithmetic
    s.ioWrite(0x3f8 + UART.LCR, 0x83);
    s.ioWrite(0x3f8 + UART.THR, 1);
    s.ioWrite(0x3f8 + UART.IER, 0);
    s.ioWrite(0x3f8 + UART.LCR, 0x03);
    return { s, advance, level: () => level, timers };
  }

  it('without FIFOs a byte raises RDI at once; reading RBR clears LSR.DR and the line', () => {
    const { s, level } = rxUart();
    s.ioWrite(0x3f8 + UART.IER, UART.IER_RDI);
    s.receive([0x61]);
    expect(level()).toBe(true);
    expect(s.ioRead(0x3f8 + UART.IIR)).toBe(UART.IIR_RDI);
    expect(s.ioRead(0x3f8 + UART.LSR) & UART.LSR_DR).toBe(UART.LSR_DR);
    expect(s.ioRead(0x3f8 + UART.RBR)).toBe(0x61);
    expect(level()).toBe(false);
    expect(s.ioRead(0x3f8 + UART.LSR) & UART.LSR_DR).toBe(0);
  });

  it('char_transmit_time: serial_reset\'s integer 9600-baud value, then serial_update_parameters\' float arithmetic (a zero divisor ~3500 baud)', () => {
    const { s } = rxUart();
    expect(s.charTimeNs).toBe(86_805);
    const r = new Serial16550('ttyS1', 0x2f8, { raise: () => undefined, lower: () => undefined }, undefined);
    expect(r.charTimeNs).toBe(1_041_660); // reset: serial_reset's integer (1e9 / 9600) * 10
    r.ioWrite(0x2f8 + UART.LCR, 0x83);
    r.ioWrite(0x2f8 + UART.THR, 0);
    r.ioWrite(0x2f8 + UART.IER, 0);
    expect(r.charTimeNs).toBe(2_857_142); // divisor 0 (DLL and DLM written 0), 8N1: 3500 baud
  });

  it('with FIFOs (trigger 8) a lone byte waits for the character timeout: CTI four character times later', () => {
    const { s, advance, level } = rxUart();
    s.ioWrite(0x3f8 + UART.FCR, 0x81);
    s.ioWrite(0x3f8 + UART.IER, UART.IER_RDI);
    s.receive([0x61]);
    expect(level()).toBe(false);
    advance(4 * 86_805 - 1);
    expect(level()).toBe(false);
    advance(1);
    expect(level()).toBe(true);
    expect(s.ioRead(0x3f8 + UART.IIR) & 0x0f).toBe(UART.IIR_CTI);
    expect(s.ioRead(0x3f8 + UART.RBR)).toBe(0x61);
    expect(level()).toBe(false);
  });

  it('with FIFOs, reaching the trigger level raises RDI at once; the chardev offers nothing more until the guest reads', () => {
    const { s, level, advance } = rxUart();
    s.ioWrite(0x3f8 + UART.FCR, 0x81);
    s.ioWrite(0x3f8 + UART.IER, UART.IER_RDI);
    const bytes = Array.from({ length: 20 }, (_, i) => i);
    s.receive(bytes);
    expect(level()).toBe(true);
    expect(s.ioRead(0x3f8 + UART.IIR) & 0x0f).toBe(UART.IIR_RDI);
    expect(s.unread).toBe(20); // 8 in the FIFO, 12 held by the chardev
    const got: number[] = [];
    // The chardev offers more on the main loop's next iteration after an RBR read.
    for (;;) {
      advance(0);
      if (!(s.ioRead(0x3f8 + UART.LSR) & UART.LSR_DR)) break;
      got.push(s.ioRead(0x3f8 + UART.RBR));
    }
    expect(got).toEqual(bytes);
    expect(level()).toBe(false);
  });

  it('an RBR read that leaves data re-arms the timeout; the timer finding the FIFO empty raises nothing', () => {
    const { s, advance, level } = rxUart();
    s.ioWrite(0x3f8 + UART.FCR, 0x81);
    s.ioWrite(0x3f8 + UART.IER, UART.IER_RDI);
    s.receive([1, 2]);
    advance(300_000);
    expect(s.ioRead(0x3f8 + UART.RBR)).toBe(1); // re-armed from here
    advance(100_000);
    expect(level()).toBe(false); // the first arming would have fired by now
    advance(4 * 86_805);
    expect(level()).toBe(true);
    expect(s.ioRead(0x3f8 + UART.RBR)).toBe(2);
    expect(level()).toBe(false);
    advance(1_000_000);
    expect(level()).toBe(false);
  });

  it('property: over any mix of received bytes, register accesses, timer expiries and guest reads, every byte is read once and in order, and the line always says whether IIR has a source', () => {
    type Op =
      | { k: 'rx'; bytes: number[] }
      | { k: 'drain' }
      | { k: 'reg'; off: number; v: number }
      | { k: 'read'; off: number }
      | { k: 'time'; ns: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('rx' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 20 }) }),
      fc.record({ k: fc.constant('drain' as const) }),
      // IER, MCR, SCR and THR writes (not FCR/LCR: flushing the FIFO or DLAB are the guest's own doing)
      // MCR below LOOP (0x10): loopback is not modelled.
      fc.record({ k: fc.constant('reg' as const), off: fc.constantFrom(UART.IER, UART.SCR, UART.THR), v: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ k: fc.constant('reg' as const), off: fc.constant(UART.MCR), v: fc.integer({ min: 0, max: 0x0f }) }),
      fc.record({ k: fc.constant('read' as const), off: fc.constantFrom(UART.IIR, UART.LSR, UART.MSR, UART.IER) }),
      fc.record({ k: fc.constant('time' as const), ns: fc.integer({ min: 0, max: 1_000_000 }) }),
    );
    fc.assert(
      fc.property(fc.constantFrom(0x00, 0x01, 0x41, 0x81, 0xc1), fc.array(op, { maxLength: 60 }), (fcr, ops) => {
        const timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
        let now = 0;
        let level = false;
        const s = new Serial16550('p', 0x3f8, { raise: () => void (level = true), lower: () => void (level = false) }, undefined, {
          after: (ns, fn) => {
            const t = { at: now + ns, fn, live: true };
            timers.push(t);
            return () => void (t.live = false);
          },
        });
        const run = (): void => {
          for (;;) {
            const due = timers.filter((t) => t.live && t.at <= now).sort((a, b) => a.at - b.at)[0];
            if (due === undefined) return;
            due.live = false;
            due.fn();
          }
        };
        s.ioWrite(0x3f8 + UART.FCR, fcr);
        const sent: number[] = [];
        const got: number[] = [];
        const drainOnce = (): boolean => {
          run();
          if (!(s.ioRead(0x3f8 + UART.LSR) & UART.LSR_DR)) return false;
          got.push(s.ioRead(0x3f8 + UART.RBR));
          return true;
        };
        for (const o of ops) {
          if (o.k === 'rx') {
            sent.push(...o.bytes);
            s.receive(o.bytes);
          } else if (o.k === 'drain') drainOnce();
          else if (o.k === 'reg') s.ioWrite(0x3f8 + o.off, o.v);
          else if (o.k === 'read') s.ioRead(0x3f8 + o.off);
          else {
            now += o.ns;
            run();
          }
          // Every state change went through serial_update_irq: the line is what IIR would say.
          expect(level).toBe(s.pendingSource !== UART.IIR_NO_INT);
        }
        for (let guard = 0; guard < 10_000 && (s.unread > 0 || timers.some((t) => t.live)); guard++) {
          if (!drainOnce()) {
            now += 1_000_000;
            run();
          }
        }
        expect(s.unread).toBe(0);
        // Without FIFOs a byte that arrives while RBR is full waits in the chardev (can_receive
        // is 0), so nothing is overrun: what the guest read is exactly what was sent.
        expect(got).toEqual(sent);
      }),
      { numRuns: 300 },
    );
  });

  it('fuzz: arbitrary port accesses and values (DLAB, FIFO resets, loopback bits) never throw and keeps the line what IIR would say', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ write: fc.boolean(), off: fc.integer({ min: 0, max: 7 }), v: fc.integer({ min: 0, max: 255 }), rx: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 3 }) }), { maxLength: 120 }), (ops) => {
        let level = false;
        const s = new Serial16550('p', 0x3f8, { raise: () => void (level = true), lower: () => void (level = false) }, undefined);
        for (const o of ops) {
          s.receive(o.rx);
          if (o.write) s.ioWrite(0x3f8 + o.off, o.v);
          else expect(s.ioRead(0x3f8 + o.off)).toBeGreaterThanOrEqual(0);
          expect(level).toBe(s.pendingSource !== UART.IIR_NO_INT);
          expect(s.charTimeNs).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });
});

