import { AmdIommuGaRemapper, avicGaTag } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

function avicRig(vendor: 'vmx' | 'avic' = 'avic'): Rig {
  const rig = new Rig({ vcpus: 4, msixVectors: 2, vendor });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId + 8);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 2, vector: 0x60 }, { apicId: 3, vector: 0x61 }]));
  return rig;
}

describe('AMD AVIC + AMD-Vi GA mode as the alternative consumer (FACTS §8.6)', () => {
  test('avic_pi_update_irte puts the IRTE in guest mode with the GA tag, guest vector, IsRun and the vCPU’s host CPU', () => {
    const rig = avicRig();
    expect(rig.fns()).toContain('avic_pi_update_irte');
    expect(rig.fns()).not.toContain('vmx_pi_update_irte');
    const ir = rig.host.remapper as AmdIommuGaRemapper;
    const e = ir.entry(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!));
    expect(e).toEqual({ mode: 'guest', vector: 0x60, destApicId: 10, isRun: true, gaTag: avicGaTag(1, 2), vcpuId: 2, gaLogIntr: true });
  });

  test('running vCPU: the IOMMU sets the backing-page IRR and rings the doorbell — delivered with no exit', () => {
    const rig = avicRig();
    const ir = rig.host.remapper as AmdIommuGaRemapper;
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
    expect(ir.doorbells).toBe(1);
    expect(ir.gaLogEntries).toBe(0);
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 2, vector: 0x60, via: 'virtual-interrupt-delivery' });
    expect(rig.kvm.exits.filter((x) => x.vcpu === 2)).toEqual([]);
  });

  test('blocked vCPU: avic_vcpu_put cleared IsRun in the IRTE, so the IOMMU writes a GA log entry; the notifier wakes the vCPU', () => {
    const rig = avicRig();
    const ir = rig.host.remapper as AmdIommuGaRemapper;
    const idx = rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!);
    rig.on('CPU 2/KVM', () => rig.kvm.vcpu(2)!.halt());
    expect(ir.entry(idx)).toMatchObject({ mode: 'guest', isRun: false });
    expect(rig.host.avic!.physIdEntry(2).isRunning).toBe(false);
    const from = rig.mark();
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
    const fns = rig.fns(from);
    const order = ['hw:amdvi_ga_interrupt', 'hw:amdvi_ga_log_write', 'amd_iommu_int_handler', 'iommu_poll_ga_log', 'avic_ga_log_notifier', 'avic_vcpu_load', 'hw:virtual_interrupt_delivery'];
    expect(fns.filter((f) => order.includes(f))).toEqual(order);
    // The IOMMU's event-log/GA-log interrupt is an ordinary MSI: the common IDT entry and the edge flow handler.
    const h = fns.indexOf('amd_iommu_int_handler');
    expect(fns.slice(h - 2, h)).toEqual(['common_interrupt', 'handle_edge_irq']);
    expect(ir.gaLogEntries).toBe(1);
    expect(rig.kvm.vcpu(2)!.state).toBe('running');
    expect(ir.entry(idx)).toMatchObject({ isRun: true });
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 2, vector: 0x60 });
    expect(rig.kvm.exits.filter((x) => x.vcpu === 2).map((x) => x.reason)).toEqual(['HLT']);
  });

  test('swapping VMX/VT-d for AVIC/AMD-Vi by configuration changes the mechanism, not what the guest sees', () => {
    const seen = (vendor: 'vmx' | 'avic'): string[] => {
      const rig = avicRig(vendor);
      rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
      rig.on('CPU 3/KVM', () => rig.kvm.vcpu(3)!.halt());
      rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(1));
      rig.onVcpu(1, () => rig.guestProgramVector(0, 1, 0x62));
      rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
      expect(rig.host.irteViolations(rig.kvm.irqfdList())).toEqual([]);
      return rig.kvm.deliveries.map((d) => `${d.vcpu}:${d.vector.toString(16)}`);
    };
    expect(seen('avic')).toEqual(seen('vmx'));
    expect(seen('avic')).toEqual(['2:60', '3:61', '1:62']);
  });

  test('an Intel descriptor cannot be handed to an AMD IOMMU', () => {
    const rig = avicRig();
    const irq = rig.vfio.hostIrqOf(0)!;
    expect(() => rig.host.irqs.setVcpuAffinity(irq, { kind: 'vmx', piDescAddr: 0x1000, vector: 1 }, 'test')).toThrow(expect.objectContaining({ code: 'irqbypass.config-invalid' }));
  });
});
