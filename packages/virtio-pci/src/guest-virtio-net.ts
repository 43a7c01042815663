import { type SimContext, VirqError } from '@virq/core';
import { VirtioPciErrorCode } from './errors.js';
import type { VirtqueueDriver } from '@virq/virtio-ring';
import type { GuestIrqMode, GuestVirtioPci } from './guest-virtio-pci.js';
import type { GuestPageAllocator } from './guest-page-allocator.js';
import { VirtioFeature, VirtioNetCtrl, VirtioNetFeature, VirtioNetHdr, bit } from './virtio-constants.js';

export interface GuestVirtioNetInit {
  pci: GuestVirtioPci;
  alloc: GuestPageAllocator;
  /** Features the driver supports (default: what Linux's virtio_net asks for here). */
  features?: bigint;
  /** Rx buffer size (mergeable: one page fragment; default 1536 + header). */
  rxBufSize?: number;
  irqModes?: readonly GuestIrqMode[];
  /** Frames the stack receives (netif_receive_skb). */
  onReceive?: (frame: Uint8Array, queuePair: number) => void;
}

/** A control command in flight (virtnet_send_command polls for it). */
export interface CtrlCommand {
  done: boolean;
  /** status == VIRTIO_NET_OK */
  ok: boolean;
  status: number;
  polls: number;
}

interface RxBuf {
  gpa: number;
  len: number;
}

/** NAPI_POLL_WEIGHT: virtnet_poll's budget. */
const NAPI_POLL_WEIGHT = 64;

/**
 * Linux drivers/net/virtio_net.c as a model: probe (rx/tx pairs + ctrl vq without a
 * callback), receive refill, start_xmit, NAPI-style receive on the rx callback, and
 * virtnet_send_command, which kicks the ctrl queue and polls its used ring for the status
 * byte instead of waiting for an interrupt.
 */
export class GuestVirtioNet {
  readonly pci: GuestVirtioPci;
  readonly pairs: number;
  readonly hdrLen: number;
  readonly mergeable: boolean;
  private readonly alloc: GuestPageAllocator;
  private readonly rxBufSize: number;
  private readonly rx: VirtqueueDriver<unknown>[] = [];
  private readonly tx: VirtqueueDriver<unknown>[] = [];
  private cvq: VirtqueueDriver<unknown> | undefined;
  private readonly txPool: number[][] = [];
  private readonly rxPool: number[] = [];
  private ctrlBuf = 0;
  private ctrlInFlight = false;
  readonly onReceive: ((frame: Uint8Array, queuePair: number) => void) | undefined;
  txPackets = 0;
  txCompleted = 0;
  txBusy = 0;
  rxPackets = 0;
  kicks = 0;
  readonly mac: number[] = [];

  constructor(
    readonly ctx: SimContext,
    init: GuestVirtioNetInit,
  ) {
    this.pci = init.pci;
    this.alloc = init.alloc;
    this.onReceive = init.onReceive;
    const want =
      init.features ??
      (bit(VirtioNetFeature.MAC) | bit(VirtioNetFeature.STATUS) | bit(VirtioNetFeature.CTRL_VQ) | bit(VirtioNetFeature.CTRL_RX) | bit(VirtioNetFeature.CTRL_RX_EXTRA) |
        bit(VirtioNetFeature.MRG_RXBUF) | bit(VirtioNetFeature.MQ) | bit(VirtioNetFeature.CTRL_MAC_ADDR) | bit(VirtioFeature.RING_EVENT_IDX));
    const f = this.pci.probe(want);
    const has = (n: number) => (f & bit(n)) !== 0n;
    this.mergeable = has(VirtioNetFeature.MRG_RXBUF);
    this.hdrLen = has(VirtioFeature.VERSION_1) || this.mergeable ? VirtioNetHdr.SIZE_MRG : VirtioNetHdr.SIZE;
    this.rxBufSize = init.rxBufSize ?? 1536 + this.hdrLen;
    for (let i = 0; i < 6; i++) this.mac.push(this.pci.readConfig(i, 1));
    this.pairs = has(VirtioNetFeature.MQ) ? Math.max(1, this.pci.readConfig(8, 2)) : 1;
    const infos = [];
    for (let p = 0; p < this.pairs; p++) {
      infos.push({ name: `input.${p}`, callback: () => this.skbRecvDone(p) });
      infos.push({ name: `output.${p}`, callback: () => this.skbXmitDone(p) });
    }
    const ctrl = has(VirtioNetFeature.CTRL_VQ);
    if (ctrl) infos.push({ name: 'control' });
    this.pci.findVqs(infos, init.irqModes);
    for (let p = 0; p < this.pairs; p++) {
      this.rx.push(this.pci.vqs[2 * p]!);
      this.tx.push(this.pci.vqs[2 * p + 1]!);
      this.txPool.push([]);
    }
    if (ctrl) {
      this.cvq = this.pci.vqs[2 * this.pairs]!;
      this.ctrlBuf = this.alloc.alloc(256, 64);
    }
    this.pci.ready();
    // virtnet_open: fill the receive rings and kick.
    for (let p = 0; p < this.pairs; p++) this.tryFillRecv(p);
    if (this.pairs > 1) this.sendCommand(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET, new Uint8Array([this.pairs & 0xff, this.pairs >> 8]));
  }

