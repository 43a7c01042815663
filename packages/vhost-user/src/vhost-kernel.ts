import { VirqError, type Actor, type ErrnoName, type EventFd, type GuestMemory, type SimContext, type TraceChannel, type TraceEvent } from '@virq/core';
import { DescriptorChain, SplitVirtqueueDevice, type VirtioRingEvent } from '@virq/virtio-ring';
import { VhostUserErrorCode } from './errors.js';
import type { PacketHandler } from './packet-handler.js';
import { VirtioFeature, bit } from './protocol.js';

/** The vhost ioctls (FACTS §11.1; uapi linux/vhost.h, VHOST_VIRTIO 0xAF). */
export const VhostIoctl = {
  VHOST_GET_FEATURES: 0x00,
  VHOST_SET_FEATURES: 0x00,
  VHOST_SET_OWNER: 0x01,
  VHOST_RESET_OWNER: 0x02,
  VHOST_SET_MEM_TABLE: 0x03,
  VHOST_SET_LOG_BASE: 0x04,
  VHOST_SET_VRING_NUM: 0x10,
  VHOST_SET_VRING_ADDR: 0x11,
  VHOST_SET_VRING_BASE: 0x12,
  VHOST_GET_VRING_BASE: 0x12,
  VHOST_SET_VRING_KICK: 0x20,
  VHOST_SET_VRING_CALL: 0x21,
  VHOST_SET_VRING_ERR: 0x22,
  VHOST_NET_SET_BACKEND: 0x30,
} as const;

/** vhost_memory_region (the kernel table has no mmap offset: the VMM's own mapping is used). */
export interface VhostKernelMemoryRegion {
  guestPhysAddr: number;
  memorySize: number;
  userspaceAddr: number;
}

export type VhostKernelEvent = TraceEvent<'vhost.ioctl' | 'vhost.poll' | 'vhost.work' | 'vhost.handle' | 'vhost.signal'>;

export interface VhostKernelNetOptions {
  /** The VM's memory as the VMM maps it (QEMU's RAM): kernel vhost reaches it through the VMM's page tables. */
  memory: GuestMemory;
  /** The VMM process's pid, for the worker name `vhost-<pid>`. */
  ownerPid: number;
  /** Host CPU of the vhost worker. Default 1. */
  cpu?: number;
  /** What the TX path feeds (the tap device); frames it answers go to RX. Default: none (a sink). */
  handler?: PacketHandler;
  /** Features vhost-net offers (VHOST_NET_FEATURES). */
  features?: bigint;
}

interface KernelVq {
  num: number;
  lastAvail: number;
  desc: number | undefined;
  avail: number | undefined;
  used: number | undefined;
  kick: EventFd | null;
  call: EventFd | null;
  err: EventFd | null;
  removeWaiter: (() => void) | undefined;
  /** VHOST_NET_SET_BACKEND done (vq->private_data). */
  backend: boolean;
  dev: SplitVirtqueueDevice | undefined;
}

function ioctlError(name: string, errno: ErrnoName | 'ENOBUFS', message: string): VirqError {
  return new VirqError(VhostUserErrorCode.Ioctl, `${name}: ${message}`, { errno: errno === 'ENOBUFS' ? undefined : errno, details: { ioctl: name, errno } });
}

/** Frames the tun file's ring holds before tun_net_xmit drops (the tap's default tx_queue_len). */
export const TUN_RING_FRAMES = 1000;
/** handle_rx's packet budget per run (VHOST_NET_PKT_WEIGHT): beyond it the work is requeued. */
export const VHOST_NET_PKT_WEIGHT = 256;

