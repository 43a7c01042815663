import type { SimContext, Actor } from '@virq/core';
import type { QemuIrq } from '@virq/kvm-irqchip';
import { Serial16550 } from '../devices/serial-16550.js';
import { GuestSerial8250 } from '../guest/guest-serial8250.js';
import type { GuestIrqDomain } from '../guest/irq-domain.js';
import type { CapturedWrite } from '../guest/guest-pci-access.js';
import { mainLoopTimer, onVcpuThread } from '../qemu-thread.js';

/** IER after serial8250_do_startup: received data and line status (UART_IER_RDI | UART_IER_RLSI). */
const IER_AFTER_STARTUP = 0x05;

/** (offset, value) register writes of the bring-up's tail, in order. */
const BRING_UP: ReadonlyArray<readonly [number, number]> = [
  [1, IER_AFTER_STARTUP],
  [3, 0x93],
  [0, 0x01],
  [1, 0x00],
  [3, 0x13],
  [2, 0x01],
  [2, 0x81],
  [4, 0x09],
  [4, 0x0b],
];

export interface IsaSerialWiring {
  readonly ctx: SimContext;
  readonly name: string;
  readonly port: number;
  readonly irq: number;
  /** The ISA IRQ line (QEMU's gsi[irq]). */
  readonly line: QemuIrq;
  readonly mainLoop: Actor;
  readonly irqs: GuestIrqDomain;
  /** The vCPU whose guest runs the driver: its thread and where its register accesses are captured. */
  readonly vcpu: { readonly id: number; readonly thread: Actor; readonly capture: () => { push(op: CapturedWrite): unknown } | undefined };
}

/**
 * A 16550 on the ISA bus (QEMU's isa-serial) with the guest's 8250 driver bound to it: the
 * driver's accesses reach the UART in program order when the guest code makes them (a read's
 * value is needed at once, a write comes before the reads after it) — QEMU's code runs on the
 * vCPU thread, behind the exit — and each access's IO_INSTRUCTION exit follows in program order
 * (the first one before the handler's work). Returns the UART, the driver and the vector the
 * guest gave the IRQ (the caller programs the IOAPIC).
 */
export function attachIsaSerial(w: IsaSerialWiring): { uart: Serial16550; driver: GuestSerial8250; vector: number } {
  const { port, vcpu } = w;
  const sched = w.ctx.scheduler;
  const driver = new GuestSerial8250({
    read: (off, fn) => {
      const v = onVcpuThread(vcpu.thread, () => uart.ioRead(port + off));
      vcpu.capture()?.push({ op: 'pio-read', port: port + off, len: 1, fn, applied: true });
      return v;
    },
    write: (off, value, fn) => {
      onVcpuThread(vcpu.thread, () => uart.ioWrite(port + off, value));
      vcpu.capture()?.push({ op: 'pio-write', port: port + off, len: 1, value, fn, applied: true });
    },
  }, IER_AFTER_STARTUP);
  const vector = w.irqs.allocate(vcpu.id, `${w.name}-irq${w.irq}`, () => void driver.interrupt());
  // serial_update_irq drives the line on every call (qemu_irq_raise / qemu_irq_lower → a
  // KVM_IRQ_LINE each time); a device event starts a latency only when the line rises.
  let high = false;
  const uart = new Serial16550(w.name, port, {
    raise: (caller) => {
      if (!high) w.irqs.raised(vcpu.id, vector, sched.now);
      high = true;
      w.line.raise(caller);
    },
    lower: (caller) => {
      high = false;
      w.line.lower(caller);
    },
  }, w.ctx.trace.channel('serial'), mainLoopTimer(sched, w.mainLoop));
  // The tail of the port's bring-up as the recording shows it (test/golden), which leaves the
  // UART as Linux runs it: serial8250_do_startup's IER (received data, line status; THRI waits
  // for a transmit), serial8250_do_set_termios at 115200 8N1 (LCR with DLAB, divisor 1, LCR —
  // EPAR set, parity off — FIFOs enabled, then FIFOs with trigger 8 as for a 16550A), then
  // serial8250_set_mctrl: DTR|OUT2, DTR|RTS|OUT2.
  for (const [off, v] of BRING_UP) uart.ioWrite(port + off, v);
  return { uart, driver, vector };
}
