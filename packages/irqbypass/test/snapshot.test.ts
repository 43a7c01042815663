import { IntelInterruptRemapper, POSTED_INTR_WAKEUP_VECTOR } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

function scenario(): Rig {
  const rig = new Rig({ vcpus: 4, msixVectors: 2 });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId + 4);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 1, vector: 0x50 }, { apicId: 2, vector: 0x51 }]));
  rig.on('CPU 2/KVM', () => rig.kvm.vcpu(2)!.halt());
  return rig;
}

describe('snapshot/restore of the posted-interrupt hardware state', () => {
  test('VMX descriptors + wakeup lists and the VT-d table survive a JSON round trip into a fresh host', () => {
    const a = scenario();
    const ir = a.host.remapper as IntelInterruptRemapper;
    const pi = JSON.parse(JSON.stringify(a.host.vmx!.snapshot()));
    const irs = JSON.parse(JSON.stringify(ir.snapshot()));
    expect(pi).toMatchObject({ type: 'irqbypass.vmx-pi', version: 1 });

    const b = new Rig({ vcpus: 4, msixVectors: 2 });
    b.host.vmx!.restore(pi);
    (b.host.remapper as IntelInterruptRemapper).restore(irs);
    expect([...b.host.vmx!.descriptor(2).bytes]).toEqual([...a.host.vmx!.descriptor(2).bytes]);
    expect(b.host.vmx!.descriptor(2).nv).toBe(POSTED_INTR_WAKEUP_VECTOR);
    expect(b.host.vmx!.wakeupList(6)).toEqual([2]);
    for (let i = 0; i < 2; i++) {
      const idx = a.host.irqs.irteIndexOf(a.vfio.hostIrqOf(i)!);
      expect((b.host.remapper as IntelInterruptRemapper).irte(idx)).toEqual(ir.irte(idx));
      expect(b.host.remapper.postedTarget(idx)).toEqual(a.host.remapper.postedTarget(idx));
    }
  });

  test('a snapshot of another type or version is refused with a message naming both', () => {
    const a = scenario();
    expect(() => a.host.vmx!.restore({ type: 'irqbypass.vmx-pi', version: 2, state: { descriptors: {}, wakeupLists: {}, assignedDevices: 0 } })).toThrow(/version 2/);
    expect(() => (a.host.remapper as IntelInterruptRemapper).restore({ type: 'pci.msix', version: 1, state: { entries: [] } })).toThrow(/irqbypass.intel-ir/);
  });
});
