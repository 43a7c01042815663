import { msiMessage } from '@virq/core';
import { APIC, KvmVm } from '@virq/kvm-irqchip';
import { defineFlow } from './flow-kit.js';

/**
 * F6: an MSI written by a device model in QEMU whose APIC address space is QEMU's
 * (kvm_apic_mem_write on the 0xFEE00000 window): kvm_send_msi → kvm_irqchip_send_msi →
 * KVM_SIGNAL_MSI → kvm_send_userspace_msi → kvm_set_msi → kvm_set_msi_irq → the LAPIC.
 * The QEMU half (hw/i386/kvm/apic.c, accel/kvm) is traced here as QEMU's functions; the
 * kernel half is @virq/kvm-irqchip's KVM_SIGNAL_MSI.
 */
export const f06UserspaceApicMsi = defineFlow('F6', (s) => {
  const vm = new KvmVm(s.ctx, { nvcpus: 4 });
  for (const v of vm.vcpus()) v.lapic.regWrite(APIC.SPIV, 0x1ff);
  const qemu = s.ctx.trace.channel('qemu-apic');
  const main = s.ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  const addr = 0xfee02000;
  const data = 0x4045;
  let delivered = 0;
  s.mark();
  s.ctx.scheduler.after(0, main, () => {
    const msg = msiMessage(addr, data);
    if (qemu.on) {
      qemu.emit('qemu.msi', 'kvm_apic_mem_write', 'memory_region_write_accessor', { addr: addr & 0xfffff, data });
      qemu.emit('qemu.msi', 'kvm_send_msi', 'kvm_apic_mem_write', { addr, data });
      qemu.emit('qemu.msi', 'kvm_irqchip_send_msi', 'kvm_send_msi', { ioctl: 'KVM_SIGNAL_MSI' });
    }
    delivered = vm.signalMsi(msg);
  });
  s.ctx.scheduler.runUntilIdle();
  s.notes.push(`KVM_SIGNAL_MSI returned ${delivered}; vCPU 2 IRR: ${JSON.stringify(vm.vcpu(2)!.lapic.toJson().irr)}`);
});
