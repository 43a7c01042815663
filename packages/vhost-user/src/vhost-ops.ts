import { VirqError, type EventFd, type GuestMemory, type SimContext } from '@virq/core';
import type { VhostOps, VhostVringAddr } from '@virq/virtio-pci';
import { InProcessVhostUserLink } from './channel.js';
import { VhostUserErrorCode } from './errors.js';
import { InProcessFd, InProcessHost } from './in-process-host.js';
import type { PacketHandler } from './packet-handler.js';
import { VHOST_USER_VRING_NOFD_MASK, VhostUserProtocolFeature, VhostUserRequest } from './protocol.js';
import { decodeU64, decodeVringState, encodeMemoryTable, encodeU64, encodeVringAddr, encodeVringState } from './payload.js';
import { QEMU_PROTOCOL_FEATURES, VhostUserFrontend } from './vhost-user-frontend.js';
import { VhostKernelNet } from './vhost-kernel.js';
import { VhostUserNetBackend } from './vhost-user-net.js';

/** Where the model's "QEMU" maps guest RAM in its address space (uva = base + gpa). */
export const MODEL_QEMU_RAM_UVA = 0x7f0000000000;

export interface VhostUserNetOpsInit {
  ctx: SimContext;
  /** Packet handler of the back end (default macswap). */
  handler?: PacketHandler;
  /** Back-end thread (default a 'vhost-user-net' backend actor on CPU 1). */
  cpu?: number;
  /** Delay from a kick write to the back end's thread running (default the cost model's threadWakeup). */
  wakeupNs?: number;
}

/**
 * @virq/virtio-pci's VhostOps seam backed by vhost-user: QEMU's vhost-user front end
 * (hw/virtio/vhost-user.c) as messages over the in-process transport to our vhost-user-net
 * back end, which runs on its own actor (its kicks are scheduler events: the eventfd wakes the
 * back end's thread after `wakeupNs`). Guest RAM is handed over as one memory "fd" per region
 * with uva = MODEL_QEMU_RAM_UVA + gpa, exactly as QEMU's memfd backend does.
 */
export class VhostUserNetOps implements VhostOps {
  readonly backendType = 'user' as const;
  readonly name = 'vhost-user';
  readonly net: VhostUserNetBackend<InProcessFd>;
  readonly link: InProcessVhostUserLink<InProcessFd>;
  readonly frontend: VhostUserFrontend<InProcessFd>;
  private readonly fds = new Map<EventFd, InProcessFd>();

  constructor(init: VhostUserNetOpsInit) {
    const s = init.ctx.scheduler;
    const actor = s.actor({ name: 'vhost-user-net', kind: 'backend', cpu: init.cpu ?? 1 });
    const host = new InProcessHost(s, { actor, wakeupNs: init.wakeupNs ?? init.ctx.costs.ns.threadWakeup });
    this.net = new VhostUserNetBackend<InProcessFd>(host, { handler: init.handler, defer: (fn) => void s.after(0, actor, fn), trace: init.ctx.trace });
    this.link = new InProcessVhostUserLink(this.net.protocol);
    // The seam has no SET_STATUS step (QEMU 7.2's vhost_user_dev_start), so STATUS is not
    // negotiated and readiness does not wait for DRIVER_OK (DPDK's rule without STATUS).
    this.frontend = new VhostUserFrontend<InProcessFd>(this.link, { protocolFeatures: QEMU_PROTOCOL_FEATURES & ~(1n << BigInt(VhostUserProtocolFeature.STATUS)) });
  }

  private fd(e: EventFd): InProcessFd {
    let f = this.fds.get(e);
    if (f === undefined || f.closed) {
      f = InProcessFd.eventfd(e);
      this.fds.set(e, f);
    }
    return f;
  }

  /** vhost_user_backend_init's negotiation, then SET_OWNER. */
  setOwner(): void {
    this.frontend.init(0, []);
  }

  getFeatures(): bigint {
    return decodeU64(this.frontend.call(VhostUserRequest.GET_FEATURES).payload);
  }

  setFeatures(features: bigint): void {
    this.frontend.send(VhostUserRequest.SET_FEATURES, encodeU64(features | (this.frontend.backendFeatures & (1n << 30n))));
  }

  setMemTable(mem: GuestMemory): void {
    const regions = mem.regions().map((r) => ({
      region: { guestPhysAddr: r.gpa, memorySize: r.size, userspaceAddr: MODEL_QEMU_RAM_UVA + r.gpa, mmapOffset: r.bytes.byteOffset },
      fd: InProcessFd.memory(r.bytes.buffer as ArrayBuffer, r.name),
    }));
    this.frontend.send(VhostUserRequest.SET_MEM_TABLE, encodeMemoryTable(regions.map((x) => x.region)), regions.map((x) => x.fd), true);
  }

