import type { TraceChannel } from '@virq/core';
import type { SerialIrq, SerialTimer } from './serial-16550.js';

/** PL011 register offsets (bytes) and bits (ARM PrimeCell UART r1p5, as QEMU's hw/char/pl011.c implements it). */
export const PL011 = {
  DR: 0x000,
  RSR: 0x004, // read: receive status; write: error clear (ECR)
  FR: 0x018,
  ILPR: 0x020,
  IBRD: 0x024,
  FBRD: 0x028,
  LCR_H: 0x02c,
  CR: 0x030,
  IFLS: 0x034,
  IMSC: 0x038,
  RIS: 0x03c,
  MIS: 0x040,
  ICR: 0x044,
  DMACR: 0x048,
  /** PeriphID0–3 then PCellID0–3, one byte per word. */
  ID: 0xfe0,
  FR_RXFE: 0x10,
  FR_TXFF: 0x20,
  FR_RXFF: 0x40,
  FR_TXFE: 0x80,
  LCR_H_FEN: 0x10,
  INT_RX: 1 << 4,
  INT_TX: 1 << 5,
  INT_RT: 1 << 6,
  /** The MMIO window the board maps (QEMU virt: 0x1000 bytes at 0x0900_0000). */
  SIZE: 0x1000,
} as const;

/** "pl011" identification bytes: part 0x011, designer ARM, revision 1; then the PrimeCell ID. */
const PL011_ID = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1] as const;
/** UARTINTR, the combined output QEMU's virt board connects (sysbus IRQ 0): every source. */
const INTR_MASK = 0x7ff;
const REG_NAMES: Readonly<Record<number, string>> = {
  0x000: 'DR', 0x004: 'RSR', 0x018: 'FR', 0x020: 'ILPR', 0x024: 'IBRD', 0x028: 'FBRD', 0x02c: 'LCR_H',
  0x030: 'CR', 0x034: 'IFLS', 0x038: 'IMSC', 0x03c: 'RIS', 0x040: 'MIS', 0x044: 'ICR', 0x048: 'DMACR',
};

/**
 * An ARM PL011 UART as QEMU 7.2's hw/char/pl011.c behaves:
 * - a DR write sends the byte at once (the chardev write is synchronous) and sets INT_TX
 *   unconditionally; TXFF never sets, so FR reads TXFE|RXFE (0x90) when idle; INT_TX is only
 *   cleared by an ICR write;
 * - received bytes go into a 16-entry ring (read_pos wraps at 16); RXFF sets when it holds 16,
 *   or any byte while LCR_H.FEN is clear; the read trigger is always 1 (QEMU's IFLS-based
 *   trigger is compiled out), so INT_RX rises with the first byte (pl011_put_fifo calls
 *   pl011_update only then) and falls when a DR read empties the FIFO; RT and the error
 *   interrupts are never raised;
 * - toggling LCR_H.FEN zeroes read_count and read_pos and nothing else: FR keeps its flags
 *   (7.2 behaviour — a DR read after dropping data returns a stale byte);
 * - IMSC writes change the mask, ICR writes clear raw bits, RIS/MIS read raw/masked status;
 * - `pl011_update` sets the combined output to `(int_level & int_enabled) != 0` on every call
 *   (one KVM_IRQ_LINE each time under KVM) — the only output the virt board wires (SPI 1).
 * The chardev offers one byte per main-loop iteration while `pl011_can_receive` allows (a free
 * slot), and again after `qemu_chr_fe_accept_input` (a DR read): nothing sent is dropped.
 */
