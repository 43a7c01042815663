import { Tokens, createSimContext } from '@virq/core';
import { ArmMachine } from '../src/arm/arm-machine.js';
import { parseTopology } from '../src/topology.js';
import { X86Machine } from '../src/x86/x86-machine.js';

describe('one tsyringe child container per machine', () => {
  const topo = (kind: string) => parseTopology({ name: 'di', irqchip: { kind }, devices: [{ kind: 'virtio-net', backend: 'in-vmm' }], durationUs: 10 });

  it('core Tokens resolve to the machine\'s own clock and to the controller the irqchip line chose', () => {
    const ctxA = createSimContext({ seed: 1 });
    const ctxB = createSimContext({ seed: 1 });
    const x86 = new X86Machine(ctxA, topo('kvm-x86'));
    const arm = new ArmMachine(ctxB, topo('gicv4'));
    expect(x86.container).not.toBe(arm.container);
    expect(x86.container.resolve(Tokens.Scheduler)).toBe(ctxA.scheduler);
    expect(arm.container.resolve(Tokens.Scheduler)).toBe(ctxB.scheduler);
    // x86: the KVM VM is the MSI sink (kvm_set_msi → kvm_irq_delivery_to_apic) and the ioctl surface.
    expect(x86.container.resolve(Tokens.MsiSink)).toBe(x86.vm);
    expect(x86.container.resolve(Tokens.VmInterruptApi)).toBe(x86.vm);
    expect(x86.container.resolve(Tokens.VcpuInterruptTargets).map((v) => v.arch)).toEqual(['x86', 'x86']);
    // ARM: the vITS's GITS_TRANSLATER is the MSI sink; the vGIC's irqfd layer the ioctl surface.
    expect(arm.container.resolve(Tokens.MsiSink)).toBe(arm.vm.msiSink);
    expect(arm.container.resolve(Tokens.VmInterruptApi)).toBe(arm.vm.interruptApi);
    expect(arm.container.resolve(Tokens.VcpuInterruptTargets).map((v) => v.arch)).toEqual(['arm64', 'arm64']);
    expect(arm.container.resolve(Tokens.GuestMemory)).toBe(arm.mem);
    // The devices use what the container holds: the same MSI sink object.
    expect(x86.msiSink).toBe(x86.container.resolve(Tokens.MsiSink));
    expect(arm.msiSink).toBe(arm.container.resolve(Tokens.MsiSink));
  });
});
