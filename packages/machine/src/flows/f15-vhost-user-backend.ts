import { EventFd } from '@virq/core';
import {
  InProcessFd,
  InProcessHost,
  InProcessVhostUserLink,
  VhostUserBackend,
  VhostUserFrontend,
  VhostUserProtocolFeature,
  VhostUserRequest,
  VirtioFeature,
  bit,
  encodeMemoryTable,
  encodeU64,
  encodeVringAddr,
  encodeVringState,
} from '@virq/vhost-user';
import { defineFlow } from './flow-kit.js';

/** Where the front end maps guest RAM (uva = base + gpa), as QEMU's memfd backend does. */
const GUEST_UVA = 0x7fcf6ffff000;
const MEM_SIZE = 1 << 20;
const VRING_NUM = 256;

/**
 * F15 (seed 003): a DPDK-style vhost-user back end (@virq/vhost-user's protocol state
 * machine, DPDK 22.11 rules) receives QEMU's ring set-up in the order the seed's log shows:
 * SET_VRING_KICK idx 0, SET_VRING_CALL idx 0, SET_VRING_NUM/BASE/ADDR for ring 1,
 * SET_VRING_KICK idx 1, SET_VRING_CALL idx 1, SET_VRING_ENABLE ×2. Each message goes through
 * vhost_user_msg_handler (request number and fd count validated) to its handler; once every
 * ring has kick, call, addresses and is enabled, virtio_is_ready holds and the application's
 * new_device callback runs. (Ring 0's NUM/BASE/ADDR, the negotiation, SET_OWNER and the
 * memory table come before the captured part, as in the seed.)
 */
export const f15VhostUserBackend = defineFlow('F15', (s) => {
  const sched = s.ctx.scheduler;
  const app = sched.actor({ name: 'vhost-switch', kind: 'backend', cpu: 2 });
  const host = new InProcessHost(sched, { actor: app });
  let devices = 0;
  const backend = new VhostUserBackend<InProcessFd>(
    host,
    {
      features: bit(VirtioFeature.F_VERSION_1) | bit(VirtioFeature.RING_F_EVENT_IDX) | bit(VirtioFeature.NET_F_MRG_RXBUF),
      protocolFeatures: bit(VhostUserProtocolFeature.MQ) | bit(VhostUserProtocolFeature.REPLY_ACK),
      maxRings: 2,
      queueNum: 1,
      // The application's vhost_device_ops.new_device (LSWITCH: "Virtual device 0 is added").
      newDevice: () => void devices++,
    },
    { trace: s.ctx.trace },
  );
  const fe = new VhostUserFrontend<InProcessFd>(new InProcessVhostUserLink(backend));
  const efd = (name: string): InProcessFd => InProcessFd.eventfd(new EventFd(sched, { name }));
  const R = VhostUserRequest;
  const memory = new ArrayBuffer(MEM_SIZE);
  const ring = (i: number) => ({ desc: 0x10000 + i * 0x4000, avail: 0x11000 + i * 0x4000, used: 0x11240 + i * 0x4000 });
  const numBaseAddr = (i: number): void => {
    fe.send(R.SET_VRING_NUM, encodeVringState({ index: i, num: VRING_NUM }));
    fe.send(R.SET_VRING_BASE, encodeVringState({ index: i, num: 0 }));
    const g = ring(i);
    fe.send(R.SET_VRING_ADDR, encodeVringAddr({ index: i, flags: 0, desc: GUEST_UVA + g.desc, used: GUEST_UVA + g.used, avail: GUEST_UVA + g.avail, log: 0 }));
  };
  fe.init(2, [efd('masked-call0'), efd('masked-call1')]);
  fe.send(R.SET_FEATURES, encodeU64(bit(VirtioFeature.F_VERSION_1) | bit(VirtioFeature.RING_F_EVENT_IDX) | (1n << 30n)));
  fe.send(R.SET_MEM_TABLE, encodeMemoryTable([{ guestPhysAddr: 0, memorySize: MEM_SIZE, userspaceAddr: GUEST_UVA, mmapOffset: 0 }]), [InProcessFd.memory(memory, 'memfd:pc.ram')], true);
  numBaseAddr(0);
  s.mark();
  // The socket's read callback runs each message on the back end's thread.
  sched.after(0, app, () => {
    fe.send(R.SET_VRING_KICK, encodeU64(0), [efd('kick0')]);
    fe.send(R.SET_VRING_CALL, encodeU64(0), [efd('call0')]);
    numBaseAddr(1);
    fe.send(R.SET_VRING_KICK, encodeU64(1), [efd('kick1')]);
    fe.send(R.SET_VRING_CALL, encodeU64(1), [efd('call1')]);
    fe.send(R.SET_VRING_ENABLE, encodeVringState({ index: 0, num: 1 }));
    fe.send(R.SET_VRING_ENABLE, encodeVringState({ index: 1, num: 1 }));
  });
  sched.runUntilIdle();
  s.notes.push(`new_device called ${devices} time(s); device running: ${backend.running}`);
});
