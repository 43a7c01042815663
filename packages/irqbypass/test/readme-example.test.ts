// The README's example, kept runnable.
import { KvmRoutingTable, createSimContext, formatFtrace, TraceRecorder } from '@virq/core';
import { IrqBypassHost, QemuVfioPci, x86MsiFixed } from '@virq/irqbypass';
import { APIC, IdleGuest, KvmVm } from '@virq/kvm-irqchip';
import { Msix, MsixTable, PciCommand, PciDevice, PciReg } from '@virq/pci';

test('README example: an assigned NIC’s MSI-X vector posted to vCPU 3', () => {
  const ctx = createSimContext({ seed: 1 });
  const trace = new TraceRecorder(ctx.trace.events$);

  // The VM (KVM's irqchip) with APICv, and the host around it: VT-d posting, irqbypass, VFIO.
  const vm = new KvmVm(ctx, { nvcpus: 4 });
  vm.setApicv(true);
  const host = new IrqBypassHost(ctx, { kvm: vm, hostCpus: 8, vendor: 'vmx' }); // or 'avic'
  const vfio = host.assignDevice({ name: '0000:3b:00.0', requesterId: 0x3b00, msixVectors: 4 });

  // QEMU's view of the device: an emulated MSI-X table, routes, the two notifiers per vector.
  const pdev = new PciDevice(ctx, { name: 'vfio-pci.0', vendorId: 0x8086, deviceId: 0x1572, classCode: 0x020000, msiSink: vm });
  const msix = MsixTable.exclusiveBar(pdev, 4, 0);
  new QemuVfioPci(ctx, { pdev, msix, vfio, kvm: vm, routes: new KvmRoutingTable(vm, 24) });

  const guest = new IdleGuest(500);
  for (const v of vm.vcpus()) {
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    v.setGuest(guest);
    v.run();
  }
  // The guest driver: bus master + MSI-X on, vector 0 → APIC id 3, vector 0x45, unmasked.
  const qemu = ctx.scheduler.allActors().find((a) => a.name === 'qemu-system-x86')!;
  ctx.scheduler.after(0, qemu, () => {
    pdev.configWrite(PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
    pdev.configWrite(msix.capOffset + Msix.CONTROL_OFFSET, 1, Msix.ENABLE_MASK);
    const m = x86MsiFixed(3, 0x45);
    msix.tableWrite(0, 4, m.addressLo);
    msix.tableWrite(8, 4, m.data);
    msix.tableWrite(12, 4, 0); // unmask → vfio_msix_vector_use → irqfd + SET_IRQS → posted IRTE
  });
  ctx.scheduler.runUntilIdle();

  // The NIC raises vector 0: VT-d posts it into vCPU 3's PI descriptor; vCPU 3 is halted, so
  // the wakeup vector wakes it and it takes 0x45 on entry.
  ctx.scheduler.after(0, vfio.device.actor, () => vfio.device.fireMsix(0));
  ctx.scheduler.runUntilIdle();

  expect(guest.taken.get(0x45)).toBe(1);
  expect(host.vmx!.counters.wakeups).toBe(1);
  expect(formatFtrace(trace.events)).toContain('pi_wakeup_handler <-sysvec_kvm_posted_intr_wakeup_ipi');
});
