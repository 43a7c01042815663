import { armIrqLine, KVM_ARM_IRQ_TYPE_SPI, type ArmVcpu, type ArmVm } from '@virq/arm-gic';
import type { Actor, SimContext } from '@virq/core';
import { Pl011 } from '../devices/pl011.js';
import { GuestPl011 } from '../guest/guest-pl011.js';
import { mainLoopTimer, onVcpuThread } from '../qemu-thread.js';

/** The virt board's PL011 (VIRT_UART: 0x1000 bytes at 0x0900_0000, level-high on SPI 1). */
export const VIRT_UART_BASE = 0x0900_0000;
export const VIRT_UART_SPI = 1;

export interface VirtPl011Wiring {
  readonly ctx: SimContext;
  readonly name: string;
  readonly vm: ArmVm;
  readonly mainLoop: Actor;
  /** The vCPU whose guest runs the driver. */
  readonly vcpu: ArmVcpu;
  /** The UART's line rose (a device event: latency starts for INTID 33). */
  readonly raised: () => void;
}

/**
 * The virt board's PL011 with the guest's amba-pl011 driver bound to it. The probe and
 * pl011_startup run before the run loop owns the guest (no exits); from then on each access
 * reaches QEMU's PL011 in program order when the guest code makes it (QEMU's code runs on the
 * vCPU thread, behind the data abort) and its data abort, 16 bits wide (readw/writew: vendor_arm
 * has no 32-bit access), is taken after the handler's slice. The UART has SPI 1 to itself: each
 * pl011_update is a qemu_set_irq on the GIC's input → kvm_arm_gicv3_set_irq → kvm_arm_gic_set_irq
 * → KVM_IRQ_LINE, changed or not. The caller binds the guest's handler (`driver.interrupt`).
 */
export function attachVirtPl011(w: VirtPl011Wiring): { uart: Pl011; driver: GuestPl011 } {
  const { ctx, vcpu } = w;
  const sched = ctx.scheduler;
  const intid = 32 + VIRT_UART_SPI;
  const t = ctx.trace.channel('qemu');
  let high = false;
  const setIrq = (level: boolean): void => {
    if (t.on) {
      t.emit('qemu.irq', 'qemu_set_irq', 'pl011_update', { spi: VIRT_UART_SPI, level: level ? 1 : 0 });
      t.emit('qemu.kvm_set_irq', 'kvm_set_irq', 'kvm_arm_gic_set_irq', { irq: intid, level: level ? 1 : 0, ioctl: 'KVM_IRQ_LINE' });
    }
    sched.current?.charge(ctx.costs.ns.syscall);
    if (level && !high) w.raised();
    high = level;
    w.vm.irqfd.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_SPI, 0, intid), level);
  };
  const uart = new Pl011(w.name, { raise: () => setIrq(true), lower: () => setIrq(false) }, ctx.trace.channel('serial'), mainLoopTimer(sched, w.mainLoop));
  let booted = false;
  const driver = new GuestPl011({
    read: (o) => {
      if (!booted) return uart.mmioRead(o);
      const v = onVcpuThread(vcpu.actor, () => uart.mmioRead(o));
      vcpu.guestMmio({ addr: VIRT_UART_BASE + o, len: 2, write: false, value: 0n, applied: true });
      return v;
    },
    write: (o, v) => {
      if (!booted) return uart.mmioWrite(o, v);
      onVcpuThread(vcpu.actor, () => uart.mmioWrite(o, v));
      vcpu.guestMmio({ addr: VIRT_UART_BASE + o, len: 2, write: true, value: BigInt(v & 0xffff), applied: true });
    },
  }, ctx.trace.channel('guest'));
  driver.startup();
  booted = true;
  return { uart, driver };
}
