import type { TraceChannel } from '@virq/core';

/** 16550 UART register offsets and bits (the subset the guest's 8250 driver uses here). */
export const UART = {
  THR: 0, // write: transmit holding register
  RBR: 0, // read: receive buffer
  IER: 1,
  IIR: 2, // read: interrupt identification
  LCR: 3,
  MCR: 4,
  LSR: 5,
  IER_THRI: 0x02,
  IIR_NO_INT: 0x01,
  IIR_THRI: 0x02,
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
 * A 16550A UART as QEMU's hw/char/serial.c behaves for transmit interrupts: a THR write
 * transmits at once (no backend flow control) and sets `thr_ipending`; `serial_update_irq`
 * raises the line while IER.THRI and THR-empty are pending and lowers it otherwise; reading
 * IIR when THRI is the reported source clears it. That is F5's origin:
 * `serial_ioport_write` → `serial_update_irq` → `qemu_irq_raise`.
 */
export class Serial16550 {
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private thrIpending = false;
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
        this.transmitted.push(value & 0xff);
        this.thrIpending = true; // serial_xmit: the byte left at once, THR is empty again
        this.update();
        return;
      case UART.IER:
        if (this.lcr & 0x80) return;
        this.ier = value & 0x0f;
        // Enabling THRI with THR empty raises it (QEMU: "thr_ipending = 1" on IER THRI set).
        if (this.ier & UART.IER_THRI) this.thrIpending = true;
        this.update();
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
          this.update();
        }
        return iir | 0xc0;
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

  /** serial_update_irq */
  private update(): void {
    if (this.trace?.on) this.trace.emit('serial.update', 'serial_update_irq', 'serial_ioport_write', { iir: this.iir() });
    const want = this.iir() !== UART.IIR_NO_INT;
    if (want === this.level) return;
    this.level = want;
    if (want) this.irq.raise('serial_update_irq');
    else this.irq.lower('serial_update_irq');
  }
}
