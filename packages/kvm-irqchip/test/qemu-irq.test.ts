import { HpetLegacy, PcGsi, QemuPit } from '@virq/kvm-irqchip';
import { enableLapics, inOrder, makeVm, record, setRedir } from './helpers.js';

describe('QEMU userspace irqchip (kernel-irqchip=off / TCG)', () => {
  test('F4: pit_irq_timer → pit_irq_timer_update → qemu_set_irq → hpet_handle_legacy_irq → qemu_set_irq → gsi_handler → qemu_set_irq → pic_set_irq → pic_update_irq → qemu_irq_raise', () => {
    const { ctx } = makeVm({ nvcpus: 1, irqchip: false });
    const cpuInt: boolean[] = [];
    const gsi = PcGsi.userspace(ctx, (l) => cpuInt.push(l));
    const hpet = new HpetLegacy(ctx.trace.channel('qemu-irq'), gsi.gsi);
    const main = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main' });
    const pit = new QemuPit(ctx, main, hpet.irqs[0]!, 838_095);
    const rec = record(ctx);
    pit.start();
    ctx.scheduler.runUntil(1_000_000);
    pit.stop();
    expect(inOrder(rec.functions(), [
      'pit_irq_timer', 'pit_irq_timer_update', 'qemu_set_irq', 'hpet_handle_legacy_irq', 'qemu_set_irq', 'gsi_handler',
      'qemu_set_irq', 'pic_set_irq', 'pic_update_irq', 'qemu_irq_raise',
    ])).toEqual([]);
    // the 8259 latched the edge and raised INT; the CPU's INTA gets irq_base + 0
    expect(cpuInt).toEqual([true]);
    expect(gsi.pic!.readIrq()).toBe(0x08);
    expect(gsi.pic!.intLevel).toBe(false);
  });

  test('HPET legacy-replacement mode cuts the PIT line', () => {
    const { ctx } = makeVm({ nvcpus: 1, irqchip: false });
    const cpuInt: boolean[] = [];
    const gsi = PcGsi.userspace(ctx, (l) => cpuInt.push(l));
    const hpet = new HpetLegacy(ctx.trace.channel('qemu-irq'), gsi.gsi);
    hpet.legacyMode = true;
    hpet.irqs[0]!.pulse();
    expect(cpuInt).toEqual([]);
  });
});

describe('QEMU with the in-kernel irqchip: kvm_pc_gsi_handler', () => {
  test('F5 (QEMU side): serial_update_irq → qemu_irq_raise → qemu_set_irq → kvm_pc_gsi_handler → qemu_set_irq → kvm_pic_set_irq → kvm_set_irq → KVM_IRQ_LINE', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    setRedir(vm, { 4: { vector: 0x34, dest: 1 } });
    const gsi = PcGsi.kernelIrqchip(ctx, vm);
    const serial = ctx.trace.channel('serial');
    const rec = record(ctx);
    const main = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main' });
    ctx.scheduler.after(0, main, () => {
      serial.emit('serial.write', 'serial_ioport_write', 'memory_region_write_accessor', { addr: 1, val: 2 });
      serial.emit('serial.update', 'serial_update_irq', 'serial_ioport_write', {});
      gsi.gsi[4]!.raise('serial_update_irq');
      gsi.gsi[4]!.lower('serial_update_irq');
    });
    ctx.scheduler.runUntilIdle();
    expect(inOrder(rec.functions(), [
      'serial_ioport_write', 'serial_update_irq', 'qemu_irq_raise', 'qemu_set_irq', 'kvm_pc_gsi_handler', 'qemu_set_irq',
      'kvm_pic_set_irq', 'kvm_set_irq', 'kvm_vm_ioctl_irq_line', 'kvm_set_irq', 'kvm_set_pic_irq', 'kvm_set_ioapic_irq',
      'qemu_irq_lower', 'kvm_pc_gsi_handler', 'kvm_vm_ioctl_irq_line',
    ])).toEqual([]);
    // one GSI, both chips: the PIC latched IRQ 4 and the IOAPIC delivered vector 0x34
    expect(vm.pic!.pics[0].irr).toBe(0x10);
    expect(vm.vcpu(1)!.lapic.toJson().irr).toEqual([0x34]);
    expect(main.cpuTimeNs).toBe(2 * ctx.costs.ns.syscall);
  });
});
