import { createSimContext, msiMessage, Tokens, type IrqPinProvider, type MsiSink, type VcpuInterruptTarget } from '@virq/core';
import { KvmIrqchipTokens, registerKvmIrqchip, type KvmVm } from '@virq/kvm-irqchip';

/** The registerInstance/resolve pair of a tsyringe container. */
class Registry {
  private readonly m = new Map<symbol, unknown>();
  registerInstance<T>(token: symbol, instance: T): void {
    this.m.set(token, instance);
  }
  resolve<T>(token: symbol | unknown): T {
    if (!this.m.has(token as symbol)) throw new Error(`unregistered ${String(token)}`);
    return this.m.get(token as symbol) as T;
  }
}

test('registerKvmIrqchip puts the VM behind core seams in a DI container', () => {
  const c = new Registry();
  const ctx = createSimContext();
  const vm = registerKvmIrqchip(c, ctx, { nvcpus: 2 });
  expect(c.resolve<KvmVm>(KvmIrqchipTokens.KvmVm)).toBe(vm);
  const targets = c.resolve<readonly VcpuInterruptTarget[]>(Tokens.VcpuInterruptTargets);
  expect(targets.map((t) => [t.vcpuId, t.arch])).toEqual([[0, 'x86'], [1, 'x86']]);
  const page = vm.getLapic(1);
  page[0xf0 >> 2] = 0x1ff;
  vm.setLapic(1, page);
  // an MSI through the MsiSink seam reaches vCPU 1's LAPIC (dest = address bits 19:12)
  expect(c.resolve<MsiSink>(Tokens.MsiSink).deliverMsi(msiMessage(0xfee01000, 0x4041))).toBe(1);
  expect(targets[1]!.hasPendingInterrupt()).toBe(true);
  // IrqPins are GSIs: GSI 3 latches the master PIC's IRQ 3
  c.resolve<IrqPinProvider>(Tokens.IrqPins).pin(3).setLevel(true);
  expect(vm.pic!.pics[0].irr).toBe(0x08);
});
