import type { SimContext } from '@virq/core';
import { IrqBypassHost, type IrqBypassHostOptions } from './irq-bypass-host.js';
import type { IrqBypassManager } from './irq-bypass-manager.js';
import type { KvmIrqBypass } from './kvm-irq-bypass.js';
import type { IrqPostingBackend } from './posting-backend.js';
import type { HostIrqDomain } from './host-irq.js';

/** A token as tsyringe's `InjectionToken` accepts it (core's `Tokens` are symbols too). */
export type IrqBypassDiToken<T> = symbol & { readonly __type?: T };

function token<T>(name: string): IrqBypassDiToken<T> {
  return Symbol.for(`virq.irqbypass.${name}`) as IrqBypassDiToken<T>;
}

/** DI tokens of this package's seams. */
export const IrqBypassTokens = {
  Host: token<IrqBypassHost>('Host'),
  Manager: token<IrqBypassManager>('Manager'),
  HostIrqs: token<HostIrqDomain>('HostIrqs'),
  PostingBackend: token<IrqPostingBackend>('PostingBackend'),
  KvmConsumer: token<KvmIrqBypass>('KvmConsumer'),
} as const;

/**
 * The part of a DI container this package uses: `register(token, { useValue })`. tsyringe's
 * `DependencyContainer` has this shape, so a machine passes its container directly; this
 * package does not import tsyringe itself.
 */
export interface ValueRegistry {
  register(token: symbol, provider: { useValue: unknown }): unknown;
}

/**
 * Builds the host side for one VM (host CPUs, IOMMU interrupt remapping, irqbypass, the
 * vendor posting backend chosen by `options.vendor`, KVM's bypass consumer hooked into
 * `options.kvm`) and registers its parts in `container`. Returns the host so the machine can
 * assign devices (`host.assignDevice`).
 */
export function registerIrqBypass(container: ValueRegistry, ctx: SimContext, options: IrqBypassHostOptions): IrqBypassHost {
  const host = new IrqBypassHost(ctx, options);
  container.register(IrqBypassTokens.Host, { useValue: host });
  container.register(IrqBypassTokens.Manager, { useValue: host.manager });
  container.register(IrqBypassTokens.HostIrqs, { useValue: host.irqs });
  container.register(IrqBypassTokens.PostingBackend, { useValue: host.backend });
  container.register(IrqBypassTokens.KvmConsumer, { useValue: host.kvmBypass });
  return host;
}
