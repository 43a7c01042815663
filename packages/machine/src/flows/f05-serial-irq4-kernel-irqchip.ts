import { APIC } from '@virq/kvm-irqchip';
import { Serial16550 } from '../devices/serial-16550.js';
import { defineFlow } from './flow-kit.js';
import { X86FlowRig } from './x86-flow-rig.js';

const COM1 = 0x3f8;
const IRQ = 4;

/**
 * F5: the 16550 UART at 0x3f8 on IRQ 4 with the in-kernel irqchip. vCPU 0's guest enables
 * THRI in IER with THR empty (an IO_INSTRUCTION exit to QEMU); QEMU's serial model raises
 * IRQ 4, kvm_pc_gsi_handler turns it into KVM_IRQ_LINE (raise, then lower: an edge) and KVM
 * delivers it through both routing entries of GSI 4 (PIC and IOAPIC). vCPU 1, halted, is the
 * IOAPIC pin's destination: it is woken, the interrupt is injected on its next entry.
 */
export const f05SerialIrq4KernelIrqchip = defineFlow('F5', (s) => {
  const rig = new X86FlowRig(s.ctx, { nvcpus: 2 });
  const line = rig.gsi.gsi[IRQ]!;
  const serial = new Serial16550('serial0', COM1, { raise: (caller) => line.raise(caller), lower: (caller) => line.lower(caller) }, s.ctx.trace.channel('serial'));
  const exitIo = rig.vm.onUserspaceExit;
  rig.vm.onUserspaceExit = (vcpu, exit) => {
    if (exit.exit === 'IO' && serial.claims(exit.addr)) {
      if (exit.write) serial.ioWrite(exit.addr, exit.value);
      return exit.write ? 0 : serial.ioRead(exit.addr);
    }
    return exitIo?.(vcpu, exit) ?? 0;
  };
  // The guest's 8250 driver: vector 0x34 for IRQ 4 on vCPU 1 (edge, fixed), THRI enabled.
  // serial8250_default_handle_irq reads IIR: an IO_INSTRUCTION exit; QEMU clears THRI and lowers IRQ 4.
  const vector = rig.irqs.allocate(1, 'serial0-irq4', () => void rig.cpus[1]!.capture?.push({ op: 'pio-read', port: COM1 + 2, len: 1, fn: 'serial8250_default_handle_irq' }));
  rig.programIoapic(IRQ, vector, rig.vm.vcpu(1)!.apicId, false);
  serial.ioWrite(COM1 + 3, 0x03);
  // IRQ 4 left unmasked on the master 8259 (the legacy path KVM feeds as well); Linux masks
  // the BSP's LINT0 (ExtINT) once the IOAPIC is in use, so no vCPU accepts PIC interrupts.
  rig.vm.guestAccess(0, 'out', 0x21, 0xff & ~(1 << IRQ), 1);
  rig.vm.vcpu(0)!.lapic.regWrite(APIC.LVT0, 0x10700);
  // serial8250_start_tx: IER.THRI on with THR empty — the UART raises its interrupt at once.
  rig.guest(0, 10_000, () => rig.cpus[0]!.capture?.push({ op: 'pio-write', port: COM1 + 1, len: 1, value: 0x02, fn: 'serial8250_start_tx' }));
  rig.start();
  rig.runUntil(5_000);
  s.mark();
  rig.runUntil(300_000);
  s.notes.push(`vCPU 1 took vector 0x${vector.toString(16)} ${rig.cpus[1]!.taken.get(vector) ?? 0} time(s); exits on vCPU 0: ${JSON.stringify(Object.fromEntries(rig.vm.vcpu(0)!.exits))}`);
});
