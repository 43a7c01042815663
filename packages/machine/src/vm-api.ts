import type { GsiRoute, IoeventfdRequest, IrqfdRequest, MsiMessage, VmInterruptApi } from '@virq/core';

/**
 * The VM's interrupt ioctls as QEMU sees them with the topology's routing options: `irqfd:
 * false` or `ioeventfd: false` make QEMU behave as on a kernel without the capability (its
 * kvm_irqfds_enabled() / kvm_eventfds_enabled() checks), whatever the irqchip offers.
 */
export function restrictVmApi(vm: VmInterruptApi, irqfd: boolean, ioeventfd: boolean): VmInterruptApi {
  return {
    get irqfdCapable() {
      return irqfd && vm.irqfdCapable;
    },
    get ioeventfdCapable() {
      return ioeventfd && vm.ioeventfdCapable;
    },
    setGsiRouting: (e: readonly GsiRoute[]) => vm.setGsiRouting(e),
    irqfd: (r: IrqfdRequest) => vm.irqfd(r),
    ioeventfd: (r: IoeventfdRequest) => vm.ioeventfd(r),
    signalMsi: (m: MsiMessage) => vm.signalMsi(m),
    irqLine: (g: number, l: boolean) => vm.irqLine(g, l),
  };
}
