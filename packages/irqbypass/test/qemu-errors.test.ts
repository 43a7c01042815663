import { Rig } from './support/rig.js';

describe('guest-driven failures on the QEMU side are reported, not thrown', () => {
  test('no GSI left for a vector’s MSI route: the vector stays on QEMU’s notifier and still reaches the guest', () => {
    const rig = new Rig({ vcpus: 2, msixVectors: 3, maxGsi: 25 });
    for (const v of rig.kvm.vcpus()) v.run(v.vcpuId);
    rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 0, vector: 0x30 }, { apicId: 1, vector: 0x31 }, { apicId: 1, vector: 0x32 }]));
    expect(rig.qemu.errors).toBe(1);
    expect(rig.qemu.vector(2).virq).toBe(-1);
    expect(rig.vfio.triggerOf(2)).toBe(rig.qemu.vector(2).interrupt);
    expect(rig.routes.entries()).toHaveLength(2);
    const fns = rig.fns();
    expect(fns).toContain('error_report');
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(2));
    expect(rig.qemu.userspaceInterrupts).toBe(1);
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 1, vector: 0x32 });
  });

  test('the host runs out of device vectors on the IRQ’s CPU: SET_IRQS fails with ENOSPC, QEMU reports it, the guest carries on', () => {
    // 0x21–0xdf is 191 vectors; the 192nd on CPU 0 cannot be allocated.
    const rig = new Rig({ vcpus: 1, msixVectors: 192 });
    rig.kvm.vcpu(0)!.run(1);
    const targets = Array.from({ length: 192 }, () => ({ apicId: 0, vector: 0x40 }));
    expect(() => rig.on('qemu-system-x86', () => rig.guestEnableMsix(targets))).not.toThrow();
    expect(rig.qemu.errors).toBeGreaterThanOrEqual(1);
    expect(rig.recorder.events.some((e) => e.fn === 'error_report' && e.args['errno'] === 'ENOSPC')).toBe(true);
    expect(rig.vfio.triggerOf(190)).toBeDefined();
    expect(rig.vfio.triggerOf(191)).toBeUndefined();
  });
});
