import { VfioIrqSetFlag as F, VfioPciIrqIndex as I } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

const GSI = 10;
const VECTOR = 0x3a;

function intxRig(): Rig {
  const rig = new Rig({ vcpus: 1, msixVectors: 1, apicv: false, intxGsi: GSI });
  rig.kvm.pinVector.set(GSI, VECTOR);
  rig.kvm.vcpu(0)!.run(1);
  rig.qemu.intxEnable();
  rig.run();
  return rig;
}

describe('VFIO INTx with KVM’s resampling irqfd (FACTS §6.4, §9.3, appendix A.5)', () => {
  test('QEMU wires INTx through KVM: resample irqfd on the GSI and the resamplefd as VFIO’s unmask eventfd', () => {
    const rig = intxRig();
    expect(rig.qemu.intxKvmAccel).toBe(true);
    expect(rig.vfio.type).toBe('intx');
    expect(rig.kvm.irqfdList().map((f) => f.gsi)).toEqual([GSI]);
  });

  test('device asserts → VFIO masks (DisINTx) and signals → guest gets the vector; EOI → resample → unmask only once the device deasserted', () => {
    const rig = intxRig();
    const dev = rig.vfio.device;
    rig.on(dev.actor.name, () => dev.setIntx(true));
    expect(rig.vfio.intxMasked).toBe(true);
    expect(dev.intxMasked).toBe(true);
    expect(rig.kvm.deliveries.map((d) => d.vector)).toEqual([VECTOR]);
    // The guest EOIs while the device still asserts: VFIO stays masked and re-signals,
    // which re-asserts the line: a second interrupt.
    rig.on('CPU 0/KVM', () => rig.kvm.vcpu(0)!.eoi());
    rig.run();
    expect(rig.vfio.intxMasked).toBe(true);
    expect(rig.kvm.deliveries.map((d) => d.vector)).toEqual([VECTOR, VECTOR]);
    // The driver cleared the device's condition, then EOIs: unmasked, no more interrupts.
    dev.setIntx(false);
    rig.on('CPU 0/KVM', () => rig.kvm.vcpu(0)!.eoi());
    rig.run();
    expect(rig.vfio.intxMasked).toBe(false);
    expect(dev.intxMasked).toBe(false);
    expect(rig.kvm.deliveries).toHaveLength(2);
    // A new assertion goes through again.
    rig.on(dev.actor.name, () => dev.setIntx(true));
    expect(rig.kvm.deliveries).toHaveLength(3);
  });

  test('INTx MASK/UNMASK with DATA_NONE; MASK with an eventfd is not implemented (ENOTTY)', () => {
    const rig = intxRig();
    rig.vfio.setIrqs({ flags: F.DATA_NONE | F.ACTION_MASK, index: I.INTX, start: 0, count: 1 });
    expect(rig.vfio.intxMasked).toBe(true);
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.setIntx(true));
    expect(rig.kvm.deliveries).toHaveLength(0);
    // Unmask with the device asserting: stays masked and the trigger is re-sent instead.
    rig.on('qemu-system-x86', () => rig.vfio.setIrqs({ flags: F.DATA_NONE | F.ACTION_UNMASK, index: I.INTX, start: 0, count: 1 }));
    expect(rig.vfio.intxMasked).toBe(true);
    expect(rig.kvm.deliveries).toHaveLength(1);
    expect(() => rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_MASK, index: I.INTX, start: 0, count: 1, data: [null] })).toThrow(expect.objectContaining({ details: { errno: 'ENOTTY' } }));
  });

  test('without KVM (no INTx GSI) QEMU handles INTx in userspace: vfio_intx_interrupt asserts the emulated pin', () => {
    const rig = new Rig({ vcpus: 1, msixVectors: 1 });
    rig.qemu.intxEnable();
    expect(rig.qemu.intxKvmAccel).toBe(false);
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.setIntx(true));
    expect(rig.qemu.userspaceInterrupts).toBe(1);
    expect(rig.vfio.intxMasked).toBe(true);
    rig.vfio.device.setIntx(false);
    rig.qemu.intxEoi();
    expect(rig.vfio.intxMasked).toBe(false);
  });
});
