import { APIC, IdleGuest, KvmVm, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { defineFlow } from './flow-kit.js';

const MSR_IA32_APICBASE = 0x1b;
const APIC_BASE_BSP = 1 << 8;
const APIC_BASE_EXTD = 1 << 10;
const APIC_BASE_ENABLE = 1 << 11;
/** x2APIC ICR (MSR 0x800 + 0x300 >> 4). */
const MSR_X2APIC_ICR = 0x830;
const IPI_VECTOR = 0x61;

/**
 * F7: vCPU 0's guest sends IPI vector 0x61 to vCPU 1, which is computing in guest mode on
 * another host CPU. xAPIC: two MMIO writes to the APIC page (ICR2 then ICR) — each an
 * APIC_ACCESS exit; x2APIC: one WRMSR to ICR (MSR_WRITE exit). Either way the write lands
 * in kvm_lapic_reg_write(APIC_ICR) → apic_send_ipi → kvm_irq_delivery_to_apic → vCPU 1's
 * __apic_accept_irq → kvm_vcpu_kick, which IPIs vCPU 1's host CPU out of guest mode.
 */
export const f07IcrIpi = defineFlow('F7', (s) => {
  const x2apic = s.variant === 'x2apic';
  const vm = new KvmVm(s.ctx, { nvcpus: 2, cpuid: { x2apic } });
  for (const v of vm.vcpus()) {
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    if (x2apic) v.setMsr(MSR_IA32_APICBASE, BigInt(0xfee00000 | APIC_BASE_ENABLE | APIC_BASE_EXTD | (v.vcpuId === 0 ? APIC_BASE_BSP : 0)));
  }
  const target = new IdleGuest(s.ctx.costs.ns.guestHandler);
  const busy: GuestModel = { next: () => ({ op: 'compute', ns: 1_000_000 }), interrupt: (id, vec) => target.interrupt(id, vec) };
  vm.vcpu(1)!.setGuest(busy);
  const ops: GuestOp[] = x2apic
    ? [{ op: 'compute', ns: 10_000 }, { op: 'msr-write', index: MSR_X2APIC_ICR, value: (1n << 32n) | BigInt(0x4000 | IPI_VECTOR) }]
    : [{ op: 'compute', ns: 10_000 }, { op: 'mmio-write', addr: 0xfee00000 + APIC.ICR2, len: 4, value: 1 << 24 }, { op: 'mmio-write', addr: 0xfee00000 + APIC.ICR, len: 4, value: 0x4000 | IPI_VECTOR }];
  vm.vcpu(0)!.setGuest({ next: () => ops.shift() ?? { op: 'hlt' } });
  s.mark();
  vm.vcpu(1)!.run();
  vm.vcpu(0)!.run();
  s.ctx.scheduler.runUntil(200_000);
  const v1 = vm.vcpu(1)!;
  s.notes.push(`${x2apic ? 'x2APIC' : 'xAPIC'}: vCPU 1 took vector 0x${IPI_VECTOR.toString(16)} ${target.taken.get(IPI_VECTOR) ?? 0} time(s) after ${v1.hostIpis} host IPI(s) (EXTERNAL_INTERRUPT exits: ${v1.exits.get('EXTERNAL_INTERRUPT') ?? 0})`);
});
