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
  MSR: 6,
  SCR: 7,
  IER_RDI: 0x01,
  IER_THRI: 0x02,
  IER_RLSI: 0x04,
  IIR_NO_INT: 0x01,
  IIR_THRI: 0x02,
  IIR_RDI: 0x04,
  /** Character timeout: the FIFO holds data nobody read for four character times. */
  IIR_CTI: 0x0c,
  /** IIR bits 7:6, both set while the FIFOs are enabled (FCR bit 0). */
  IIR_FE: 0xc0,
  FCR_FE: 0x01,
  FCR_RFR: 0x02,
  FCR_XFR: 0x04,
  LSR_DR: 0x01,
  LSR_OE: 0x02,
  LSR_BI: 0x10,
  LSR_THRE: 0x20,
  LSR_TEMT: 0x40,
  MCR_OUT2: 0x08,
} as const;

/**
 * QEMU's main loop as a UART sees it: virtual-clock timers (the 16550's fifo_timeout_timer) and
 * later iterations (a chardev re-offers input on the next iteration after
 * qemu_chr_fe_accept_input, not inside the guest's register access).
 */
export interface SerialTimer {
  /** Calls `fn` on the main loop in `delayNs` (0: its next iteration); returns a cancel function. */
  after(delayNs: number, fn: () => void): () => void;
}

