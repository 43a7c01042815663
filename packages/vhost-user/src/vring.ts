import type { CallNotifier } from './host.js';
import type { VringAddr } from './payload.js';

/** Split-ring part sizes for a ring of `num` entries (virtio spec §2.7; FACTS §1). */
export function splitRingSizes(num: number, eventIdx: boolean): { desc: number; avail: number; used: number } {
  const ev = eventIdx ? 2 : 0;
  return { desc: 16 * num, avail: 4 + 2 * num + ev, used: 4 + 8 * num + ev };
}

/**
 * One virtqueue as the back end knows it (DPDK's `struct vhost_virtqueue`): size, the indexes,
 * the ring addresses (as sent, and translated to guest physical addresses over the memory
 * table), the kick/call/err fds, and the two independent properties of FACTS §10.5:
 * started/stopped and enabled/disabled.
 */
export class VhostUserVring<F> {
  /** SET_VRING_NUM; 0 = not set. */
  size = 0;
  /** Next avail index to process (SET_VRING_BASE, GET_VRING_BASE's answer). */
  lastAvailIdx = 0;
  /** Next used index to write. */
  lastUsedIdx = 0;
  /** SET_VRING_ADDR as received (front-end user addresses). */
  addr: VringAddr | undefined;
  /** Translated guest physical addresses; undefined until the ring translates. */
  descGpa: number | undefined;
  availGpa: number | undefined;
  usedGpa: number | undefined;
  /** The kick fd: undefined = never set (DPDK's VIRTIO_UNINITIALIZED_EVENTFD), null = "no fd" (poll). */
  kickFd: F | null | undefined;
  callFd: F | null | undefined;
  errFd: F | null | undefined;
  call: CallNotifier | undefined;
  stopKickWatch: (() => void) | undefined;
  enabled = false;
  started = false;
  /** F16 state: the used index last signalled and whether it is valid (DPDK signalled_used). */
  signalledUsed = 0;
  signalledUsedValid = false;
  kicks = 0;
  calls = 0;

  constructor(readonly index: number) {}

  /** Whether the ring's addresses translate (desc, avail and used all known). */
  get translated(): boolean {
    return this.descGpa !== undefined && this.availGpa !== undefined && this.usedGpa !== undefined;
  }

  /** DPDK's vq_is_ready: rings translated, kick and call initialised, enabled. */
  get ready(): boolean {
    return this.translated && this.kickFd !== undefined && this.callFd !== undefined && this.enabled;
  }
}
