import type { SimContext } from '@virq/core';
import type { DescriptorChain } from '@virq/virtio-ring';
import { VirtioPciErrorCode } from './errors.js';
import { VhostDev } from './vhost-dev.js';
import type { VhostOps } from './vhost-ops.js';
import { VirtioDeviceId, VirtioFeature, VirtioNetCtrl, VirtioNetFeature, VirtioNetHdr, VirtioStatus, bit } from './virtio-constants.js';
import { VirtioDevice, type VirtioDeviceInit } from './virtio-device.js';
import type { VirtQueue } from './virtqueue.js';

/** The other end of the NIC (a tap, a socket, a test): where transmitted frames go. */
export interface NetPeer {
  send(frame: Uint8Array, queuePair: number): void;
}

/** Which engine serves the data queues. The control queue is always served by the VMM. */
export type NetBackend =
  | { readonly kind: 'vmm' }
  | {
      readonly kind: 'vhost-kernel' | 'vhost-user';
      /** One VhostOps per queue pair (QEMU's vhost_net per NetClientState). */
      readonly ops: readonly VhostOps[];
      /** QEMU's vhostforce: use vhost even when the guest has no MSI-X. */
      readonly force?: boolean;
    };

/** What to do when a vhost back end starts on a VM without irqfd (the QEMU 2.3/2.7 crash of F14). */
export type NoIrqfdPolicy = 'fallback-main-loop' | 'refuse-vhost';

export interface VirtioNetInit extends Omit<VirtioDeviceInit, 'deviceId' | 'configSize' | 'hostFeatures'> {
  mac?: readonly number[];
  queuePairs?: number;
  queueSize?: number;
  /** Extra or replacement host feature bits (default: a Linux-friendly set). */
  hostFeatures?: bigint;
  peer?: NetPeer;
  noIrqfdPolicy?: NoIrqfdPolicy;
}

/** MAC_TABLE_ENTRIES in QEMU. */
const MAC_TABLE_ENTRIES = 64;
const ETH_ALEN = 6;

/** Frames are delivered to the guest only if the RX filter lets them through. */
export interface NetRxFilter {
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
  macs: number[][];
  firstMulti: number;
  multiOverflow: boolean;
  uniOverflow: boolean;
}

/**
 * virtio-net as QEMU's hw/net/virtio-net.c models it: rx/tx queue pairs, the control queue
 * (RX mode, MAC table, MQ), the RX filter, mergeable rx buffers with virtio_net_hdr, and the
 * vhost start/stop on status changes (virtio_net_vhost_status) that re-wires notifiers.
 */
export class VirtioNet extends VirtioDevice {
  readonly mac: number[];
  readonly maxQueuePairs: number;
  currQueuePairs = 1;
  readonly rxFilter: NetRxFilter;
  readonly ctrlVq: VirtQueue;
  peer: NetPeer | undefined;
  backend: NetBackend = { kind: 'vmm' };
  noIrqfdPolicy: NoIrqfdPolicy;
  vhostStarted = false;
  private vhostDevs: VhostDev[] = [];
  /** Messages about backend choices (fallbacks, refusals), newest last. */
  readonly backendMessages: string[] = [];
  /** Frames waiting for rx buffers, per queue pair. */
  private readonly rxPending: Uint8Array[][];
  rxDropped = 0;
  txFrames = 0;
  rxFrames = 0;

