import { HpetLegacy, KvmVm, PcGsi, QemuPit } from '@virq/kvm-irqchip';
import { defineFlow } from './flow-kit.js';

/** PIT channel 0 period: a reload of 1000 at 1.193182 MHz (838 µs). */
const PIT_PERIOD_NS = 838_095;

/**
 * F4: the PIT's timer through QEMU's userspace irqchip (kernel-irqchip=off, or TCG). The
 * KVM VM is created without KVM_CREATE_IRQCHIP; QEMU's i8254 fires, the HPET's legacy
 * routing passes IRQ 0 on, gsi_handler fans it out and the userspace 8259 raises INT to the
 * CPU (qemu_irq_raise on the CPU's interrupt line).
 */
export const f04LegacyTimerUserspaceIrqchip = defineFlow('F4', (s) => {
  const vm = new KvmVm(s.ctx, { nvcpus: 1, irqchip: false });
  const cpuInt: boolean[] = [];
  const gsi = PcGsi.userspace(s.ctx, (level) => cpuInt.push(level));
  const hpet = new HpetLegacy(s.ctx.trace.channel('qemu-irq'), gsi.gsi);
  const main = s.ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  const pit = new QemuPit(s.ctx, main, hpet.irqs[0]!, PIT_PERIOD_NS);
  s.mark();
  pit.start();
  s.ctx.scheduler.runUntil(PIT_PERIOD_NS + 100_000);
  pit.stop();
  const vector = gsi.pic!.readIrq();
  s.notes.push(
    `VM without the in-kernel irqchip (irqchip in kernel: ${vm.irqchipInKernel})`,
    `the 8259 raised INT ${cpuInt.filter((l) => l).length} time(s); the CPU's INTA read vector 0x${vector.toString(16)} (ICW2 base 0x08 + IRQ 0)`,
  );
});