export class Pl011 {
  private flags: number = PL011.FR_TXFE | PL011.FR_RXFE;
  private lcr = 0;
  private rsr = 0;
  private cr = 0x300;
  private dmacr = 0;
  private intEnabled = 0;
  private intLevel = 0;
  private ilpr = 0;
  private ibrd = 0;
  private fbrd = 0;
  private ifl = 0x12;
  private readonly fifo = new Uint16Array(16);
  private readPos = 0;
  private readCount = 0;
  private readonly readTrigger = 1;
  /** Bytes the chardev holds until the FIFO has room. */
  private readonly pending: number[] = [];
  /** Bytes transmitted (DR writes). */
  readonly transmitted: number[] = [];
  /** Bytes the guest read from DR. */
  readonly received: number[] = [];
  /** The combined interrupt output as last driven. */
  level = false;

  private acceptScheduled = false;

  constructor(
    readonly name: string,
    private readonly irq: SerialIrq,
    private readonly trace: TraceChannel | undefined,
    /** QEMU's main loop (with none, the chardev offers everything that fits at once). */
    private readonly mainLoop?: SerialTimer,
  ) {}

  /** Bytes received and not yet read by the guest (in the FIFO or held by the chardev). */
  get unread(): number {
    return this.readCount + this.pending.length;
  }

  /** Interrupt sources raised and enabled (UARTMIS). */
  get maskedStatus(): number {
    return this.intLevel & this.intEnabled;
  }

  private fifoDepth(): number {
    return this.lcr & PL011.LCR_H_FEN ? 16 : 1;
  }

  /** pl011_can_receive */
  private canReceive(): boolean {
    return this.readCount < this.fifoDepth();
  }

  /** pl011_read, through memory_region_read_accessor. */
  mmioRead(offset: number): number {
    let v: number;
    switch (offset) {
      case PL011.DR: {
        this.flags &= ~PL011.FR_RXFF;
        const c = this.fifo[this.readPos]!;
        if (this.readCount > 0) {
          this.readCount--;
          if (++this.readPos === 16) this.readPos = 0;
          this.received.push(c & 0xff);
        }
        if (this.readCount === 0) this.flags |= PL011.FR_RXFE;
        if (this.readCount === this.readTrigger - 1) this.intLevel &= ~PL011.INT_RX;
        this.rsr = c >> 8;
        this.update('pl011_read');
        this.emitRead(offset, c);
        // qemu_chr_fe_accept_input: the chardev offers more on the main loop's next iteration.
        this.scheduleAccept();
        return c;
      }
      case PL011.RSR:
        v = this.rsr;
        break;
      case PL011.FR:
        v = this.flags;
        break;
      case PL011.ILPR:
        v = this.ilpr;
        break;
      case PL011.IBRD:
        v = this.ibrd;
        break;
      case PL011.FBRD:
        v = this.fbrd;
        break;
      case PL011.LCR_H:
        v = this.lcr;
        break;
      case PL011.CR:
        v = this.cr;
        break;
      case PL011.IFLS:
        v = this.ifl;
        break;
      case PL011.IMSC:
        v = this.intEnabled;
        break;
      case PL011.RIS:
        v = this.intLevel;
        break;
      case PL011.MIS:
        v = this.intLevel & this.intEnabled;
        break;
      case PL011.DMACR:
        v = this.dmacr;
        break;
      default:
        // The ID words; anything else is a bad offset QEMU logs and reads as 0.
        v = offset >= PL011.ID && offset < PL011.ID + 32 && (offset & 3) === 0 ? PL011_ID[(offset - PL011.ID) >> 2]! : 0;
    }
    this.emitRead(offset, v);
    return v;
  }

