import { EventFd, GuestMemory, KvmRoutingTable, type MsiMessage, type SimContext } from '@virq/core';
import { ArmHost, ArmVm, GuestGicDriver, type GicVersion } from '@virq/arm-gic';

/** A booted arm64 VM (vGIC v3 or v4/v4.1) on a host with its own GIC and ITS. */
export interface ArmFlowRig {
  ctx: SimContext;
  vm: ArmVm;
  host: ArmHost;
}

export function armFlowRig(ctx: SimContext, gic: GicVersion, o: { vcpus?: number; hostCpus?: number } = {}): ArmFlowRig {
  const n = o.vcpus ?? 2;
  const host = new ArmHost(ctx, { numCpus: o.hostCpus ?? n, version: gic });
  const memory = GuestMemory.ofSize(GuestGicDriver.tablesSize(n) + 0x100000);
  const vm = new ArmVm(ctx, { numVcpus: n, gic, memory, host });
  vm.start();
  return { ctx, vm, host };
}

/**
 * An assigned device wired as VFIO does on arm64: a host LPI on the host ITS whose handler
 * (vfio_msihandler) signals the MSI eventfd, the guest's LPI on the vITS, a KVM MSI route and
 * an irqfd on it.
 */
export function armAssignedDevice(r: ArmFlowRig, deviceId: number, hostCpu: number, vcpu = 0): {
  hostIrq: number; guestLpi: number; msg: MsiMessage; gsi: number; fd: EventFd; routes: KvmRoutingTable;
} {
  const { ctx, vm, host } = r;
  const [hostIrq] = host.mapDevice(deviceId, 1, hostCpu);
  const fd = new EventFd(ctx.scheduler, { name: `vfio-msi-${deviceId}` });
  host.requestIrq(hostIrq!, 'vfio-msi', () => {
    fd.write(1);
    return 'handled';
  }, hostCpu);
  const { lpis, messages } = vm.guestDriver.mapMsi(deviceId, 1, vcpu);
  const routes = new KvmRoutingTable(vm.interruptApi, 32);
  const gsi = routes.addMsiRoute(messages[0]!);
  routes.commit();
  vm.interruptApi.irqfd({ fd, gsi });
  return { hostIrq: hostIrq!, guestLpi: lpis[0]!, msg: messages[0]!, gsi, fd, routes };
}