/** UART_FIFO_LENGTH */
const FIFO_LENGTH = 16;
/** isa-serial's baudbase */
const BAUDBASE = 115200;
/** FCR bits 7:6 → receive trigger level (recv_fifo_itl). */
const FIFO_ITL = [1, 4, 8, 14] as const;

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
 * Receive (serial_receive1, from the chardev): without FIFOs the byte goes to RBR; with them
 * into the 16-byte FIFO, and the character-timeout timer is armed for four character times
 * (serial_update_parameters' char_transmit_time: a float speed, baudbase / divisor); LSR.DR is
 * set. serial_update_irq's priority: line status, character timeout, received data (at the
 * FIFO's trigger level, or any byte without FIFOs), THR empty — and, as QEMU's, it drives the
 * line on every call (qemu_irq_raise / qemu_irq_lower each time: each one a KVM_IRQ_LINE with
 * the in-kernel irqchip). An RBR read pops, re-arms the timer while data is left and clears the
 * timeout. The chardev reads at most what serial_can_receive allows, one read per main-loop
 * iteration: with FIFOs `itl - count` while the FIFO holds no more than the trigger level (so
 * nothing once it is reached, until the guest reads), else one; without FIFOs one byte while RBR
 * is empty. Bytes wait in the chardev meanwhile — nothing sent to the guest is dropped. (With
 * no main loop given, the chardev delivers at once.) Loopback (MCR.LOOP) is not modelled.
 */
export class Serial16550 {
  private ier = 0;
  private lcr = 0;
  private mcr: number = UART.MCR_OUT2;
  private scr = 0;
  private thrIpending = false;
  private fifoEnabled = false;
  private lsrDr = false;
  private lsrErr = 0;
  private rbr = 0;
  private readonly recvFifo: number[] = [];
  private itl = 1;
  private timeoutIpending = false;
  private cancelTimeout: (() => void) | undefined;
  private divider = 12;
  /** serial_reset's integer (NANOSECONDS_PER_SECOND / 9600) * 10; serial_update_parameters recomputes it in float. */
  private charTransmitNs = Math.trunc(1e9 / 9600) * 10;
  private acceptScheduled = false;
  /** Bytes the chardev holds until serial_can_receive allows them. */
  private readonly pending: number[] = [];
  /** Bytes the guest read from RBR. */
  readonly received: number[] = [];
  /** Bytes transmitted. */
  readonly transmitted: number[] = [];
  /** The line as last driven. */
  level = false;

  constructor(
    readonly name: string,
    readonly base: number,
    private readonly irq: SerialIrq,
    private readonly trace: TraceChannel | undefined,
    private readonly timer?: SerialTimer,
  ) {}

  /** Bytes received and not yet read by the guest. */
  get unread(): number {
    return (this.fifoEnabled ? this.recvFifo.length : this.lsrDr ? 1 : 0) + this.pending.length;
  }

  claims(port: number): boolean {
    return port >= this.base && port < this.base + 8;
  }

  ioWrite(port: number, value: number): void {
    const off = port - this.base;
    if (this.trace?.on) this.trace.emit('serial.write', 'serial_ioport_write', 'memory_region_write_accessor', { addr: off, val: value & 0xff });
    switch (off) {
      case UART.THR:
        if (this.lcr & 0x80) {
          this.divider = (this.divider & 0xff00) | (value & 0xff); // DLAB: divisor latch low
          this.updateParameters();
          return;
        }
        this.thrIpending = false;
        this.update('serial_ioport_write');
        // serial_xmit: THR is empty again (THRI pending, serial_update_irq), then the byte goes
        // to the chardev.
        this.thrIpending = true;
        this.update('serial_xmit');
        this.transmitted.push(value & 0xff);
        return;
      case UART.IER: {
        if (this.lcr & 0x80) {
          this.divider = (this.divider & 0xff) | ((value & 0xff) << 8);
          this.updateParameters();
          return;
        }
        const changed = (this.ier ^ value) & 0x0f;
        this.ier = value & 0x0f;
        // QEMU: turning THRI on with LSR.THRE set raises it even if an IIR read had cleared it.
        if (changed & UART.IER_THRI) this.thrIpending = (this.ier & UART.IER_THRI) !== 0;
        if (changed) this.update('serial_ioport_write');
        return;
      }
      case UART.FCR: {
        // Switching the FIFOs on or off flushes both.
        let v = value & 0xff;
        if ((v ^ (this.fifoEnabled ? UART.FCR_FE : 0)) & UART.FCR_FE) v |= UART.FCR_RFR | UART.FCR_XFR;
        if (v & UART.FCR_RFR) {
          this.lsrDr = false;
          this.lsrErr &= ~UART.LSR_BI;
          this.cancelTimeout?.();
          this.cancelTimeout = undefined;
          this.timeoutIpending = false;
          this.recvFifo.length = 0;
        }
        if (v & UART.FCR_XFR) this.thrIpending = true;
        this.fifoEnabled = (v & UART.FCR_FE) !== 0;
        this.itl = FIFO_ITL[(v >> 6) & 3]!;
        this.update('serial_ioport_write');
        this.scheduleAccept();
        return;
      }
      case UART.LCR:
        this.lcr = value & 0xff;
        this.updateParameters();
        return;
      case UART.MCR:
        this.mcr = value & 0x1f;
        return;
      case UART.SCR:
        this.scr = value & 0xff;
        return;
      default:
        return;
    }
  }

  /** serial_ioport_read (traced as QEMU's serial_read trace point is: after the access, with its value). */
  ioRead(port: number): number {
    const off = port - this.base;
    const v = this.readRegister(off);
    if (this.trace?.on) this.trace.emit('serial.read', 'serial_ioport_read', 'memory_region_read_accessor', { addr: off, val: v });
    return v;
  }

  private readRegister(off: number): number {
    switch (off) {
      case UART.RBR: {
        if (this.lcr & 0x80) return this.divider & 0xff;
        let c: number;
        if (this.fifoEnabled) {
          const had = this.recvFifo.length > 0;
          c = had ? this.recvFifo.shift()! : 0;
          if (had) this.received.push(c);
          if (this.recvFifo.length === 0) {
            this.lsrDr = false;
            this.lsrErr &= ~UART.LSR_BI;
          } else this.armTimeout();
          this.timeoutIpending = false;
        } else {
          c = this.rbr;
          if (this.lsrDr) this.received.push(c);
          this.lsrDr = false;
          this.lsrErr &= ~UART.LSR_BI;
        }
        this.update('serial_ioport_read');
        // qemu_chr_fe_accept_input: the chardev offers more on the main loop's next iteration.
        this.scheduleAccept();
        return c;
      }
      case UART.IIR: {
        const iir = this.iir();
        if (iir === UART.IIR_THRI) {
          this.thrIpending = false;
          this.update('serial_ioport_read');
        }
        return iir | (this.fifoEnabled ? UART.IIR_FE : 0);
      }
      case UART.IER:
        return this.lcr & 0x80 ? (this.divider >> 8) & 0xff : this.ier;
      case UART.LCR:
        return this.lcr;
      case UART.MCR:
        return this.mcr;
      case UART.LSR: {
        const lsr = UART.LSR_THRE | UART.LSR_TEMT | (this.lsrDr ? UART.LSR_DR : 0) | this.lsrErr;
        // Reading LSR clears break and overrun.
        if (this.lsrErr & (UART.LSR_BI | UART.LSR_OE)) {
          this.lsrErr = 0;
          this.update('serial_ioport_read');
        }
        return lsr;
      }
      case UART.MSR:
        return 0xb0; // DCD | DSR | CTS, no deltas: no modem status interrupt
      case UART.SCR:
        return this.scr;
      default:
        return 0;
    }
  }

  /** The interrupt source IIR would report now (no side effects; UART.IIR_NO_INT: none). */
  get pendingSource(): number {
    return this.iir();
  }

  /** serial_update_irq's choice of source, highest priority first. */
  private iir(): number {
    if (this.ier & UART.IER_RLSI && this.lsrErr & (UART.LSR_OE | UART.LSR_BI)) return 0x06;
    if (this.ier & UART.IER_RDI && this.timeoutIpending) return UART.IIR_CTI;
    if (this.ier & UART.IER_RDI && this.lsrDr && (!this.fifoEnabled || this.recvFifo.length >= this.itl)) return UART.IIR_RDI;
    if (this.ier & UART.IER_THRI && this.thrIpending) return UART.IIR_THRI;
    return UART.IIR_NO_INT;
  }

  /** Bytes from the host side (the chardev's fd handler → serial_receive1, as many as serial_can_receive allows). */
  receive(bytes: readonly number[]): void {
    for (const b of bytes) this.pending.push(b & 0xff);
    this.acceptInput();
  }

  /** serial_can_receive: with FIFOs `itl - count` up to the trigger level (0 at it), 1 above it; without, 1 while RBR is empty. */
  private canReceive(): number {
    if (!this.fifoEnabled) return this.lsrDr ? 0 : 1;
    const n = this.recvFifo.length;
    if (n >= FIFO_LENGTH) return 0;
    return n <= this.itl ? this.itl - n : 1;
  }

  /** One main-loop dispatch of the chardev: one read of up to serial_can_receive bytes, then the next iteration. */
  private acceptInput(): void {
    const room = this.canReceive();
    if (this.pending.length === 0 || room === 0) return;
    this.receive1(this.pending.splice(0, room));
    this.scheduleAccept();
  }

  /**
   * The main loop's next iteration polls serial_can_receive again (QEMU re-polls on every
   * iteration; an RBR read also calls qemu_chr_fe_accept_input).
   */
  private scheduleAccept(): void {
    if (this.pending.length === 0 || this.canReceive() === 0) return;
    if (this.timer === undefined) {
      this.acceptInput();
      return;
    }
    if (this.acceptScheduled) return;
    this.acceptScheduled = true;
    this.timer.after(0, () => {
      this.acceptScheduled = false;
      this.acceptInput();
    });
  }

  /** serial_receive1 */
  private receive1(buf: number[]): void {
    if (this.trace?.on) this.trace.emit('serial.receive', 'serial_receive1', 'qemu_chr_be_write_impl', { size: buf.length, value: buf[0]! });
    if (this.fifoEnabled) {
      for (const b of buf) this.recvFifo.push(b);
      this.lsrDr = true;
      this.armTimeout();
    } else {
      if (this.lsrDr) this.lsrErr |= UART.LSR_OE;
      this.rbr = buf[0]!;
      this.lsrDr = true;
    }
    this.update('serial_receive1');
  }

  /** fifo_timeout_timer, four character times from now. */
  private armTimeout(): void {
    if (this.timer === undefined) return;
    this.cancelTimeout?.();
    this.cancelTimeout = this.timer.after(this.charTransmitNs * 4, () => {
      this.cancelTimeout = undefined;
      // fifo_timeout_int
      if (this.recvFifo.length > 0) {
        this.timeoutIpending = true;
        this.update('fifo_timeout_int');
      }
    });
  }

  /**
   * serial_update_parameters: the character time from the divisor and LCR's frame, in QEMU's
   * float arithmetic (a zero divisor gives about 3500 baud), truncated to whole nanoseconds.
   */
  private updateParameters(): void {
    const frame = 1 + (this.lcr & 0x08 ? 1 : 0) + ((this.lcr & 0x03) + 5) + (this.lcr & 0x04 ? 2 : 1);
    const speed = this.divider === 0 ? 3500 : Math.fround(BAUDBASE / this.divider);
    this.charTransmitNs = Math.trunc(Math.fround(Math.fround(1e9 / speed) * frame));
  }

  /** The time one character takes on the line (char_transmit_time), in ns. */
  get charTimeNs(): number {
    return this.charTransmitNs;
  }

  /** serial_update_irq, called from `caller`: recomputes IIR and drives the line, every time. */
  private update(caller: 'serial_ioport_write' | 'serial_ioport_read' | 'serial_xmit' | 'serial_receive1' | 'fifo_timeout_int'): void {
    const iir = this.iir();
    if (this.trace?.on) this.trace.emit('serial.update', 'serial_update_irq', caller, { iir });
    this.level = iir !== UART.IIR_NO_INT;
    if (this.level) this.irq.raise('serial_update_irq');
    else this.irq.lower('serial_update_irq');
  }
}
