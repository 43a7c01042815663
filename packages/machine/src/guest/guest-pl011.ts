import type { TraceChannel } from '@virq/core';
import { PL011 } from '../devices/pl011.js';

/** How the guest reaches the UART's registers (each access a data abort to QEMU). */
export interface Pl011Registers {
  /** A read whose value the code needs now. */
  read(offset: number): number;
  write(offset: number, value: number): void;
}

const IMSC_RXIM = 1 << 4;
const IMSC_TXIM = 1 << 5;
const IMSC_RTIM = 1 << 6;
const INT_MODEM = 0xf; // RIMIS | CTSMIS | DCDMIS | DSRMIS
/** OE | BE | PE | FE | RT | RX: what pl011_hwinit clears. */
const ICR_STARTUP = (1 << 10) | (1 << 9) | (1 << 8) | (1 << 7) | (1 << 6) | (1 << 4);
const CR_UARTEN = 1 << 0;
const CR_TXE = 1 << 8;
const CR_RXE = 1 << 9;
const CR_DTR = 1 << 10;
const CR_RTS = 1 << 11;
/** The virt board's fixed "clk24mhz" apb/uart clock. */
const UARTCLK_HZ = 24_000_000;
/** AMBA_ISR_PASS_LIMIT */
const PASS_LIMIT = 256;
/** pl011_fifo_to_tty takes at most this many characters per call. */
const RX_LIMIT = 256;

/**
 * The guest's Linux amba-pl011 driver, PIO only (the virt board gives the UART no DMA channels):
 * - startup (pl011_startup: hwinit clears the interrupts, IMSC = RTIM|RXIM, IFLS, CR enables
 *   the UART, LCR_H turns the FIFOs on);
 * - transmit (`write` → uart_write → __uart_start → pl011_start_tx → pl011_start_tx_pio →
 *   pl011_tx_chars(from_irq = false)): FR read, DR write per character while TXFF is clear —
 *   on QEMU it never is, so the whole buffer goes out — then pl011_stop_tx clears TXIM (an IMSC
 *   write) and the transmit interrupt is never enabled;
 * - the interrupt handler (pl011_int): RIS & im; per pass an ICR write of the status without
 *   TX/RT/RX, pl011_rx_chars (FR read, DR read … until RXFE), pl011_tx_chars(from_irq) if TX,
 *   RIS read again, at most AMBA_ISR_PASS_LIMIT passes.
 */
export class GuestPl011 {
  /** uap->im: the driver's copy of IMSC. */
  private im = 0;
  /** The tty's transmit buffer (uart_state's xmit FIFO). */
  private readonly xmit: number[] = [];
  /** Characters pushed to the tty layer (tty_flip_buffer_push). */
  readonly received: number[] = [];
  /** pl011_int invocations that found status (IRQ_HANDLED). */
  handled = 0;
  /** pl011_int invocations that found nothing (IRQ_NONE). */
  spurious = 0;
  private readonly fifosize = 16;

  constructor(
    private readonly regs: Pl011Registers,
    private readonly trace: TraceChannel | undefined,
  ) {}

  private emit(fn: string, caller: string, args: Record<string, number | string | boolean> = {}): void {
    if (this.trace?.on) this.trace.emit('guest.serial', fn, caller, args);
  }

  /** pl011_startup → pl011_hwinit, pl011_allocate_irq, pl011_enable_interrupts; pl011_set_termios at 115200 8N1; pl011_set_mctrl. */
  startup(): void {
    const r = this.regs;
    r.write(PL011.ICR, ICR_STARTUP);
    this.im = r.read(PL011.IMSC);
    r.write(PL011.IMSC, IMSC_RTIM | IMSC_RXIM);
    r.write(PL011.IMSC, this.im);
    r.write(PL011.IFLS, 0x12); // RX 4/8, TX 4/8
    // Keep RTS/DTR, enable the UART, transmitter and receiver.
    r.write(PL011.CR, (r.read(PL011.CR) & (CR_RTS | CR_DTR)) | CR_UARTEN | CR_TXE | CR_RXE);
    r.read(PL011.FR);
    // pl011_enable_interrupts: clear RX/RT, drain what is already there, then unmask them.
    r.write(PL011.ICR, IMSC_RTIM | IMSC_RXIM);
    for (let i = 0; i < this.fifosize * 2; i++) {
      if (r.read(PL011.FR) & PL011.FR_RXFE) break;
      r.read(PL011.DR);
    }
    this.im = IMSC_RTIM | IMSC_RXIM;
    r.write(PL011.IMSC, this.im);
    // pl011_set_termios: the divisor for 115200 from the 24 MHz UARTCLK QEMU's virt gives it
    // (quot = 4 × 24e6 / 115200, rounded: 833 → FBRD 1, IBRD 13), then the frame, 8 bits with
    // FIFOs, then CR back as it was.
    const cr = r.read(PL011.CR);
    const quot = Math.round((4 * UARTCLK_HZ) / 115200);
    r.write(PL011.FBRD, quot & 0x3f);
    r.write(PL011.IBRD, quot >> 6);
    r.write(PL011.LCR_H, 0x70);
    r.write(PL011.CR, cr);
    // The tty's open raises DTR and RTS (uart_port_dtr_rts → pl011_set_mctrl).
    r.write(PL011.CR, r.read(PL011.CR) | CR_RTS | CR_DTR);
  }

