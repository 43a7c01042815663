import { UART } from '../devices/serial-16550.js';

/** How the guest's 8250 driver reaches the port's registers (each access an exit to QEMU). */
export interface Serial8250Registers {
  /** A read whose value the code needs now; `fn` is the driver function making it (for the trace). */
  read(offset: number, fn: string): number;
}

/** serial8250_rx_chars takes at most this many characters per call. */
const RX_LIMIT = 256;

/**
 * The guest's Linux 8250 interrupt path for one port (serial8250_default_handle_irq →
 * serial8250_handle_irq): IIR; nothing pending → done; LSR; received data → serial8250_rx_chars
 * (RBR, LSR … while LSR.DR, at most 256); serial8250_modem_status (MSR). The transmit side
 * stays as the machine drives it (THR writes with THRI kept enabled; see the package README).
 */
export class GuestSerial8250 {
  /** Characters pushed to the tty layer. */
  readonly received: number[] = [];
  /** Interrupts whose IIR said nothing was pending (the handler returned 0). */
  idle = 0;

  constructor(private readonly regs: Serial8250Registers) {}

  /** One interrupt; returns whether the port had something pending. */
  interrupt(): boolean {
    const r = this.regs;
    const iir = r.read(UART.IIR, 'serial8250_default_handle_irq');
    if (iir & UART.IIR_NO_INT) {
      this.idle++;
      return false;
    }
    let lsr = r.read(UART.LSR, 'serial8250_handle_irq');
    if (lsr & (UART.LSR_DR | UART.LSR_BI)) {
      for (let n = 0; n < RX_LIMIT; n++) {
        this.received.push(r.read(UART.RBR, 'serial8250_read_char'));
        lsr = r.read(UART.LSR, 'serial8250_rx_chars');
        if (!(lsr & UART.LSR_DR)) break;
      }
    }
    r.read(UART.MSR, 'serial8250_modem_status');
    return true;
  }
}