  /** pl011_write, through memory_region_write_accessor. */
  mmioWrite(offset: number, value: number): void {
    value >>>= 0;
    if (this.trace?.on) this.trace.emit('serial.write', 'pl011_write', 'memory_region_write_accessor', { addr: offset, value, reg: REG_NAMES[offset] ?? 'unknown' });
    switch (offset) {
      case PL011.DR:
        // qemu_chr_fe_write_all: the byte leaves at once.
        this.transmitted.push(value & 0xff);
        this.intLevel |= PL011.INT_TX;
        this.update('pl011_write');
        return;
      case PL011.RSR:
        this.rsr = 0;
        return;
      case PL011.ILPR:
        this.ilpr = value;
        return;
      case PL011.IBRD:
        this.ibrd = value;
        return;
      case PL011.FBRD:
        this.fbrd = value;
        return;
      case PL011.LCR_H:
        // Switching the FIFOs on or off forgets what they held (flags untouched, as in 7.2).
        if ((this.lcr ^ value) & PL011.LCR_H_FEN) {
          this.readCount = 0;
          this.readPos = 0;
        }
        this.lcr = value;
        this.scheduleAccept();
        return;
      case PL011.CR:
        this.cr = value;
        return;
      case PL011.IFLS:
        this.ifl = value;
        return;
      case PL011.IMSC:
        this.intEnabled = value;
        this.update('pl011_write');
        return;
      case PL011.ICR:
        this.intLevel &= ~value;
        this.update('pl011_write');
        return;
      case PL011.DMACR:
        this.dmacr = value;
        return;
      default:
        return; // FR and read-only or unknown offsets: ignored
    }
  }

  /**
   * Bytes from the host side, called on the main loop (the chardev's fd handler): one byte now
   * if the FIFO has a slot (qemu_chr_be_write → pl011_receive), the rest one per later
   * main-loop iteration.
   */
  receive(bytes: readonly number[]): void {
    for (const b of bytes) this.pending.push(b & 0xff);
    this.acceptOne();
  }

  /** One main-loop dispatch of the chardev: a byte if pl011_can_receive allows, then the next iteration. */
  private acceptOne(): void {
    if (this.pending.length === 0 || !this.canReceive()) return;
    const c = this.pending.shift()!;
    if (this.trace?.on) this.trace.emit('serial.receive', 'pl011_receive', 'qemu_chr_be_write_impl', { value: c });
    this.putFifo(c);
    if (this.mainLoop === undefined) this.acceptOne();
    else this.scheduleAccept();
  }

  private scheduleAccept(): void {
    if (this.pending.length === 0 || !this.canReceive()) return;
    if (this.mainLoop === undefined) {
      this.acceptOne();
      return;
    }
    if (this.acceptScheduled) return;
    this.acceptScheduled = true;
    this.mainLoop.after(0, () => {
      this.acceptScheduled = false;
      this.acceptOne();
    });
  }

  /** pl011_put_fifo: store, update FR, raise INT_RX at the read trigger (the only pl011_update here). */
  private putFifo(c: number): void {
    let slot = this.readPos + this.readCount;
    if (slot >= 16) slot -= 16;
    this.fifo[slot] = c;
    this.readCount++;
    this.flags &= ~PL011.FR_RXFE;
    if (this.trace?.on) this.trace.emit('serial.fifo', 'pl011_put_fifo', 'pl011_receive', { value: c, readCount: this.readCount });
    if (!(this.lcr & PL011.LCR_H_FEN) || this.readCount === 16) this.flags |= PL011.FR_RXFF;
    if (this.readCount === this.readTrigger) {
      this.intLevel |= PL011.INT_RX;
      this.update('pl011_put_fifo');
    }
  }

  /** pl011_update: drive the combined output from the enabled raw status, on every call. */
  private update(caller: 'pl011_read' | 'pl011_write' | 'pl011_put_fifo'): void {
    this.level = (this.intLevel & this.intEnabled & INTR_MASK) !== 0;
    if (this.trace?.on) this.trace.emit('serial.update', 'pl011_update', caller, { level: this.level ? 1 : 0, ris: this.intLevel, imsc: this.intEnabled });
    if (this.level) this.irq.raise('pl011_update');
    else this.irq.lower('pl011_update');
  }

  private emitRead(offset: number, value: number): void {
    if (this.trace?.on) this.trace.emit('serial.read', 'pl011_read', 'memory_region_read_accessor', { addr: offset, value, reg: REG_NAMES[offset] ?? 'unknown' });
  }
}
