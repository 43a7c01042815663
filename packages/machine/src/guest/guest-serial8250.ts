import { UART } from '../devices/serial-16550.js';

/** How the guest's 8250 driver reaches the port's registers (each access an exit to QEMU). */
export interface Serial8250Registers {
  /** A read whose value the code needs now; `fn` is the driver function making it (for the trace). */
  read(offset: number, fn: string): number;
  /** A write; it reaches QEMU when its exit is handled. */
  write(offset: number, value: number, fn: string): void;
}

/** serial8250_rx_chars takes at most this many characters per call. */
const RX_LIMIT = 256;
/** tx_loadsz of a 16550A: characters written to THR per THRE interrupt. */
const TX_LOADSZ = 16;
/** serial8250_interrupt's PASS_LIMIT */
const PASS_LIMIT = 512;

/**
 * The guest's Linux 8250 driver for one port (16550A, no DMA):
 * - transmit: a tty write fills the transmit buffer and serial8250_start_tx sets IER.THRI (one
 *   IER write — QEMU raises THRI at once, THR being empty) unless it is already on; the
 *   characters go out from the THRI interrupt, up to tx_loadsz (16) THR writes a time, and once
 *   the buffer is empty __stop_tx clears THRI again (another IER write);
 * - the interrupt: serial8250_interrupt runs the port's handler until a pass finds nothing
 *   (with one port on the IRQ: every handled interrupt makes a second pass, one more IIR read);
 *   each pass is serial8250_default_handle_irq → serial8250_handle_irq: IIR; nothing pending →
 *   done; LSR; received data or break → serial8250_rx_chars (serial8250_read_char reads RBR
 *   when LSR.DR is set; LSR again while DR or BI, at most 256); serial8250_modem_status (MSR);
 *   THR empty with THRI on → serial8250_tx_chars.
 */
export class GuestSerial8250 {
  /** Characters pushed to the tty layer. */
  readonly received: number[] = [];
  /** Handler passes whose IIR said nothing was pending (serial8250_handle_irq returned 0). */
  idle = 0;
  /** serial8250_interrupt runs (one per interrupt taken). */
  runs = 0;
  /** serial8250_interrupt runs that found nothing at all (IRQ_NONE). */
  unhandled = 0;
  /** up->ier: the driver's copy of IER. */
  private ier: number;
  /** The tty's transmit buffer. */
  private readonly xmit: number[] = [];

  constructor(
    private readonly regs: Serial8250Registers,
    ier: number,
  ) {
    this.ier = ier;
  }

  /** Characters waiting in the transmit buffer. */
  get pendingTx(): number {
    return this.xmit.length;
  }

  /** A tty write: uart_write → __uart_start → serial8250_start_tx. */
  write(bytes: readonly number[]): void {
    for (const b of bytes) this.xmit.push(b & 0xff);
    // __start_tx → serial8250_set_THRI
    if (this.ier & UART.IER_THRI) return;
    this.ier |= UART.IER_THRI;
    this.regs.write(UART.IER, this.ier, 'serial8250_start_tx');
  }

  /** serial8250_interrupt for the IRQ this one port is on; returns IRQ_HANDLED (true) or IRQ_NONE. */
  interrupt(): boolean {
    this.runs++;
    let handled = false;
    for (let pass = 0; pass <= PASS_LIMIT && this.handleIrq(); pass++) handled = true;
    if (!handled) this.unhandled++;
    return handled;
  }

  /** serial8250_default_handle_irq → serial8250_handle_irq; returns whether the port had something pending. */
  private handleIrq(): boolean {
    const r = this.regs;
    const iir = r.read(UART.IIR, 'serial8250_default_handle_irq');
    if (iir & UART.IIR_NO_INT) {
      this.idle++;
      return false;
    }
    let lsr = r.read(UART.LSR, 'serial8250_handle_irq');
    if (lsr & (UART.LSR_DR | UART.LSR_BI)) lsr = this.rxChars(lsr);
    r.read(UART.MSR, 'serial8250_modem_status');
    if (lsr & UART.LSR_THRE && this.ier & UART.IER_THRI) this.txChars();
    return true;
  }

  /** serial8250_rx_chars: returns the last LSR read. */
  private rxChars(first: number): number {
    const r = this.regs;
    let lsr = first;
    let max = RX_LIMIT;
    do {
      // serial8250_read_char: RBR only when there is data (a break alone reads nothing).
      if (lsr & UART.LSR_DR) this.received.push(r.read(UART.RBR, 'serial8250_read_char'));
      if (--max === 0) break;
      lsr = r.read(UART.LSR, 'serial8250_rx_chars');
    } while (lsr & (UART.LSR_DR | UART.LSR_BI));
    return lsr;
  }

  /** serial8250_tx_chars */
  private txChars(): void {
    for (let n = 0; n < TX_LOADSZ && this.xmit.length > 0; n++) this.regs.write(UART.THR, this.xmit.shift()!, 'serial8250_tx_chars');
    if (this.xmit.length === 0) this.stopTx();
  }

  /** __stop_tx → serial8250_clear_THRI */
  private stopTx(): void {
    if (!(this.ier & UART.IER_THRI)) return;
    this.ier &= ~UART.IER_THRI;
    this.regs.write(UART.IER, this.ier, '__stop_tx');
  }
}
