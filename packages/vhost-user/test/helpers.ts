import { EventFd, createSimContext, type SimContext } from '@virq/core';
import { readFileSync } from 'node:fs';
import {
  InProcessFd,
  InProcessHost,
  InProcessVhostUserLink,
  VhostUserBackend,
  VhostUserProtocolFeature,
  VirtioFeature,
  bit,
  type VhostUserDeviceOps,
} from '@virq/vhost-user';

/** A guest memory layout like QEMU's: one memfd region at GPA 0, mapped at a high user address. */
export const GUEST_UVA = 0x7fcf6ffff000;
export const MEM_SIZE = 1 << 20;
/** Ring layout (like the capture: desc, avail at +0x1000, used at +0x1240 for 256 entries). */
export function ringGpas(i: number): { desc: number; avail: number; used: number } {
  const base = 0x10000 + i * 0x4000;
  return { desc: base, avail: base + 0x1000, used: base + 0x1240 };
}

export const DEVICE_FEATURES =
  bit(VirtioFeature.F_VERSION_1) | bit(VirtioFeature.NET_F_MRG_RXBUF) | bit(VirtioFeature.RING_F_EVENT_IDX) | bit(VirtioFeature.RING_F_INDIRECT_DESC) | bit(VirtioFeature.NET_F_GUEST_ANNOUNCE) | bit(VirtioFeature.NET_F_MQ);
export const DEVICE_PROTOCOL_FEATURES = [
  VhostUserProtocolFeature.MQ,
  VhostUserProtocolFeature.REPLY_ACK,
  VhostUserProtocolFeature.BACKEND_REQ,
  VhostUserProtocolFeature.RESET_DEVICE,
  VhostUserProtocolFeature.STATUS,
].reduce((m, b) => m | bit(b), 0n);

export interface Rig {
  ctx: SimContext;
  host: InProcessHost;
  backend: VhostUserBackend<InProcessFd>;
  link: InProcessVhostUserLink<InProcessFd>;
  memory: ArrayBuffer;
  memFd: InProcessFd;
  events: { newDevice: number; destroyDevice: number; kicks: number[] };
  eventfd(name: string): InProcessFd;
}

export function makeRig(ops: Partial<VhostUserDeviceOps> = {}): Rig {
  const ctx = createSimContext({ seed: 3 });
  const actor = ctx.scheduler.actor({ name: 'vhost-events', kind: 'backend', cpu: 1 });
  const host = new InProcessHost(ctx.scheduler, { actor });
  const events = { newDevice: 0, destroyDevice: 0, kicks: [] as number[] };
  const backend = new VhostUserBackend<InProcessFd>(host, {
    features: DEVICE_FEATURES,
    protocolFeatures: DEVICE_PROTOCOL_FEATURES,
    maxRings: 4,
    queueNum: 2,
    newDevice: () => void events.newDevice++,
    destroyDevice: () => void events.destroyDevice++,
    kick: (i) => void events.kicks.push(i),
    ...ops,
  }, { trace: ctx.trace });
  const link = new InProcessVhostUserLink(backend);
  const memory = new ArrayBuffer(MEM_SIZE);
  return {
    ctx,
    host,
    backend,
    link,
    memory,
    memFd: InProcessFd.memory(memory, 'memfd:mem'),
    events,
    eventfd: (name) => InProcessFd.eventfd(new EventFd(ctx.scheduler, { name })),
  };
}

/** Request names, in order, from one of ../shared/realvm's captured sequences (setup or all). */
export function capturedSequence(file: string): string[] {
  const text = readFileSync(`/work/shared/realvm/${file}`, 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\d+ VHOST_USER_([A-Z_]+)\s*$/.exec(line);
    if (m) out.push(m[1]!.replace('SET_SLAVE_REQ_FD', 'SET_BACKEND_REQ_FD'));
  }
  return out;
}