  /** A write to the tty: the characters join the transmit buffer and __uart_start starts transmission. */
  write(bytes: readonly number[]): void {
    for (const b of bytes) this.xmit.push(b & 0xff);
    this.emit('pl011_start_tx', '__uart_start', { pending: this.xmit.length });
    // pl011_start_tx_pio: send what fits now; only if some is left does TX get its interrupt.
    if (this.txChars(false, 'pl011_start_tx')) {
      this.im |= IMSC_TXIM;
      this.regs.write(PL011.IMSC, this.im);
    }
  }

  /** Characters waiting in the transmit buffer. */
  get pendingTx(): number {
    return this.xmit.length;
  }

  /** pl011_int. Returns whether the interrupt was the UART's (IRQ_HANDLED). */
  interrupt(): boolean {
    const r = this.regs;
    this.emit('pl011_int', '__handle_irq_event_percpu');
    let status = r.read(PL011.RIS) & this.im;
    if (status === 0) {
      this.spurious++;
      return false;
    }
    let passes = PASS_LIMIT;
    do {
      r.write(PL011.ICR, status & ~(PL011.INT_TX | PL011.INT_RT | PL011.INT_RX));
      if (status & (PL011.INT_RT | PL011.INT_RX)) this.rxChars();
      if (status & INT_MODEM) r.read(PL011.FR); // pl011_modem_status
      if (status & PL011.INT_TX) this.txChars(true, 'pl011_int');
      if (passes-- === 0) break;
      status = r.read(PL011.RIS) & this.im;
    } while (status !== 0);
    this.handled++;
    return true;
  }

  /** pl011_rx_chars → pl011_fifo_to_tty: FR, DR, FR … until the FIFO reads empty. */
  private rxChars(): void {
    const r = this.regs;
    this.emit('pl011_rx_chars', 'pl011_int');
    let taken = 0;
    for (; taken < RX_LIMIT; taken++) {
      if (r.read(PL011.FR) & PL011.FR_RXFE) break;
      this.received.push(r.read(PL011.DR) & 0xff);
    }
    this.emit('tty_flip_buffer_push', 'pl011_rx_chars', { chars: taken });
  }

  /** pl011_tx_chars: true while characters are left (the caller keeps TXIM on). */
  private txChars(fromIrq: boolean, caller: string): boolean {
    const r = this.regs;
    this.emit('pl011_tx_chars', caller, { fromIrq, pending: this.xmit.length });
    if (this.xmit.length === 0) {
      this.stopTx();
      return false;
    }
    // From the interrupt at most half a FIFO, without looking at FR; otherwise while TXFF is clear.
    let budget = this.fifosize >> 1;
    while (this.xmit.length > 0) {
      if (fromIrq && budget-- === 0) break;
      if (!fromIrq && r.read(PL011.FR) & PL011.FR_TXFF) break;
      r.write(PL011.DR, this.xmit.shift()!);
    }
    if (this.xmit.length === 0) {
      this.stopTx();
      return false;
    }
    return true;
  }

  /** pl011_stop_tx: TXIM off. */
  private stopTx(): void {
    this.emit('pl011_stop_tx', 'pl011_tx_chars');
    this.im &= ~IMSC_TXIM;
    this.regs.write(PL011.IMSC, this.im);
  }
}