  setVringNum(index: number, num: number): void {
    this.frontend.send(VhostUserRequest.SET_VRING_NUM, encodeVringState({ index, num }));
  }

  setVringBase(index: number, base: number): void {
    this.frontend.send(VhostUserRequest.SET_VRING_BASE, encodeVringState({ index, num: base }));
  }

  setVringAddr(a: VhostVringAddr): void {
    const u = MODEL_QEMU_RAM_UVA;
    this.frontend.send(VhostUserRequest.SET_VRING_ADDR, encodeVringAddr({ index: a.index, flags: a.flags, desc: u + a.desc, used: u + a.used, avail: u + a.avail, log: 0 }));
  }

  setVringKick(index: number, fd: EventFd | undefined): void {
    this.file(VhostUserRequest.SET_VRING_KICK, index, fd);
  }

  setVringCall(index: number, fd: EventFd | undefined): void {
    this.file(VhostUserRequest.SET_VRING_CALL, index, fd);
  }

  private file(request: number, index: number, fd: EventFd | undefined): void {
    this.frontend.send(request, encodeU64(fd === undefined ? index | VHOST_USER_VRING_NOFD_MASK : index), fd === undefined ? [] : [this.fd(fd)]);
  }

  getVringBase(index: number): number {
    return decodeVringState(this.frontend.call(VhostUserRequest.GET_VRING_BASE, encodeVringState({ index, num: 0 })).payload).num;
  }

  setVringEnable(index: number, enable: boolean): void {
    this.frontend.send(VhostUserRequest.SET_VRING_ENABLE, encodeVringState({ index, num: enable ? 1 : 0 }));
  }
}

export interface VhostKernelNetOpsInit {
  ctx: SimContext;
  memory: GuestMemory;
  /** The VMM's pid (worker thread name `vhost-<pid>`). */
  ownerPid: number;
  handler?: PacketHandler;
  cpu?: number;
}

/** @virq/virtio-pci's VhostOps seam backed by the kernel vhost-net model (ioctls). */
export class VhostKernelNetOps implements VhostOps {
  readonly backendType = 'kernel' as const;
  readonly name = 'vhost-net';
  readonly dev: VhostKernelNet;

  constructor(init: VhostKernelNetOpsInit) {
    this.dev = new VhostKernelNet(init.ctx, { memory: init.memory, ownerPid: init.ownerPid, handler: init.handler, cpu: init.cpu });
  }
  setOwner(): void {
    this.dev.setOwner();
  }
  getFeatures(): bigint {
    return this.dev.getFeatures();
  }
  setFeatures(features: bigint): void {
    this.dev.setFeatures(features & this.dev.getFeatures());
  }
  setMemTable(mem: GuestMemory): void {
    this.dev.setMemTable(mem.regions().map((r) => ({ guestPhysAddr: r.gpa, memorySize: r.size, userspaceAddr: MODEL_QEMU_RAM_UVA + r.gpa })));
  }
  setVringNum(index: number, num: number): void {
    this.dev.setVringNum(this.kernelIndex(index), num);
  }
  setVringBase(index: number, base: number): void {
    this.dev.setVringBase(this.kernelIndex(index), base);
  }
  setVringAddr(a: VhostVringAddr): void {
    const u = MODEL_QEMU_RAM_UVA;
    this.dev.setVringAddr(this.kernelIndex(a.index), { desc: u + a.desc, avail: u + a.avail, used: u + a.used, flags: a.flags });
  }
  setVringKick(index: number, fd: EventFd | undefined): void {
    this.dev.setVringKick(this.kernelIndex(index), fd ?? null);
  }
  setVringCall(index: number, fd: EventFd | undefined): void {
    this.dev.setVringCall(this.kernelIndex(index), fd ?? null);
  }
  getVringBase(index: number): number {
    return this.dev.getVringBase(this.kernelIndex(index));
  }
  setNetBackend(index: number, attach: boolean): void {
    this.dev.setBackend(this.kernelIndex(index), attach);
  }
  /** A vhost-net device serves one queue pair: virtio queue 2k/2k+1 → vring 0/1. */
  private kernelIndex(index: number): number {
    if (!Number.isInteger(index) || index < 0) throw new VirqError(VhostUserErrorCode.Ioctl, `vring index ${index} is invalid`, { errno: 'EINVAL' });
    return index & 1;
  }
}
