import { createSimContext } from '@virq/core';
import { IrqBypassHost, IrqBypassTokens, registerIrqBypass, type ValueRegistry } from '@virq/irqbypass';
import { MiniKvm } from './support/mini-kvm.js';

/** A minimal container with tsyringe's register/resolve shape for values. */
class Container implements ValueRegistry {
  private readonly values = new Map<symbol, unknown>();
  register(token: symbol, provider: { useValue: unknown }): this {
    this.values.set(token, provider.useValue);
    return this;
  }
  resolve<T>(token: symbol): T {
    if (!this.values.has(token)) throw new Error(`unregistered ${String(token)}`);
    return this.values.get(token) as T;
  }
}

describe('registerIrqBypass (DI)', () => {
  test.each(['vmx', 'avic'] as const)('registers the host, manager, host IRQs, the %s backend and the KVM consumer, and hooks KVM', (vendor) => {
    const ctx = createSimContext();
    const kvm = new MiniKvm(ctx, 2, true);
    const c = new Container();
    const host = registerIrqBypass(c, ctx, { kvm, vendor });
    expect(c.resolve<IrqBypassHost>(IrqBypassTokens.Host)).toBe(host);
    expect(c.resolve(IrqBypassTokens.Manager)).toBe(host.manager);
    expect(c.resolve(IrqBypassTokens.HostIrqs)).toBe(host.irqs);
    expect(c.resolve(IrqBypassTokens.KvmConsumer)).toBe(host.kvmBypass);
    expect(c.resolve<{ vendor: string }>(IrqBypassTokens.PostingBackend).vendor).toBe(vendor);
    expect(kvm.deliverPosted).toBeDefined();
    expect(kvm.sched).toBeDefined();
    expect(IrqBypassTokens.Host).toBe(Symbol.for('virq.irqbypass.Host'));
  });

  test('a vendor that is neither vmx nor avic is a configuration error that names the choices', () => {
    const ctx = createSimContext();
    expect(() => registerIrqBypass(new Container(), ctx, { kvm: new MiniKvm(ctx, 1, true), vendor: 'svm' as 'vmx' })).toThrow(/'vmx'.*'avic'/);
  });
});