/**
 * The kernel vhost-net model (drivers/vhost/vhost.c + net.c): the ioctls QEMU's
 * vhost_kernel_* backend issues, ring state per virtqueue, and the vhost worker thread.
 * Kicks: the kick eventfd's wait-queue entry (`vhost_poll_wakeup`, run in the writer's context
 * — KVM's ioeventfd write) queues work (`vhost_poll_queue` → `vhost_work_queue`), waking the
 * `vhost-<pid>` worker after a thread wake-up; the worker runs `handle_tx_kick`, which drains
 * TX with kicks disabled (`vhost_disable_notify` … `vhost_enable_notify`), and signals the call
 * eventfd when `vhost_notify` says so (`vhost_signal` → eventfd_signal → irqfd, F9).
 * Shares the ring code (@virq/virtio-ring, flavor 'vhost-kernel') with the vhost-user back end.
 */
export class VhostKernelNet {
  readonly worker: Actor;
  owner = false;
  features = 0n;
  private mem: VhostKernelMemoryRegion[] | undefined;
  private readonly vqs: KernelVq[] = [];
  private workQueued = false;
  private readonly pending = new Set<number>();
  private readonly trace: TraceChannel<VhostKernelEvent>;
  private readonly ringTrace: TraceChannel<VirtioRingEvent>;
  private readonly chain = new DescriptorChain();
  private readonly rxChain = new DescriptorChain();
  private readonly handler: PacketHandler | undefined;
  readonly offered: bigint;
  readonly counters = { kicks: 0, works: 0, txFrames: 0, rxFrames: 0, rxDropped: 0, signals: 0, tapFrames: 0, tapDropped: 0 };
  /** The tun file's ring toward this socket (tfile->tx_ring): frames the host stack sent out of the tap. */
  private readonly tapRing: Uint8Array[] = [];
  private tapHead = 0;

  constructor(
    private readonly ctx: SimContext,
    private readonly options: VhostKernelNetOptions,
  ) {
    this.worker = ctx.scheduler.actor({ name: `vhost-${options.ownerPid}`, kind: 'vhost-worker', cpu: options.cpu ?? 1 });
    this.trace = ctx.trace.channel<VhostKernelEvent>('vhost');
    this.ringTrace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
    this.handler = options.handler;
    this.offered = options.features ?? bit(VirtioFeature.F_VERSION_1) | bit(VirtioFeature.NET_F_MRG_RXBUF) | bit(VirtioFeature.RING_F_EVENT_IDX) | bit(VirtioFeature.RING_F_INDIRECT_DESC) | bit(VirtioFeature.F_NOTIFY_ON_EMPTY) | bit(VirtioFeature.F_ANY_LAYOUT);
    for (let i = 0; i < 2; i++) this.vqs.push({ num: 0, lastAvail: 0, desc: undefined, avail: undefined, used: undefined, kick: null, call: null, err: null, removeWaiter: undefined, backend: false, dev: undefined });
  }

  private ioctl(name: string, args: Record<string, number | string | boolean>): void {
    if (this.trace.on) this.trace.emit('vhost.ioctl', name === 'VHOST_NET_SET_BACKEND' ? 'vhost_net_set_backend' : 'vhost_dev_ioctl', 'vhost_net_ioctl', { ioctl: name, ...args });
  }

  private checkOwner(name: string): void {
    if (!this.owner) throw ioctlError(name, 'EPERM', 'the caller is not the owner; issue VHOST_SET_OWNER first (vhost_dev_check_owner)');
  }

  private vq(name: string, index: number): KernelVq {
    const vq = this.vqs[index];
    if (!Number.isInteger(index) || vq === undefined) throw ioctlError(name, 'ENOBUFS', `vring index ${index} ≥ nvqs (${this.vqs.length})`);
    return vq;
  }

  /** VHOST_SET_OWNER: binds the device to the caller and creates the vhost worker. */
  setOwner(): void {
    this.ioctl('VHOST_SET_OWNER', {});
    if (this.owner) throw ioctlError('VHOST_SET_OWNER', 'EBUSY', 'the device already has an owner');
    this.owner = true;
  }

  /** VHOST_RESET_OWNER: stops every ring and forgets the owner. */
  resetOwner(): void {
    this.checkOwner('VHOST_RESET_OWNER');
    for (const vq of this.vqs) {
      vq.removeWaiter?.();
      Object.assign(vq, { num: 0, lastAvail: 0, desc: undefined, avail: undefined, used: undefined, kick: null, call: null, err: null, removeWaiter: undefined, backend: false, dev: undefined });
    }
    this.owner = false;
    this.mem = undefined;
    this.features = 0n;
  }

