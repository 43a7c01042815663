import type { TraceChannel } from '@virq/core';

/** 16550 UART register offsets and bits (the subset the guest's 8250 driver uses here). */
export const UART = {
  THR: 0, // write: transmit holding register
  RBR: 0, // read: receive buffer
  IER: 1,
  IIR: 2, // read: interrupt identification
  FCR: 2, // write: FIFO control
  LCR: 3,
  MCR: 4,
  LSR: 5,
  IER_THRI: 0x02,
  IIR_NO_INT: 0x01,
  IIR_THRI: 0x02,
  /** IIR bits 7:6, both set while the FIFOs are enabled (FCR bit 0). */
  IIR_FE: 0xc0,
  FCR_FE: 0x01,
  LSR_THRE: 0x20,
  LSR_TEMT: 0x40,
  MCR_OUT2: 0x08,
} as const;

/** The IRQ output the UART drives (QEMU's qemu_irq: raise/lower). */
export interface SerialIrq {
  raise(caller?: string): void;
  lower(caller?: string): void;
}

/**
 * A 16550A UART as QEMU's hw/char/serial.c behaves for transmit interrupts:
 * - a THR write clears `thr_ipending` and calls `serial_update_irq` (the line drops), then
 *   `serial_xmit` sends the byte at once (no backend flow control), finds THR empty, sets
 *   `thr_ipending` and calls `serial_update_irq` again (the line rises: a new edge per byte);
 * - an IER write that *changes* THRI sets `thr_ipending` when THRI is now on (THR is always
 *   empty here) and clears it when off; only a change calls `serial_update_irq` — F5's origin,
 *   `serial_ioport_write` → `serial_update_irq` → `qemu_irq_raise` (seed 000: addr=1 val=2);
 * - reading IIR while THRI is the reported source clears it (`serial_ioport_read` →
 *   `serial_update_irq` → the line drops);
 * - IIR bits 7:6 read as set only while FCR enabled the FIFOs.
 */
export class Serial16550 {
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private thrIpending = false;
  private fifoEnabled = false;
  /** Bytes transmitted. */
  readonly transmitted: number[] = [];
  level = false;

  constructor(
    readonly name: string,
    readonly base: number,
    private readonly irq: SerialIrq,
    private readonly trace: TraceChannel | undefined,
  ) {}

  claims(port: number): boolean {
    return port >= this.base && port < this.base + 8;
  }

  ioWrite(port: number, value: number): void {
    const off = port - this.base;
    if (this.trace?.on) this.trace.emit('serial.write', 'serial_ioport_write', 'memory_region_write_accessor', { addr: off, val: value & 0xff });
    switch (off) {
      case UART.THR:
        if (this.lcr & 0x80) return; // DLAB: divisor latch
        this.thrIpending = false;
        this.update('serial_ioport_write');
        // serial_xmit: the byte leaves at once and THR is empty again.
        this.transmitted.push(value & 0xff);
        this.thrIpending = true;
        this.update('serial_xmit');
        return;
      case UART.IER: {
        if (this.lcr & 0x80) return;
        const changed = (this.ier ^ value) & 0x0f;
        this.ier = value & 0x0f;
        // QEMU: turning THRI on with LSR.THRE set raises it even if an IIR read had cleared it.
        if (changed & UART.IER_THRI) this.thrIpending = (this.ier & UART.IER_THRI) !== 0;
        if (changed) this.update('serial_ioport_write');
        return;
      }
      case UART.FCR:
        this.fifoEnabled = (value & UART.FCR_FE) !== 0;
        return;
      case UART.LCR:
        this.lcr = value & 0xff;
        return;
      case UART.MCR:
        this.mcr = value & 0x1f;
        return;
      default:
        return;
    }
  }

  ioRead(port: number): number {
    const off = port - this.base;
    switch (off) {
      case UART.IIR: {
        const iir = this.iir();
        if (iir === UART.IIR_THRI) {
          this.thrIpending = false;
          this.update('serial_ioport_read');
        }
        return iir | (this.fifoEnabled ? UART.IIR_FE : 0);
      }
      case UART.IER:
        return this.ier;
      case UART.LCR:
        return this.lcr;
      case UART.MCR:
        return this.mcr;
      case UART.LSR:
        return UART.LSR_THRE | UART.LSR_TEMT;
      default:
        return 0;
    }
  }

  private iir(): number {
    return this.ier & UART.IER_THRI && this.thrIpending ? UART.IIR_THRI : UART.IIR_NO_INT;
  }

  /** serial_update_irq, called from `caller`. */
  private update(caller: 'serial_ioport_write' | 'serial_ioport_read' | 'serial_xmit'): void {
    if (this.trace?.on) this.trace.emit('serial.update', 'serial_update_irq', caller, { iir: this.iir() });
    const want = this.iir() !== UART.IIR_NO_INT;
    if (want === this.level) return;
    this.level = want;
    if (want) this.irq.raise('serial_update_irq');
    else this.irq.lower('serial_update_irq');
  }
}
