import { EventFd, GuestMemory, createSimContext, type SimContext } from '@virq/core';
import { SplitVirtqueueDriver, splitRingLayout } from '@virq/virtio-ring';
import {
  InProcessFd,
  InProcessHost,
  InProcessVhostUserLink,
  QEMU_PROTOCOL_FEATURES,
  VhostUserFrontend,
  VhostUserNetBackend,
  bit,
  type PacketHandler,
} from '@virq/vhost-user';

export const UVA = 0x7fcf6ffff000;
export const MEM = 4 << 20;
export const QSIZE = 256;
/** RX buffers live at 1 MiB + i·2 KiB; TX frames at 3 MiB + i·2 KiB. */
export const RXBUF = 0x100000;
export const TXBUF = 0x300000;

export interface NetRig {
  ctx: SimContext;
  mem: GuestMemory;
  net: VhostUserNetBackend<InProcessFd>;
  link: InProcessVhostUserLink<InProcessFd>;
  fe: VhostUserFrontend<InProcessFd>;
  rx: SplitVirtqueueDriver<number>;
  tx: SplitVirtqueueDriver<number>;
  kick: EventFd[];
  call: EventFd[];
  interrupts: number[];
}

export interface NetRigOptions {
  handler?: PacketHandler;
  features?: bigint;
  poll?: boolean;
  dataPath?: 'fast' | 'virtio-ring';
}

/** A guest (virtio-ring driver side) wired to the net back end through the QEMU front end. */
export function makeNetRig(o: NetRigOptions = {}): NetRig {
  const ctx = createSimContext({ seed: 16 });
  const be = ctx.scheduler.actor({ name: 'vhost-user-net', kind: 'backend', cpu: 1 });
  const guest = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 0 });
  const host = new InProcessHost(ctx.scheduler, { actor: be });
  const buffer = new ArrayBuffer(MEM);
  const mem = new GuestMemory([{ gpa: 0, size: MEM, buffer }]);
  const net = new VhostUserNetBackend<InProcessFd>(host, { handler: o.handler, poll: o.poll, dataPath: o.dataPath, defer: (fn) => void ctx.scheduler.after(0, be, fn), trace: ctx.trace });
  const link = new InProcessVhostUserLink(net.protocol);
  const fe = new VhostUserFrontend<InProcessFd>(link, { protocolFeatures: QEMU_PROTOCOL_FEATURES });
  const features = o.features ?? bit(32) | bit(15) | bit(29);
  const lay = [splitRingLayout(QSIZE, 0x10000), splitRingLayout(QSIZE, 0x20000)];
  const kick = [0, 1].map((i) => new EventFd(ctx.scheduler, { name: `kick${i}` }));
  const call = [0, 1].map((i) => new EventFd(ctx.scheduler, { name: `call${i}` }));
  const interrupts = [0, 0];
  call.forEach((c, i) => c.addWaiter({ actor: guest, wake: (e) => void (interrupts[i]! += e.testAndClear() > 0 ? 1 : 0) }));
  fe.init(2, [InProcessFd.eventfd(new EventFd(ctx.scheduler)), InProcessFd.eventfd(new EventFd(ctx.scheduler))]);
  fe.setVringEnable(2, true);
  fe.start({
    features,
    regions: [{ region: { guestPhysAddr: 0, memorySize: MEM, userspaceAddr: UVA, mmapOffset: 0 }, fd: InProcessFd.memory(buffer) }],
    rings: lay.map((l, i) => ({ num: QSIZE, base: 0, desc: UVA + l.desc, avail: UVA + l.driver, used: UVA + l.device, kick: InProcessFd.eventfd(kick[i]!), call: InProcessFd.eventfd(call[i]!) })),
  });
  const mk = (i: number) => new SplitVirtqueueDriver<number>(mem, { size: QSIZE, desc: lay[i]!.desc, driver: lay[i]!.driver, device: lay[i]!.device, features, index: i, notify: () => void kick[i]!.write(1) });
  return { ctx, mem, net, link, fe, rx: mk(0), tx: mk(1), kick, call, interrupts };
}

/** A 60-byte Ethernet frame with dst 02:00:00:00:00:01, src 52:54:00:12:34:56, type 0x88b5. */
export function frame(seq: number, len = 60): Uint8Array {
  const f = new Uint8Array(len);
  f.set([0x02, 0, 0, 0, 0, 0x01, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5]);
  f[14] = seq & 0xff;
  f[15] = seq >>> 8;
  return f;
}

/** Guest transmit: virtio_net_hdr (12 zero bytes) + frame in one descriptor, then kick. */
export function guestSend(r: NetRig, seq: number, f: Uint8Array = frame(seq), kick = true): void {
  const at = TXBUF + (seq % QSIZE) * 2048;
  r.mem.fill(at, 12, 0);
  r.mem.writeBytes(at + 12, f);
  r.tx.addOutbuf(at, 12 + f.length, seq);
  if (kick) r.tx.kick();
}

/** Guest posts `n` RX buffers of `len` bytes. */
export function guestPostRx(r: NetRig, n: number, len = 2048, from = 0): void {
  for (let i = 0; i < n; i++) r.rx.addInbuf(RXBUF + ((from + i) % 512) * 2048, len, from + i);
  r.rx.kick();
}