  getFeatures(): bigint {
    return this.offered;
  }

  setFeatures(features: bigint): void {
    this.checkOwner('VHOST_SET_FEATURES');
    if ((features & ~this.offered) !== 0n) throw ioctlError('VHOST_SET_FEATURES', 'EOPNOTSUPP', `features 0x${features.toString(16)} include bits vhost-net does not offer (0x${this.offered.toString(16)}); the kernel answers EOPNOTSUPP`);
    this.features = features;
    this.ioctl('VHOST_SET_FEATURES', { features: `0x${features.toString(16)}` });
  }

  /** VHOST_SET_MEM_TABLE: regions must be non-empty, not overflow, and be memory the VMM mapped. */
  setMemTable(regions: VhostKernelMemoryRegion[]): void {
    this.checkOwner('VHOST_SET_MEM_TABLE');
    if (regions.length > 509) throw ioctlError('VHOST_SET_MEM_TABLE', 'E2BIG', `${regions.length} regions exceed max_mem_regions (509)`);
    for (const r of regions) {
      if (r.memorySize <= 0 || !(r.guestPhysAddr + r.memorySize < 2 ** 53) || !(r.userspaceAddr + r.memorySize < 2 ** 53)) {
        throw ioctlError('VHOST_SET_MEM_TABLE', 'EFAULT', `region gpa 0x${r.guestPhysAddr.toString(16)} size 0x${r.memorySize.toString(16)} is empty or overflows`);
      }
      if (!this.options.memory.isValid(r.guestPhysAddr, r.memorySize)) throw ioctlError('VHOST_SET_MEM_TABLE', 'EFAULT', `region gpa 0x${r.guestPhysAddr.toString(16)} +0x${r.memorySize.toString(16)} is not mapped by the VMM`);
    }
    this.mem = regions.map((r) => ({ ...r }));
    this.ioctl('VHOST_SET_MEM_TABLE', { nregions: regions.length });
  }

  private uvaToGpa(uva: number, len: number): number | undefined {
    for (const r of this.mem ?? []) if (uva >= r.userspaceAddr && uva + len <= r.userspaceAddr + r.memorySize) return uva - r.userspaceAddr + r.guestPhysAddr;
    return undefined;
  }

  setVringNum(index: number, num: number): void {
    this.checkOwner('VHOST_SET_VRING_NUM');
    const vq = this.vq('VHOST_SET_VRING_NUM', index);
    if (vq.backend) throw ioctlError('VHOST_SET_VRING_NUM', 'EBUSY', `vring ${index} has a backend; detach it (VHOST_NET_SET_BACKEND fd -1) first`);
    if (!num || num > 0xffff || (num & (num - 1)) !== 0) throw ioctlError('VHOST_SET_VRING_NUM', 'EINVAL', `num ${num} must be a non-zero power of two ≤ 32768`);
    vq.num = num;
    this.ioctl('VHOST_SET_VRING_NUM', { index, num });
  }

  setVringBase(index: number, base: number): void {
    this.checkOwner('VHOST_SET_VRING_BASE');
    const vq = this.vq('VHOST_SET_VRING_BASE', index);
    if (vq.backend) throw ioctlError('VHOST_SET_VRING_BASE', 'EBUSY', `vring ${index} has a backend`);
    if (base > 0xffff || base < 0) throw ioctlError('VHOST_SET_VRING_BASE', 'EINVAL', `base ${base} is not a u16`);
    vq.lastAvail = base;
    this.ioctl('VHOST_SET_VRING_BASE', { index, num: base });
  }

  getVringBase(index: number): number {
    this.checkOwner('VHOST_GET_VRING_BASE');
    const vq = this.vq('VHOST_GET_VRING_BASE', index);
    if (vq.dev !== undefined) vq.lastAvail = vq.dev.getVringBase();
    this.ioctl('VHOST_GET_VRING_BASE', { index, num: vq.lastAvail });
    return vq.lastAvail;
  }