  /** try_fill_recv: add receive buffers until the ring is full, then kick. */
  tryFillRecv(pair: number): number {
    const vq = this.rx[pair]!;
    let added = 0;
    while (vq.numFree > 0) {
      const gpa = this.rxPool.pop() ?? this.alloc.alloc(this.rxBufSize, 64);
      if (!vq.addInbuf(gpa, this.rxBufSize, { gpa, len: this.rxBufSize } satisfies RxBuf)) {
        this.rxPool.push(gpa);
        break;
      }
      added++;
    }
    if (added > 0 && vq.kickPrepare()) {
      this.kicks++;
      vq.notify();
    }
    return added;
  }

  /**
   * skb_recv_done → NAPI poll (virtnet_poll): virtnet_receive up to the budget; a full budget
   * keeps the poll scheduled, otherwise virtqueue_napi_complete re-enables callbacks and polls
   * once more for what raced in.
   */
  private skbRecvDone(pair: number): void {
    const vq = this.rx[pair]!;
    vq.disableCb();
    for (;;) {
      if (this.virtnetReceive(pair) >= NAPI_POLL_WEIGHT) continue;
      const opaque = vq.enableCbPrepare();
      if (!vq.poll(opaque)) break;
      vq.disableCb();
    }
  }

  /**
   * virtnet_receive: at most `budget` packets, then try_fill_recv only once more than
   * min(budget, ring size) / 2 descriptors are free — refills come in batches, each with its
   * kick_prepare, not one per packet. Returns the packets received.
   */
  private virtnetReceive(pair: number): number {
    const vq = this.rx[pair]!;
    let packets = 0;
    while (packets < NAPI_POLL_WEIGHT) {
      const first = vq.getBuf() as RxBuf | undefined;
      if (first === undefined) break;
      const len = vq.lastLen;
      const mem = this.pci.mem;
      let frame: Uint8Array;
      if (this.mergeable) {
        // receive_mergeable: num_buffers from the first header, then gather the rest.
        const nb = mem.read16(first.gpa + VirtioNetHdr.NUM_BUFFERS);
        const parts = [mem.readBytes(first.gpa + this.hdrLen, len - this.hdrLen)];
        for (let i = 1; i < nb; i++) {
          const b = vq.getBuf() as RxBuf | undefined;
          if (b === undefined) break;
          parts.push(mem.readBytes(b.gpa, vq.lastLen));
          this.rxPool.push(b.gpa);
        }
        frame = concat(parts);
      } else {
        frame = mem.readBytes(first.gpa + this.hdrLen, len - this.hdrLen);
      }
      this.rxPool.push(first.gpa);
      packets++;
      this.rxPackets++;
      if (this.pci.trace.on) this.pci.trace.emit('guest.rx', 'receive_buf', 'virtnet_receive', { queue: 2 * pair, len: frame.length });
      this.onReceive?.(frame, pair);
    }
    if (vq.numFree > Math.min(NAPI_POLL_WEIGHT, vq.size) / 2) this.tryFillRecv(pair);
    return packets;
  }

  /** skb_xmit_done: wake the queue; buffers are reclaimed by free_old_xmit_skbs. */
  private skbXmitDone(pair: number): void {
    const vq = this.tx[pair]!;
    vq.disableCb();
    this.freeOldXmit(pair);
    vq.enableCb();
  }

  private freeOldXmit(pair: number): void {
    const vq = this.tx[pair]!;
    for (;;) {
      const b = vq.getBuf() as number | undefined;
      if (b === undefined) break;
      this.txPool[pair]!.push(b);
      this.txCompleted++;
    }
  }

  /**
   * start_xmit: reclaim finished buffers, put vnet header + frame in one buffer, add it,
   * and kick unless `more` (netdev_xmit_more). Returns false when the ring is full (NETDEV_TX_BUSY).
   */
  startXmit(frame: Uint8Array, pair = 0, more = false): boolean {
    const vq = this.tx[pair]!;
    this.freeOldXmit(pair);
    const size = this.hdrLen + 1518;
    const pool = this.txPool[pair]!;
    const gpa = pool.pop() ?? this.alloc.alloc(size, 64);
    const len = this.hdrLen + Math.min(frame.length, 1518);
    this.pci.mem.fill(gpa, this.hdrLen, 0);
    this.pci.mem.writeBytes(gpa + this.hdrLen, frame.subarray(0, len - this.hdrLen));
    if (this.pci.trace.on) this.pci.trace.emit('guest.xmit', 'start_xmit', 'dev_hard_start_xmit', { queue: 2 * pair + 1, len: frame.length });
    if (!vq.addOutbuf(gpa, len, gpa)) {
      pool.push(gpa);
      this.txBusy++;
      return false;
    }
    this.txPackets++;
    if (!more && vq.kickPrepare()) {
      this.kicks++;
      vq.notify();
    }
    return true;
  }

