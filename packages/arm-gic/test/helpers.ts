import { EventFd, GuestMemory, KvmRoutingTable, type MsiMessage, type SimContext, type TraceEvent, createSimContext } from '@virq/core';
import { ArmHost, ArmVm, type GicVersion, GuestGicDriver } from '@virq/arm-gic';

export interface Rig {
  ctx: SimContext;
  vm: ArmVm;
  host: ArmHost;
  mem: GuestMemory;
}

/** A booted VM with `numVcpus` vCPUs on a host with `hostCpus` CPUs. */
export function armMachine(gic: GicVersion, o: { numVcpus?: number; hostCpus?: number; nrLr?: number; seed?: number } = {}): Rig {
  const ctx = createSimContext({ seed: o.seed ?? 1 });
  const n = o.numVcpus ?? 2;
  const host = new ArmHost(ctx, { numCpus: o.hostCpus ?? n, version: gic });
  const mem = GuestMemory.ofSize(GuestGicDriver.tablesSize(n) + 0x100000);
  const vm = new ArmVm(ctx, { numVcpus: n, gic, memory: mem, host, nrLr: o.nrLr });
  vm.start();
  return { ctx, vm, host, mem };
}

/**
 * An assigned device the way VFIO wires it (vfio_msihandler signals the MSI eventfd; QEMU
 * routes the eventfd to the guest's MSI with an irqfd): host LPI on the host ITS, guest LPI
 * on the vITS, KVM routing entry, irqfd. Returns what a test needs to drive it.
 */
export function assignedDevice(r: Rig, deviceId: number, hostCpu: number, vcpu = 0): {
  hostIrq: number; guestLpi: number; msg: MsiMessage; gsi: number; fd: EventFd; routes: KvmRoutingTable;
} {
  const { ctx, vm, host } = r;
  const [hostIrq] = host.mapDevice(deviceId, 1, hostCpu);
  const fd = new EventFd(ctx.scheduler, { name: `vfio-msi-${deviceId}` });
  host.requestIrq(hostIrq, 'vfio-msi', () => {
    fd.write(1); // vfio_msihandler → eventfd_signal
    return 'handled';
  }, hostCpu);
  const { lpis, messages } = vm.guestDriver.mapMsi(deviceId, 1, vcpu);
  const routes = new KvmRoutingTable(vm.interruptApi, 32);
  const gsi = routes.addMsiRoute(messages[0]);
  routes.commit();
  vm.interruptApi.irqfd({ fd, gsi });
  return { hostIrq, guestLpi: lpis[0], msg: messages[0], gsi, fd, routes };
}

/** Whether `want` occurs in `fns` in order (not necessarily adjacent). */
export function inOrder(fns: readonly string[], want: readonly string[]): boolean {
  let i = 0;
  for (const f of fns) if (i < want.length && f === want[i]) i++;
  return i === want.length;
}

export function fnsOf(events: readonly TraceEvent[]): string[] {
  return events.map((e) => e.fn);
}