  /** VHOST_SET_VRING_ADDR: user addresses; every part must be accessible (vq_access_ok). */
  setVringAddr(index: number, a: { desc: number; avail: number; used: number; flags?: number }): void {
    this.checkOwner('VHOST_SET_VRING_ADDR');
    const vq = this.vq('VHOST_SET_VRING_ADDR', index);
    if (vq.backend) throw ioctlError('VHOST_SET_VRING_ADDR', 'EBUSY', `vring ${index} has a backend`);
    if ((a.flags ?? 0) & ~1) throw ioctlError('VHOST_SET_VRING_ADDR', 'EOPNOTSUPP', `flags 0x${(a.flags ?? 0).toString(16)}`);
    if (a.desc % 16 || a.avail % 2 || a.used % 4) throw ioctlError('VHOST_SET_VRING_ADDR', 'EINVAL', 'desc must be 16-, avail 2- and used 4-byte aligned');
    const n = vq.num;
    const desc = this.uvaToGpa(a.desc, 16 * n);
    const avail = this.uvaToGpa(a.avail, 6 + 2 * n);
    const used = this.uvaToGpa(a.used, 6 + 8 * n);
    if (n === 0 || desc === undefined || avail === undefined || used === undefined) throw ioctlError('VHOST_SET_VRING_ADDR', 'EINVAL', `vring ${index}: ring parts are not inside the memory table (vq_access_ok)`);
    vq.desc = desc;
    vq.avail = avail;
    vq.used = used;
    this.ioctl('VHOST_SET_VRING_ADDR', { index, desc: a.desc, avail: a.avail, used: a.used });
  }

  /** VHOST_SET_VRING_KICK: vhost_poll_start on the eventfd (null = fd -1: stop polling). */
  setVringKick(index: number, kick: EventFd | null): void {
    this.checkOwner('VHOST_SET_VRING_KICK');
    const vq = this.vq('VHOST_SET_VRING_KICK', index);
    vq.removeWaiter?.();
    vq.removeWaiter = undefined;
    vq.kick = kick;
    if (kick !== null) {
      // No actor: vhost_poll_wakeup runs in the waker's context (KVM's ioeventfd write).
      vq.removeWaiter = kick.addWaiter({ wake: (fd) => this.pollWakeup(index, fd) });
    }
    this.ioctl('VHOST_SET_VRING_KICK', { index, fd: kick?.fd ?? -1 });
  }

  setVringCall(index: number, call: EventFd | null): void {
    this.checkOwner('VHOST_SET_VRING_CALL');
    this.vq('VHOST_SET_VRING_CALL', index).call = call;
    this.ioctl('VHOST_SET_VRING_CALL', { index, fd: call?.fd ?? -1 });
  }

  setVringErr(index: number, err: EventFd | null): void {
    this.checkOwner('VHOST_SET_VRING_ERR');
    this.vq('VHOST_SET_VRING_ERR', index).err = err;
  }

  /** VHOST_NET_SET_BACKEND: attach (true) the tap/socket to a ring, or detach (false, fd -1). */
  setBackend(index: number, attach: boolean): void {
    this.checkOwner('VHOST_NET_SET_BACKEND');
    const vq = this.vq('VHOST_NET_SET_BACKEND', index);
    if (!attach) {
      if (vq.dev !== undefined) vq.lastAvail = vq.dev.getVringBase();
      vq.backend = false;
      vq.dev = undefined;
      this.ioctl('VHOST_NET_SET_BACKEND', { index, fd: -1 });
      return;
    }
    if (this.mem === undefined || vq.desc === undefined || vq.avail === undefined || vq.used === undefined) throw ioctlError('VHOST_NET_SET_BACKEND', 'EFAULT', `vring ${index} is not set up (mem table, num, addr) — vhost_vq_access_ok fails`);
    const call = (): void => {
      const c = vq.call;
      if (c === null) return;
      this.counters.signals++;
      if (this.trace.on) this.trace.emit('vhost.signal', 'vhost_signal', 'vhost_add_used_and_signal_n', { index });
      c.tryWrite(1);
    };
    vq.dev = new SplitVirtqueueDevice(this.options.memory, { size: vq.num, desc: vq.desc, driver: vq.avail, device: vq.used, features: this.features, index, flavor: 'vhost-kernel', trace: this.ringTrace, call, onError: () => vq.err?.tryWrite(1) });
    vq.dev.setVringBase(vq.lastAvail);
    vq.backend = true;
    this.ioctl('VHOST_NET_SET_BACKEND', { index, fd: 1 });
  }