  /**
   * virtnet_send_command: header (class, cmd) and payload device-readable, the status byte
   * device-writable; kick; then poll the used ring (virtqueue_get_buf + cpu_relax) every
   * `pollNs` of virtual time on the current actor until the reply is there.
   */
  sendCommand(cls: number, cmd: number, payload: Uint8Array | undefined, pollNs = 1000, onDone?: (c: CtrlCommand) => void): CtrlCommand {
    const c: CtrlCommand = { done: false, ok: false, status: 0xff, polls: 0 };
    const vq = this.cvq;
    if (this.ctrlInFlight) {
      throw new VirqError(VirtioPciErrorCode.DriverState, 'a control command is already in flight (virtnet_send_command is serialised by rtnl); issue the next one from the previous onDone');
    }
    if (vq === undefined) {
      c.done = true;
      onDone?.(c);
      return c;
    }
    const mem = this.pci.mem;
    const hdr = this.ctrlBuf;
    const status = hdr + 128;
    mem.write8(hdr, cls);
    mem.write8(hdr + 1, cmd);
    mem.write8(status, 0xff); // VIRTIO_NET_ERR-like sentinel, overwritten by the device
    const out = [{ gpa: hdr, len: 2 }];
    if (payload !== undefined && payload.length > 0) {
      mem.writeBytes(hdr + 2, payload);
      out.push({ gpa: hdr + 2, len: payload.length });
    }
    if (this.pci.trace.on) this.pci.trace.emit('guest.send_command', 'virtnet_send_command', cls === VirtioNetCtrl.CLASS_RX ? 'virtnet_set_rx_mode' : 'virtnet_probe', { class: cls, cmd, len: payload?.length ?? 0 });
    if (!vq.addSgs(out, [{ gpa: status, len: 1 }], status)) {
      c.done = true;
      onDone?.(c);
      return c;
    }
    this.kicks++;
    this.ctrlInFlight = true;
    vq.kick();
    const check = (): boolean => {
      c.polls++;
      if (vq.getBuf() === undefined && !vq.broken) return false;
      this.ctrlInFlight = false;
      c.done = true;
      c.status = mem.read8(status);
      c.ok = c.status === VirtioNetCtrl.OK;
      onDone?.(c);
      return true;
    };
    if (!check()) {
      const sched = this.ctx.scheduler;
      const actor = sched.current ?? this.ctx.trace.hostActor;
      const poll = (): void => {
        if (!check()) sched.after(pollNs, actor, poll);
      };
      sched.after(pollNs, actor, poll);
    }
    return c;
  }

  /**
   * virtnet_set_rx_mode as Linux runs it on a flags change: RX_PROMISC, RX_ALLMULTI, then
   * MAC_TABLE_SET with the unicast and multicast lists — one command at a time, each
   * polled to completion. `onDone` gets the three replies.
   */
  setRxMode(mode: { promisc: boolean; allmulti: boolean; uc?: readonly number[][]; mc?: readonly number[][] }, onDone?: (replies: CtrlCommand[]) => void): void {
    if (this.pci.trace.on) this.pci.trace.emit('guest.send_command', 'virtnet_set_rx_mode', '__dev_set_rx_mode', { promisc: mode.promisc, allmulti: mode.allmulti });
    const replies: CtrlCommand[] = [];
    const table = (list: readonly number[][]): number[] => [list.length & 0xff, (list.length >> 8) & 0xff, 0, 0, ...list.flat()];
    const macs = new Uint8Array([...table(mode.uc ?? []), ...table(mode.mc ?? [])]);
    this.sendCommand(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new Uint8Array([mode.promisc ? 1 : 0]), 1000, (a) => {
      replies.push(a);
      this.sendCommand(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_ALLMULTI, new Uint8Array([mode.allmulti ? 1 : 0]), 1000, (b) => {
        replies.push(b);
        this.sendCommand(VirtioNetCtrl.CLASS_MAC, VirtioNetCtrl.MAC_TABLE_SET, macs, 1000, (c) => {
          replies.push(c);
          onDone?.(replies);
        });
      });
    });
  }

  /** virtnet_set_rx_mode's promiscuous part alone (`ifconfig eth0 promisc`, the seed's F2). */
  setPromisc(on: boolean, onDone?: (c: CtrlCommand) => void): CtrlCommand {
    return this.sendCommand(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, new Uint8Array([on ? 1 : 0]), 1000, onDone);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
