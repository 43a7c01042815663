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
