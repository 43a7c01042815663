import type { TraceChannel } from '@virq/core';

/**
 * QEMU's `qemu_irq` (hw/core/irq.c): a handler with an opaque and a line number. Devices call
 * `qemu_set_irq` / `qemu_irq_raise` / `qemu_irq_lower` and never know what is behind the
 * line: a userspace 8259, the `gsi_handler` fan-out, or the KVM ioctl forwarders.
 */
export class QemuIrq {
  constructor(
    readonly name: string,
    private readonly handler: (n: number, level: boolean) => void,
    readonly n: number,
    private readonly trace: TraceChannel | undefined,
  ) {}

  /** qemu_set_irq */
  set(level: boolean, caller = 'qemu_irq_raise'): void {
    if (this.trace?.on) this.trace.emit('qemu.qemu_set_irq', 'qemu_set_irq', caller, { irq: this.name, n: this.n, level });
    this.handler(this.n, level);
  }

  /** qemu_irq_raise */
  raise(caller?: string): void {
    if (caller !== undefined && this.trace?.on) this.trace.emit('qemu.qemu_irq_raise', 'qemu_irq_raise', caller, { irq: this.name });
    this.set(true, 'qemu_irq_raise');
  }

  /** qemu_irq_lower */
  lower(caller?: string): void {
    if (caller !== undefined && this.trace?.on) this.trace.emit('qemu.qemu_irq_lower', 'qemu_irq_lower', caller, { irq: this.name });
    this.set(false, 'qemu_irq_lower');
  }

  /** qemu_irq_pulse */
  pulse(caller?: string): void {
    this.raise(caller);
    this.lower(caller);
  }
}
