import { formatFtrace } from '@virq/core';
import { POSTED_INTR_VECTOR, POSTED_INTR_WAKEUP_VECTOR } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

function rig1(): Rig {
  const rig = new Rig({ vcpus: 4, msixVectors: 1 });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId + 4);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 2, vector: 0x66 }]));
  return rig;
}

describe('PI descriptor lifecycle across scheduling (FACTS §8.3)', () => {
  test('a vCPU that migrates gets NDST = its new CPU on vcpu_load, and the next post notifies that CPU', () => {
    const rig = rig1();
    const v2 = rig.kvm.vcpu(2)!;
    rig.on('CPU 2/KVM', () => v2.preempt());
    rig.on('CPU 2/KVM', () => v2.resume(13));
    const pid = rig.host.vmx!.descriptor(2);
    expect(pid.ndst).toBe(13);
    expect(pid.nv).toBe(POSTED_INTR_VECTOR);
    const before = [...rig.host.cpus.interrupts];
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
    expect(rig.host.cpus.interrupts[13]! - before[13]!).toBe(1);
    expect(rig.host.cpus.interrupts[6]).toBe(before[6]);
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 2, vector: 0x66, via: 'virtual-interrupt-delivery' });
  });

  test('blocking with ON already set self-IPIs the wakeup vector (the post raced with the NV change)', () => {
    const rig = rig1();
    const v3 = rig.kvm.vcpu(3)!;
    // A KVM-originated post while vCPU 3 is between exits (outside guest mode): PIR + ON, no IPI.
    rig.on('CPU 3/KVM', () => {
      v3.mode = 'outside-guest';
      rig.host.vmx!.deliverPostedInterrupt(3, 0x77);
      v3.mode = 'in-guest';
    });
    expect(rig.host.vmx!.descriptor(3).on).toBe(true);
    const from = rig.mark();
    rig.on('CPU 3/KVM', () => v3.halt());
    const fns = rig.fns(from);
    expect(fns.filter((f) => ['pi_enable_wakeup_handler', 'sysvec_kvm_posted_intr_wakeup_ipi', 'pi_wakeup_handler', 'kvm_vcpu_wake_up'].includes(f))).toEqual(['pi_enable_wakeup_handler', 'sysvec_kvm_posted_intr_wakeup_ipi', 'pi_wakeup_handler', 'kvm_vcpu_wake_up']);
    // A system vector has its own IDT entry (asm_sysvec_…), not common_interrupt.
    expect(fns[fns.indexOf('sysvec_kvm_posted_intr_wakeup_ipi') - 1]).not.toBe('common_interrupt');
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 3, vector: 0x77 });
    expect(rig.host.vmx!.descriptor(3).nv).toBe(POSTED_INTR_VECTOR);
  });

  test('a second post while ON is set sends no second notification (coalesced in the PIR)', () => {
    const rig = rig1();
    const v2 = rig.kvm.vcpu(2)!;
    rig.on('CPU 2/KVM', () => v2.halt());
    expect(rig.host.vmx!.descriptor(2).nv).toBe(POSTED_INTR_WAKEUP_VECTOR);
    const ir = rig.host.remapper as unknown as { notifications: number; posted: number };
    const n0 = ir.notifications;
    const dev = rig.vfio.device;
    rig.ctx.scheduler.after(0, dev.actor, () => {
      dev.fireMsix(0);
      dev.fireMsix(0);
    });
    rig.run();
    expect(ir.notifications - n0).toBe(1);
    expect(rig.kvm.deliveries.filter((d) => d.vcpu === 2 && d.vector === 0x66)).toHaveLength(1);
  });

  test('same seed, same inputs → the same trace, bit for bit', () => {
    const once = (): string => {
      const rig = rig1();
      rig.onVcpu(1, () => rig.guestProgramVector(0, 3, 0x67));
      rig.on('CPU 3/KVM', () => rig.kvm.vcpu(3)!.halt());
      rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
      return formatFtrace(rig.recorder.events);
    };
    const a = once();
    expect(a.split('\n').length).toBeGreaterThan(50);
    expect(once()).toBe(a);
  });
});