  /** vhost_poll_wakeup → vhost_poll_queue → vhost_work_queue (+ wake_up_process of the worker). */
  private pollWakeup(index: number, fd: EventFd): void {
    this.counters.kicks++;
    if (this.trace.on) this.trace.emit('vhost.poll', 'vhost_poll_wakeup', '__wake_up_common', { index, fd: fd.fd });
    this.queueWork(index);
  }

  /**
   * A frame the host stack forwards out of the tap (tun_net_xmit, in the sender's context —
   * the NIC's softirq): it joins the tun file's ring, or is dropped when the ring is full;
   * the socket's wait queue then wakes the RX ring's socket poll (sock_def_readable →
   * vhost_poll_wakeup → vhost_poll_queue) and the worker runs handle_rx_net. Returns whether
   * the frame was queued.
   */
  tapXmit(frame: Uint8Array): boolean {
    if (this.tapRing.length - this.tapHead >= TUN_RING_FRAMES) {
      this.counters.tapDropped++;
      if (this.trace.on) this.trace.emit('vhost.poll', 'tun_net_xmit', 'dev_hard_start_xmit', { dev: 'tap0', len: frame.length, dropped: true });
      return false;
    }
    this.counters.tapFrames++;
    if (this.trace.on) this.trace.emit('vhost.poll', 'tun_net_xmit', 'dev_hard_start_xmit', { dev: 'tap0', len: frame.length, dropped: false });
    this.tapRing.push(frame);
    const rx = this.vqs[0]!;
    // The socket poll is armed only while a backend is attached (vhost_net_enable_vq).
    if (!rx.backend) return true;
    // sock_def_readable → __wake_up_sync_key → __wake_up_common → vhost_poll_wakeup (the socket's wait queue)
    if (this.trace.on) this.trace.emit('vhost.poll', 'vhost_poll_wakeup', '__wake_up_common', { index: 0, sock: 'tap0' });
    this.queueWork(0, 'sock');
    return true;
  }

  /** Frames waiting on the tap for the RX ring. */
  get tapQueued(): number {
    return this.tapRing.length - this.tapHead;
  }

  /** vhost_poll_queue → vhost_work_queue (+ wake_up_process of the worker). */
  private queueWork(index: number, source: 'kick' | 'sock' = 'kick'): void {
    if (index === 0) this.rxSource = source === 'sock' || this.rxSource === 'sock' ? 'sock' : 'kick';
    this.pending.add(index);
    if (this.workQueued) return;
    this.workQueued = true;
    if (this.trace.on) this.trace.emit('vhost.work', 'vhost_work_queue', 'vhost_poll_queue', { index });
    const s = this.ctx.scheduler;
    s.after(this.ctx.costs.ns.threadWakeup, this.worker, () => this.workerRun());
  }

  /** The vhost worker (vhost_worker → handle_tx_kick / handle_rx_kick). */
  private workerRun(): void {
    this.workQueued = false;
    this.counters.works++;
    const list = [...this.pending];
    this.pending.clear();
    for (const index of list) {
      const vq = this.vqs[index]!;
      vq.kick?.testAndClear();
      if (index === 1) this.handleTx();
      else {
        // handle_rx_kick (the guest added rx buffers) or handle_rx_net (the tap socket has data): both run handle_rx.
        if (this.trace.on) this.trace.emit('vhost.handle', this.rxSource === 'sock' ? 'handle_rx_net' : 'handle_rx_kick', 'vhost_worker', { index });
        this.rxSource = 'kick';
        this.handleRx();
      }
    }
  }

