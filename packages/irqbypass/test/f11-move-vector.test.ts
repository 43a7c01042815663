import { POSTED_INTR_VECTOR, POSTED_INTR_WAKEUP_VECTOR } from '@virq/irqbypass';
import { Rig } from './support/rig.js';
import * as fs from 'node:fs';
import { SEED_DIR, readSeed002 } from './support/seed.js';

// vCPU n runs on host CPU n + 6: vCPU 5 on CPU 11, as in the seed's capture ([011]).
const hostCpuOf = (vcpu: number): number => vcpu + 6;

function startedRig(opts: ConstructorParameters<typeof Rig>[0] = {}): Rig {
  const rig = new Rig({ vcpus: 8, msixVectors: 3, ...opts });
  for (const v of rig.kvm.vcpus()) v.run(hostCpuOf(v.vcpuId));
  // Three vectors, one per queue; vector 1 targets vCPU 5 (apic id 5), vector 0x41.
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 2, vector: 0x40 }, { apicId: 5, vector: 0x41 }, { apicId: 3, vector: 0x42 }]));
  return rig;
}

describe('F11: an MSI-X vector of an assigned device moved from vCPU 5 to vCPU 6', () => {
  test('produces the seed 002 ftrace, function and caller, filtered as the capture was', () => {
    const seed = readSeed002();
    if (seed === undefined) {
      expect(fs.existsSync(SEED_DIR)).toBe(false); // skipped only because the capture is absent
      return;
    }
    const rig = startedRig();
    expect(rig.host.remapper.postedTarget(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(1)!))).toEqual({ vcpuId: 5, vector: 0x41 });
    const from = rig.mark();
    // The guest's irq affinity change runs on vCPU 5: the MSI-X table writes trap to QEMU there.
    rig.onVcpu(5, () => rig.guestProgramVector(1, 6, 0x41));
    const got = rig.recorder.events.slice(from).filter((e) => seed.filter.has(e.fn));
    expect(got.map((e) => `${e.fn} <-${e.caller ?? ''}`)).toEqual(seed.lines.map((l) => `${l.fn} <-${l.caller}`));
    // Same task as the capture: everything on the vCPU 5 thread, on host CPU 11.
    expect(new Set(got.map((e) => `${e.actor.name} [${e.actor.cpu}]`))).toEqual(new Set(['CPU 5/KVM [11]']));
    expect(seed.lines.every((l) => l.task === 'CPU 5/KVM' && l.cpu === 11)).toBe(true);
  });

  test('afterwards the IRTE is posted to vCPU 6 and a device interrupt reaches running vCPU 6 with no VM exit', () => {
    const rig = startedRig();
    rig.onVcpu(5, () => rig.guestProgramVector(1, 6, 0x41));
    const idx = rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(1)!);
    expect(rig.host.remapper.modeOf(idx)).toBe('posted');
    expect(rig.host.remapper.postedTarget(idx)).toEqual({ vcpuId: 6, vector: 0x41 });
    const exitsBefore = rig.kvm.exits.length;
    const from = rig.mark();
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(1));
    expect(rig.kvm.exits.length).toBe(exitsBefore);
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 6, vector: 0x41, via: 'virtual-interrupt-delivery' });
    // The notification went to vCPU 6's host CPU with the posted-interrupt vector, and was
    // consumed by the CPU in guest mode: no host handler, no VFIO handler, no irqfd.
    const fns = rig.fns(from);
    expect(fns).toContain('hw:posted_interrupt_processing');
    expect(fns).not.toContain('vfio_msihandler');
    expect(fns).not.toContain('irqfd_wakeup');
    expect(rig.host.cpus.interrupts[hostCpuOf(6)]).toBe(1);
    expect(rig.host.cpus.interrupts[hostCpuOf(5)]).toBe(0);
    const pid = rig.host.vmx!.descriptor(6);
    expect(pid.nv).toBe(POSTED_INTR_VECTOR);
    expect(pid.ndst).toBe(hostCpuOf(6));
    expect(pid.on).toBe(false);
    expect(pid.pirEmpty).toBe(true);
  });

  test('to a blocked vCPU 6 the IOMMU raises the wakeup vector on the CPU it blocked on; the vCPU wakes and takes the interrupt', () => {
    const rig = startedRig();
    rig.onVcpu(5, () => rig.guestProgramVector(1, 6, 0x41));
    const v6 = rig.kvm.vcpu(6)!;
    rig.on('CPU 6/KVM', () => v6.halt());
    expect(v6.state).toBe('blocked');
    const pid = rig.host.vmx!.descriptor(6);
    expect(pid.nv).toBe(POSTED_INTR_WAKEUP_VECTOR);
    expect(rig.host.vmx!.wakeupList(hostCpuOf(6))).toEqual([6]);
    const from = rig.mark();
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(1));
    const fns = rig.fns(from);
    const order = ['hw:vtd_post_interrupt', 'sysvec_kvm_posted_intr_wakeup_ipi', 'pi_wakeup_handler', 'kvm_vcpu_wake_up', 'vmx_vcpu_pi_load', 'vmx_sync_pir_to_irr', 'hw:virtual_interrupt_delivery'];
    expect(fns.filter((f) => order.includes(f))).toEqual(order);
    expect(v6.state).toBe('running');
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 6, vector: 0x41 });
    expect(rig.host.vmx!.counters.wakeups).toBe(1);
    // Only the guest's own HLT exited; the interrupt itself caused none.
    expect(rig.kvm.exits.filter((e) => e.vcpu === 6).map((e) => e.reason)).toEqual(['HLT']);
    expect(pid.nv).toBe(POSTED_INTR_VECTOR);
    expect(rig.host.vmx!.wakeupList(hostCpuOf(6))).toEqual([]);
  });

  test('a preempted vCPU 6 has SN set: the post lands in the PIR with no notification, and is picked up on vcpu_load', () => {
    const rig = startedRig();
    rig.onVcpu(5, () => rig.guestProgramVector(1, 6, 0x41));
    const v6 = rig.kvm.vcpu(6)!;
    rig.on('CPU 6/KVM', () => v6.preempt());
    const pid = rig.host.vmx!.descriptor(6);
    expect(pid.sn).toBe(true);
    const irqsBefore = [...rig.host.cpus.interrupts];
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(1));
    expect(rig.host.cpus.interrupts).toEqual(irqsBefore);
    expect(pid.pirBit(0x41)).toBe(true);
    expect(pid.on).toBe(false);
    rig.on('CPU 6/KVM', () => v6.resume());
    expect(pid.sn).toBe(false);
    expect(pid.pirEmpty).toBe(true);
    expect(rig.kvm.deliveries.at(-1)).toMatchObject({ vcpu: 6, vector: 0x41 });
    expect(rig.kvm.exits.filter((e) => e.vcpu === 6)).toEqual([]);
  });
});