  constructor(ctx: SimContext, init: VirtioNetInit) {
    const pairs = init.queuePairs ?? 1;
    const base =
      bit(VirtioNetFeature.MAC) | bit(VirtioNetFeature.STATUS) | bit(VirtioNetFeature.CTRL_VQ) | bit(VirtioNetFeature.CTRL_RX) |
      bit(VirtioNetFeature.CTRL_RX_EXTRA) | bit(VirtioNetFeature.MRG_RXBUF) | bit(VirtioNetFeature.CTRL_MAC_ADDR) |
      bit(VirtioFeature.RING_EVENT_IDX) | bit(VirtioFeature.RING_INDIRECT_DESC) | (pairs > 1 ? bit(VirtioNetFeature.MQ) : 0n);
    super(ctx, { ...init, deviceId: VirtioDeviceId.NET, configSize: 12, hostFeatures: init.hostFeatures ?? base });
    this.mac = [...(init.mac ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])];
    this.maxQueuePairs = pairs;
    this.peer = init.peer;
    this.noIrqfdPolicy = init.noIrqfdPolicy ?? 'fallback-main-loop';
    const qs = init.queueSize ?? 256;
    for (let i = 0; i < pairs; i++) {
      this.addQueue(qs, (vq) => this.handleRx(vq));
      this.addQueue(qs, (vq) => this.handleTx(vq));
    }
    this.ctrlVq = this.addQueue(64, (vq) => this.handleCtrl(vq));
    this.rxPending = Array.from({ length: pairs }, () => []);
    this.rxFilter = freshFilter();
    this.refreshConfig();
  }

  /** The vnet header the guest uses: 12 bytes with VERSION_1 or MRG_RXBUF, else 10 (set with the features). */
  guestHdrLen: number = VirtioNetHdr.SIZE;
  /** VIRTIO_NET_F_MRG_RXBUF negotiated (n->mergeable_rx_bufs). */
  mergeableRxBufs = false;

  protected override refreshConfig(): void {
    const c = this.config;
    for (let i = 0; i < ETH_ALEN; i++) c[i] = this.mac[i]!;
    c[6] = 1; // VIRTIO_NET_S_LINK_UP
    c[7] = 0;
    c[8] = this.maxQueuePairs & 0xff;
    c[9] = this.maxQueuePairs >>> 8;
    c[10] = 1500 & 0xff;
    c[11] = 1500 >>> 8;
  }

  protected override configWritten(offset: number): void {
    // Legacy drivers may write the MAC through config space (without CTRL_MAC_ADDR).
    if (offset < ETH_ALEN && !this.hasFeature(VirtioNetFeature.CTRL_MAC_ADDR)) for (let i = 0; i < ETH_ALEN; i++) this.mac[i] = this.config[i]!;
  }

  protected override validateFeatures(): string | undefined {
    if (this.hasFeature(VirtioFeature.BAD_FEATURE)) return 'the guest set bit 30 (VHOST_USER_F_PROTOCOL_FEATURES), which virtio drivers must not';
    return undefined;
  }

  protected override featuresSet(features: bigint): void {
    // virtio_net_set_mrg_rx_bufs: header length and mergeable buffers follow the features.
    this.mergeableRxBufs = (features & bit(VirtioNetFeature.MRG_RXBUF)) !== 0n;
    this.guestHdrLen = this.mergeableRxBufs || (features & bit(VirtioFeature.VERSION_1)) !== 0n ? VirtioNetHdr.SIZE_MRG : VirtioNetHdr.SIZE;
    const mq = (features & bit(VirtioNetFeature.MQ)) !== 0n;
    if (!mq) this.currQueuePairs = 1;
  }

  protected override deviceReset(): void {
    this.mergeableRxBufs = false;
    this.guestHdrLen = VirtioNetHdr.SIZE;
    Object.assign(this.rxFilter, freshFilter());
    this.currQueuePairs = 1;
    for (const q of this.rxPending) q.length = 0;
  }

  /** virtio_net_set_status → virtio_net_vhost_status. */
  protected override statusSet(status: number): void {
    if (this.trace.on) this.trace.emit('virtio.set_status', 'virtio_net_set_status', 'virtio_set_status', { dev: this.name, status });
    this.vhostStatus(status);
  }

  // ---- backend selection / vhost ------------------------------------------------------

  /**
   * Switches the engine behind the data queues. A running vhost back end is stopped first
   * (vhost_net_stop: rings go back to the VMM at their last_avail_idx); the new one starts
   * at once when the driver is up.
   */
  setBackend(backend: NetBackend): void {
    if (this.vhostStarted) this.vhostStop();
    this.backend = backend;
    this.vhostDevs = [];
    if (backend.kind !== 'vmm') {
      for (let i = 0; i < backend.ops.length; i++) {
        const d = new VhostDev(this.ctx, backend.ops[i]!, 2 * i, 2);
        d.init();
        this.vhostDevs.push(d);
      }
      this.useGuestNotifierMask = backend.kind !== 'vhost-user';
    } else {
      this.useGuestNotifierMask = true;
    }
    if ((this.status & VirtioStatus.DRIVER_OK) !== 0) this.vhostStatus(this.status);
  }

  private message(m: string): void {
    this.backendMessages.push(m);
    if (this.trace.on) this.trace.emit('virtio.backend', 'error_report', 'virtio_net_vhost_status', { dev: this.name, message: m });
  }

  /** virtio_net_vhost_status. */
  private vhostStatus(status: number): void {
    if (this.backend.kind === 'vmm') return;
    if (this.trace.on) this.trace.emit('virtio.backend', 'virtio_net_vhost_status', 'virtio_net_set_status', { dev: this.name, status, started: this.vhostStarted });
    const want = (status & VirtioStatus.DRIVER_OK) !== 0;
    if (want === this.vhostStarted) return;
    if (!want) {
      this.vhostStop();
      return;
    }
    const t = this.transport;
    // vhost_net_query: guest notifiers need MSI-X unless vhostforce.
    if (t !== undefined && !t.queryGuestNotifiers() && this.backend.force !== true) {
      this.message(`${this.name}: vhost needs MSI-X guest notifiers (the guest uses INTx); staying on the userspace virtio-net device (set force to use vhost anyway)`);
      return;
    }
    const irqfd = (t as { irqfdAvailable?: boolean } | undefined)?.irqfdAvailable ?? false;
    if (!irqfd) {
      if (this.noIrqfdPolicy === 'refuse-vhost') {
        this.message(`${this.name}: ${this.backend.kind} needs KVM irqfd (an in-kernel irqchip with KVM_CAP_IRQFD) and this VM has none; vhost not started, the userspace virtio-net device serves the queues (QEMU 2.3/2.7 crashed here in kvm_virtio_pci_irqfd_use)`);
        return;
      }
      this.message(`${this.name}: ${this.backend.kind} on a VM without irqfd: guest notifiers are read by the QEMU main loop (virtio_queue_guest_notifier_read), every interrupt goes through userspace`);
    }
    this.vhostStarted = true;
    try {
      this.vhostNetStart();
    } catch (e) {
      this.message(`${this.name}: unable to start vhost net: ${(e as Error).message}: falling back on userspace virtio`);
      this.vhostStarted = false;
      try {
        this.transport?.setGuestNotifiers(2 * this.vhostDevs.length, false);
      } catch {
        // already unwound
      }
      this.transport?.setHostNotifiersHandedOver(0, 2 * this.vhostDevs.length, false);
      for (const d of this.vhostDevs) d.started = false;
    }
  }

  /** vhost_net_start: guest notifiers for 2 × pairs queues, then each pair's vhost_dev_start. */
  private vhostNetStart(): void {
    const t = this.transport!;
    if (this.trace.on) this.trace.emit('virtio.backend', 'vhost_net_start', 'virtio_net_vhost_status', { dev: this.name, backend: this.backend.kind, pairs: this.vhostDevs.length });
    t.setGuestNotifiers(2 * this.vhostDevs.length, true);
    for (const d of this.vhostDevs) {
      // vhost_net_start_one: vhost_dev_enable_notifiers, vhost_dev_start, then the tap.
      t.setHostNotifiersHandedOver(d.vqIndex, d.nvqs, true);
      d.start(this);
      for (let i = 0; i < d.nvqs; i++) {
        d.ops.setNetBackend?.(d.vqIndex + i, true);
        d.ops.setVringEnable?.(d.vqIndex + i, true);
      }
    }
  }

  /** vhost_net_stop. */
  private vhostStop(): void {
    const t = this.transport;
    if (this.trace.on) this.trace.emit('virtio.backend', 'vhost_net_stop', 'virtio_net_vhost_status', { dev: this.name, backend: this.backend.kind });
    for (const d of this.vhostDevs) {
      for (let i = 0; i < d.nvqs; i++) d.ops.setNetBackend?.(d.vqIndex + i, false);
      d.stop(this);
      t?.setHostNotifiersHandedOver(d.vqIndex, d.nvqs, false);
    }
    t?.setGuestNotifiers(2 * this.vhostDevs.length, false);
    this.vhostStarted = false;
  }

  /** virtio_net_guest_notifier_mask → vhost_net_virtqueue_mask. */
  override guestNotifierMask = (queue: number, mask: boolean): void => {
    const d = this.vhostDevs[queue >> 1];
    if (d !== undefined && this.vhostStarted && queue < 2 * this.vhostDevs.length) d.mask(this, queue, mask);
  };

  /** virtio_net_guest_notifier_pending → vhost_net_virtqueue_pending. */
  override guestNotifierPending = (queue: number): boolean => {
    const d = this.vhostDevs[queue >> 1];
    return d !== undefined && this.vhostStarted ? d.pending(queue) : false;
  };

  // ---- control queue ------------------------------------------------------------------

  /** virtio_net_handle_ctrl: served by the VMM whatever the data-queue backend. */
  private handleCtrl(vq: VirtQueue): void {
    const ring = vq.ring!;
    for (;;) {
      const elem = ring.pop();
      if (elem === null) break;
      if (elem.inBytes < 1 || elem.outBytes < 2) {
        this.virtioError(VirtioPciErrorCode.CtrlMalformed, 'virtio-net ctrl missing headers', { out: elem.outBytes, in: elem.inBytes });
        break;
      }
      const out = new Uint8Array(elem.outBytes);
      ring.readFromChain(elem, out);
      const cls = out[0]!;
      const cmd = out[1]!;
      const payload = out.subarray(2);
      if (this.trace.on) {
        this.trace.emit('net.ctrl', 'virtio_net_handle_ctrl', vq.outputCaller, { dev: this.name, class: cls, cmd, len: payload.length });
        // QEMU ≥ 7.1: the command runs in virtio_net_handle_ctrl_iov; push and notify stay in virtio_net_handle_ctrl.
        this.trace.emit('net.ctrl', 'virtio_net_handle_ctrl_iov', 'virtio_net_handle_ctrl', { dev: this.name, class: cls, cmd });
      }
      let status: number;
      if (cls === VirtioNetCtrl.CLASS_RX) status = this.handleRxMode(cmd, payload);
      else if (cls === VirtioNetCtrl.CLASS_MAC) status = this.handleMac(cmd, payload);
      else if (cls === VirtioNetCtrl.CLASS_MQ) status = this.handleMq(cmd, payload);
      else status = VirtioNetCtrl.ERR;
      ring.writeToChain(elem, new Uint8Array([status]));
      ring.push(elem, 1);
      this.notify(vq, 'virtio_net_handle_ctrl');
    }
  }

  /** virtio_net_handle_rx_mode: one byte `on`; a payload without it is VIRTIO_NET_ERR. */
  private handleRxMode(cmd: number, payload: Uint8Array): number {
    if (payload.length < 1) return VirtioNetCtrl.ERR;
    const on = payload[0]! !== 0;
    const f = this.rxFilter;
    switch (cmd) {
      case VirtioNetCtrl.RX_PROMISC:
        f.promisc = on;
        break;
      case VirtioNetCtrl.RX_ALLMULTI:
        f.allmulti = on;
        break;
      case VirtioNetCtrl.RX_ALLUNI:
        f.alluni = on;
        break;
      case VirtioNetCtrl.RX_NOMULTI:
        f.nomulti = on;
        break;
      case VirtioNetCtrl.RX_NOUNI:
        f.nouni = on;
        break;
      case VirtioNetCtrl.RX_NOBCAST:
        f.nobcast = on;
        break;
      default:
        return VirtioNetCtrl.ERR;
    }
    if (this.trace.on) this.trace.emit('net.rx_mode', 'virtio_net_handle_rx_mode', 'virtio_net_handle_ctrl_iov', { dev: this.name, cmd, on });
    return VirtioNetCtrl.OK;
  }

  /** virtio_net_handle_mac: ADDR_SET (exactly 6 bytes) and TABLE_SET (unicast + multicast tables). */
  private handleMac(cmd: number, p: Uint8Array): number {
    if (cmd === VirtioNetCtrl.MAC_ADDR_SET) {
      if (p.length !== ETH_ALEN) return VirtioNetCtrl.ERR;
      for (let i = 0; i < ETH_ALEN; i++) this.mac[i] = p[i]!;
      return VirtioNetCtrl.OK;
    }
    if (cmd !== VirtioNetCtrl.MAC_TABLE_SET) return VirtioNetCtrl.ERR;
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    let off = 0;
    const tables: number[][][] = [];
    let uniOverflow = false;
    let multiOverflow = false;
    for (let t = 0; t < 2; t++) {
      if (off + 4 > p.length) return VirtioNetCtrl.ERR;
      const entries = dv.getUint32(off, true);
      off += 4;
      if (entries * ETH_ALEN > p.length - off) return VirtioNetCtrl.ERR;
      const list: number[][] = [];
      for (let i = 0; i < entries; i++) list.push([...p.subarray(off + i * ETH_ALEN, off + (i + 1) * ETH_ALEN)]);
      off += entries * ETH_ALEN;
      tables.push(list);
    }
    if (off !== p.length) return VirtioNetCtrl.ERR;
    let [uni, multi] = tables as [number[][], number[][]];
    if (uni.length > MAC_TABLE_ENTRIES) {
      uniOverflow = true;
      uni = [];
    }
    if (uni.length + multi.length > MAC_TABLE_ENTRIES) {
      multiOverflow = true;
      multi = [];
    }
    const f = this.rxFilter;
    f.macs = [...uni, ...multi];
    f.firstMulti = uni.length;
    f.uniOverflow = uniOverflow;
    f.multiOverflow = multiOverflow;
    return VirtioNetCtrl.OK;
  }

  /** virtio_net_handle_mq: VQ_PAIRS_SET within [1, max] and only with MQ. */
  private handleMq(cmd: number, p: Uint8Array): number {
    if (cmd !== VirtioNetCtrl.MQ_VQ_PAIRS_SET || p.length < 2) return VirtioNetCtrl.ERR;
    const pairs = p[0]! | (p[1]! << 8);
    if (pairs < VirtioNetCtrl.MQ_VQ_PAIRS_MIN || pairs > this.maxQueuePairs || !this.hasFeature(VirtioNetFeature.MQ)) return VirtioNetCtrl.ERR;
    this.currQueuePairs = pairs;
    return VirtioNetCtrl.OK;
  }

  // ---- receive filter / rx ------------------------------------------------------------

  /** receive_filter. */
  acceptsFrame(frame: Uint8Array): boolean {
    const f = this.rxFilter;
    if (f.promisc) return true;
    if (frame.length < ETH_ALEN) return false;
    const dst = frame.subarray(0, ETH_ALEN);
    const same = (m: readonly number[]) => m.every((b, i) => b === dst[i]);
    if (dst.every((b) => b === 0xff)) return !f.nobcast;
    if ((dst[0]! & 1) !== 0) {
      if (f.nomulti) return false;
      if (f.allmulti || f.multiOverflow) return true;
      for (let i = f.firstMulti; i < f.macs.length; i++) if (same(f.macs[i]!)) return true;
      return false;
    }
    if (f.nouni) return false;
    if (f.alluni || f.uniOverflow) return true;
    if (same(this.mac)) return true;
    for (let i = 0; i < f.firstMulti; i++) if (same(f.macs[i]!)) return true;
    return false;
  }

  /**
   * A frame from the peer for queue pair `pair` (virtio_net_receive). Returns false when
   * it had to wait for rx buffers (it is queued and delivered when the guest refills).
   */
  receive(frame: Uint8Array, pair = 0): boolean {
    if (this.vhostStarted) return false;
    const q = this.rxPending[pair];
    if (q === undefined) return false;
    q.push(frame);
    this.flushRx(pair);
    return q.length === 0;
  }

  private handleRx(vq: VirtQueue): void {
    this.flushRx(vq.index >> 1);
  }

  /** Delivers queued frames while buffers last (qemu_flush_queued_packets → virtio_net_receive_rcu). */
  private flushRx(pair: number): void {
    const vq = this.queues[2 * pair]!;
    const q = this.rxPending[pair]!;
    if ((this.status & VirtioStatus.DRIVER_OK) === 0 || vq.ring === undefined || this.broken) return;
    let delivered = 0;
    let retried = false;
    while (q.length > 0) {
      const frame = q[0]!;
      if (!this.acceptsFrame(frame)) {
        q.shift();
        this.rxDropped++;
        continue;
      }
      const r = this.receiveOne(vq, frame);
      if (r === 'no-buffers') {
        // virtio_net_has_buffers: ask for a kick when the guest refills, and close the race.
        if (retried || !vq.ring.enableNotification()) break;
        retried = true;
        continue;
      }
      q.shift();
      if (r === 'ok') delivered++;
      if (this.broken) return;
    }
    if (delivered > 0) this.notify(vq, 'virtio_net_receive_rcu');
  }

  private receiveOne(vq: VirtQueue, frame: Uint8Array): 'ok' | 'no-buffers' | 'dropped' {
    const ring = vq.ring!;
    if (ring.isEmpty()) return 'no-buffers';
    const hdrLen = this.guestHdrLen;
    const total = hdrLen + frame.length;
    const data = new Uint8Array(total);
    data.set(frame, hdrLen);
    let offset = 0;
    let i = 0;
    let first: DescriptorChain | undefined;
    const elems: [DescriptorChain, number][] = [];
    while (offset < total) {
      const elem = ring.pop();
      if (elem === null) {
        if (i > 0) {
          // Buffers ran out mid-frame: QEMU's "unexpected empty queue" guest error.
          this.virtioError(VirtioPciErrorCode.RingError, `virtio-net unexpected empty queue: i ${i} mergeable ${this.mergeableRxBufs} offset ${offset}, size ${frame.length}`);
          return 'dropped';
        }
        return 'no-buffers';
      }
      if (elem.inNum < 1) {
        this.virtioError(VirtioPciErrorCode.RingError, 'virtio-net receive queue contains no in buffers');
        return 'dropped';
      }
      if (first === undefined) first = elem;
      const n = ring.writeToChain(elem, data.subarray(offset));
      elems.push([elem, n]);
      offset += n;
      i++;
      if (!this.mergeableRxBufs) break;
    }
    if (offset < total) {
      // Without mergeable buffers a frame that does not fit is dropped (virtqueue_unpop).
      if (!ring.unpop(1)) ring.push(elems[0]![0], 0);
      this.rxDropped++;
      return 'dropped';
    }
    if (this.mergeableRxBufs && hdrLen >= VirtioNetHdr.SIZE_MRG) {
      // num_buffers in the first buffer's header.
      const nb = new Uint8Array([i & 0xff, i >>> 8]);
      ring.writeToChain(first!, nb, VirtioNetHdr.NUM_BUFFERS);
    }
    for (const [e, n] of elems) ring.fill(e, n);
    ring.flush();
    this.rxFrames++;
    if (this.trace.on) this.trace.emit('net.rx', 'virtio_net_receive_rcu', 'virtio_net_do_receive', { dev: this.name, queue: vq.index, len: frame.length, buffers: i });
    return 'ok';
  }

  // ---- tx -----------------------------------------------------------------------------

  /** virtio_net_handle_tx_bh → virtio_net_flush_tx: strip the vnet header, send, push 0. */
  private handleTx(vq: VirtQueue): void {
    const ring = vq.ring!;
    const pair = vq.index >> 1;
    for (;;) {
      ring.disableNotification();
      let sent = 0;
      for (;;) {
        const elem = ring.pop();
        if (elem === null) break;
        if (elem.outNum < 1 || elem.outBytes < this.guestHdrLen) {
          this.virtioError(VirtioPciErrorCode.NetHeaderMalformed, elem.outNum < 1 ? 'virtio-net header not in first element' : 'virtio-net header incorrect', { out: elem.outBytes });
          return;
        }
        const buf = new Uint8Array(elem.outBytes);
        ring.readFromChain(elem, buf);
        const frame = buf.subarray(this.guestHdrLen);
        this.txFrames++;
        if (this.trace.on) this.trace.emit('net.tx', 'virtio_net_flush_tx', 'virtio_net_tx_bh', { dev: this.name, queue: vq.index, len: frame.length });
        this.peer?.send(frame, pair);
        ring.push(elem, 0);
        sent++;
      }
      if (sent > 0) this.notify(vq, 'virtio_net_flush_tx');
      if (this.broken) return;
      // Re-enable and look again, as virtio_net_tx_bh does, so no kick is lost.
      if (!ring.enableNotification()) break;
    }
  }

  get vhostDevices(): readonly VhostDev[] {
    return this.vhostDevs;
  }
}

function freshFilter(): NetRxFilter {
  return { promisc: true, allmulti: false, alluni: false, nomulti: false, nouni: false, nobcast: false, macs: [], firstMulti: 0, multiOverflow: false, uniOverflow: false };
}