  private rxSource: 'kick' | 'sock' = 'kick';

  /**
   * handle_rx (net.c): with guest notifications off, move frames from the tun ring into RX
   * buffers; out of buffers → vhost_enable_notify and wait for the guest's rx kick (re-check
   * once, as the kernel does); signal the used buffers at the end (vhost_net_signal_used →
   * vhost_add_used_and_signal_n); after VHOST_NET_PKT_WEIGHT frames the work is requeued.
   */
  private handleRx(): void {
    const rx = this.vqs[0]!.dev;
    if (rx === undefined) return;
    rx.disableNotification();
    let frames = 0;
    while (this.tapHead < this.tapRing.length) {
      if (frames >= VHOST_NET_PKT_WEIGHT) {
        // vhost_exceeds_weight → vhost_poll_queue: let the other rings run first.
        this.queueWork(0, 'sock');
        break;
      }
      const c = rx.pop(this.rxChain);
      if (c === null) {
        if (rx.broken) break;
        if (rx.enableNotification()) {
          rx.disableNotification();
          continue;
        }
        break; // no buffers: the guest's rx kick brings handle_rx back
      }
      const frame = this.tapRing[this.tapHead++]!;
      frames++;
      if (c.inBytes < 12 + frame.length) {
        // The buffer cannot hold the header and the frame: the frame is discarded ("Discarded
        // rx packet") and the descriptors go back to the ring (vhost_discard_vq_desc).
        this.counters.rxDropped++;
        rx.unpop(1);
        continue;
      }
      const hdr = new Uint8Array(12);
      hdr[10] = 1; // num_buffers = 1 (virtio_net_hdr_mrg_rxbuf)
      rx.writeToChain(c, hdr);
      rx.writeToChain(c, frame, 12);
      rx.fill(c, 12 + frame.length);
      this.counters.rxFrames++;
    }
    if (this.tapHead === this.tapRing.length) {
      this.tapRing.length = 0;
      this.tapHead = 0;
    } else if (this.tapHead > 4096) {
      this.tapRing.splice(0, this.tapHead);
      this.tapHead = 0;
    }
    if (rx.flush() > 0) rx.notify();
  }

  /** handle_tx (net.c): drain TX with kicks off, feed the tap, signal per vhost_notify. */
  private handleTx(): void {
    const txq = this.vqs[1]!;
    const tx = txq.dev;
    if (this.trace.on) this.trace.emit('vhost.handle', 'handle_tx_kick', 'vhost_worker', { index: 1 });
    if (tx === undefined) return;
    for (;;) {
      tx.disableNotification();
      for (let c = tx.pop(this.chain); c !== null; c = tx.pop(this.chain)) {
        const buf = new Uint8Array(c.outBytes);
        const n = tx.readFromChain(c, buf);
        this.counters.txFrames++;
        if (n > 12) this.handler?.handle(buf.subarray(12, n), (f) => this.deliverRx(f));
        tx.fill(c, 0);
        tx.flush();
      }
      if (!tx.enableNotification()) break;
    }
    tx.notify();
    const rx = this.vqs[0]!.dev;
    if (rx !== undefined && rx.flush() > 0) rx.notify();
  }

  private deliverRx(frame: Uint8Array): void {
    const rx = this.vqs[0]!.dev;
    const c = rx?.pop(this.rxChain) ?? null;
    if (rx === undefined || c === null || c.inBytes < 12 + frame.length) {
      if (c !== null) rx!.unpop(1);
      this.counters.rxDropped++;
      return;
    }
    const hdr = new Uint8Array(12);
    hdr[10] = 1;
    rx.writeToChain(c, hdr);
    rx.writeToChain(c, frame, 12);
    rx.fill(c, 12 + frame.length);
    this.counters.rxFrames++;
  }
}
