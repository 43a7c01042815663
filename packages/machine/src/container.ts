import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { Tokens, type SimContext } from '@virq/core';

/**
 * The DI container of one machine: a child of tsyringe's root container holding this
 * machine's clock, cost table and trace bus under core's `Tokens`. Each package's
 * registration function (`registerKvmIrqchip`, `registerArmGic`, `registerIrqBypass`) then
 * puts its implementations of the seams (MsiSink, IrqPins, IrqRouting, VcpuInterruptTargets,
 * VmInterruptApi) in it, and devices resolve those tokens — they never name a controller.
 */
export function createMachineContainer(ctx: SimContext): DependencyContainer {
  const c = rootContainer.createChildContainer();
  c.registerInstance(Tokens.Scheduler, ctx.scheduler);
  c.registerInstance(Tokens.CostModel, ctx.costs);
  c.registerInstance(Tokens.TraceBus, ctx.trace);
  return c;
}
