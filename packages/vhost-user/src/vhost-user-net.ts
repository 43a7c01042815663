import type { TraceBus, TraceChannel } from '@virq/core';
import { DescriptorChain, SplitVirtqueueDevice, type VirtioRingEvent } from '@virq/virtio-ring';
import { FastSplitQueue, regionViews } from './fast-split-queue.js';
import type { VhostUserHost } from './host.js';
import type { VhostUserMessage } from './message.js';
import { macswapHandler, type PacketHandler } from './packet-handler.js';
import { VhostUserProtocolFeature, VirtioFeature, bit } from './protocol.js';
import { VhostUserBackend, type VhostUserHandleResult } from './vhost-user-backend.js';

/**
 * Virtio features the net back end offers (no offloads: frames arrive without GSO/csum work;
 * no NOTIFY_ON_EMPTY, which Linux never acks and the fast path does not implement).
 */
export const VHOST_USER_NET_FEATURES =
  bit(VirtioFeature.F_VERSION_1) |
  bit(VirtioFeature.NET_F_MRG_RXBUF) |
  bit(VirtioFeature.RING_F_EVENT_IDX) |
  bit(VirtioFeature.RING_F_INDIRECT_DESC) |
  bit(VirtioFeature.F_ANY_LAYOUT) |
  bit(VirtioFeature.NET_F_GUEST_ANNOUNCE) |
  bit(VirtioFeature.NET_F_MQ);

/** Protocol features it offers: what QEMU 7.2 and DPDK virtio-user use for a net device. */
export const VHOST_USER_NET_PROTOCOL_FEATURES = [
  VhostUserProtocolFeature.MQ,
  VhostUserProtocolFeature.RARP,
  VhostUserProtocolFeature.REPLY_ACK,
  VhostUserProtocolFeature.NET_MTU,
  VhostUserProtocolFeature.BACKEND_REQ,
  VhostUserProtocolFeature.RESET_DEVICE,
  VhostUserProtocolFeature.STATUS,
].reduce((m, b) => m | bit(b), 0n);

export interface VhostUserNetCounters {
  /** Frames the guest transmitted that the back end took off its TX rings. */
  txFrames: number;
  txBytes: number;
  /** Frames the back end delivered into the guest's RX rings. */
  rxFrames: number;
  rxBytes: number;
  /** Frames dropped because the RX ring had no (or too small) buffers, or was disabled. */
  rxDropped: number;
  /** TX frames dropped on a started but disabled ring (FACTS §10.5). */
  txDropped: number;
  kicks: number;
  /** Call eventfd writes (F16 decided to notify). */
  calls: number;
  /** Interrupts suppressed by EVENT_IDX / NO_INTERRUPT. */
  callsSuppressed: number;
  /** Rings that went to NEEDS_RESET on bad guest input. */
  ringErrors: number;
}

export interface VhostUserNetOptions {
  handler?: PacketHandler;
  /** Queue pairs (rings = 2 × pairs). Default 1. */
  queuePairs?: number;
  /**
   * Poll mode: set VRING_USED_F_NO_NOTIFY and busy-poll the TX rings (DPDK's way). Default
   * false: event mode, woken by kicks, idle otherwise.
   */
  poll?: boolean;
  /** Schedules a continuation (setImmediate in real mode; a scheduler event in the model). */
  defer: (fn: () => void) => void;
  /** Most TX chains per pass before yielding. Default 256. */
  budget?: number;
  /** Poll mode: how long one spin lasts before yielding to the event loop (ms). Default 1; 0 = one pass. */
  pollSliceMs?: number;
  trace?: TraceBus;
  /**
   * 'fast': the zero-copy FastSplitQueue when the memory table is one region (every real
   * front end), else virtio-ring; 'virtio-ring': always @virq/virtio-ring's
   * SplitVirtqueueDevice (the model's default: its trace shows every ring step).
   */
  dataPath?: 'fast' | 'virtio-ring';
  /** Extra features to offer / protocol features override. */
  features?: bigint;
  protocolFeatures?: bigint;
}

interface QueuePair {
  rx: SplitVirtqueueDevice | undefined;
  tx: SplitVirtqueueDevice | undefined;
  frx: FastSplitQueue | undefined;
  ftx: FastSplitQueue | undefined;
  scheduled: boolean;
  /** RX used elements filled and not yet flushed. */
  rxPending: number;
  /** The RX ring's enable state, refreshed at the start of each TX pass. */
  rxEnabled: boolean;
}

/**
 * A vhost-user-net back end (DPDK's vhost PMD + testpmd in one): the protocol state machine,
 * and on `new_device` one @virq/virtio-ring SplitVirtqueueDevice per ring over the mapped
 * memory (zero copy). Guest TX (odd rings) → virtio_net_hdr stripped → the packet handler →
 * frames it answers go into the RX ring of the same pair (virtio_net_hdr with num_buffers,
 * merged across buffers with MRG_RXBUF; dropped when no buffer is free, never stalling TX).
 * Interrupts: after each burst `notify()` applies F16 exactly (vhost_vring_call_split:
 * EVENT_IDX → vhost_need_event(used_event, new, old) or first signal; else
 * !VRING_AVAIL_F_NO_INTERRUPT) and writes the call eventfd.
 */
export class VhostUserNetBackend<F> {
  readonly protocol: VhostUserBackend<F>;
  readonly counters: VhostUserNetCounters = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txDropped: 0, kicks: 0, calls: 0, callsSuppressed: 0, ringErrors: 0 };
  handler: PacketHandler;
  readonly queuePairs: number;
  readonly poll: boolean;
  readonly dataPath: 'fast' | 'virtio-ring';
  /** Whether the running device uses the fast path. */
  fast = false;
  private pairs: QueuePair[] = [];
  private hdrLen = 12;
  private mrg = true;
  private readonly budget: number;
  /** Sink of the prefetch loads (keeps them alive). */
  touched = 0;
  private readonly pollSliceMs: number;
  private readonly defer: (fn: () => void) => void;
  private polling = false;
  private readonly txChain = new DescriptorChain();
  private readonly rxChains: DescriptorChain[] = [];
  private scratch = new Uint8Array(65536 + 64);
  private readonly hdr = new Uint8Array(12);
  private readonly ringTrace: TraceChannel<VirtioRingEvent> | undefined;
  /** DPDK-level steps (virtio_dev_tx_split …) on the 'vhost-user-net' channel. */
  private readonly netTrace: TraceChannel | undefined;
  private current: QueuePair | undefined;
  private readonly replyFn = (frame: Uint8Array): void => {
    this.deliver(frame);
  };

  constructor(host: VhostUserHost<F>, options: VhostUserNetOptions) {
    this.handler = options.handler ?? macswapHandler();
    this.queuePairs = options.queuePairs ?? 1;
    this.poll = options.poll ?? false;
    this.dataPath = options.dataPath ?? 'virtio-ring';
    this.budget = options.budget ?? 256;
    this.pollSliceMs = options.pollSliceMs ?? 1;
    this.defer = options.defer;
    this.ringTrace = options.trace?.channel<VirtioRingEvent>('virtio-ring');
    this.netTrace = options.trace?.channel('vhost-user-net');
    this.protocol = new VhostUserBackend<F>(
      host,
      {
        features: options.features ?? VHOST_USER_NET_FEATURES,
        protocolFeatures: options.protocolFeatures ?? VHOST_USER_NET_PROTOCOL_FEATURES,
        maxRings: 2 * this.queuePairs,
        queueNum: this.queuePairs,
        newDevice: () => this.newDevice(),
        destroyDevice: () => this.destroyDevice(),
        kick: (i) => this.kick(i),
        vringStateChanged: () => undefined,
      },
      { trace: options.trace },
    );
  }

  /** Handles one vhost-user message (see VhostUserBackend.handle). */
  handleMessage(msg: VhostUserMessage<F>): VhostUserHandleResult<F> {
    return this.protocol.handle(msg);
  }

  get running(): boolean {
    return this.protocol.running;
  }

  /** DPDK new_device: build the ring devices over the mapped memory. */
  private newDevice(): void {
    const p = this.protocol;
    const mem = p.mem!.guest;
    this.mrg = p.hasFeature(VirtioFeature.NET_F_MRG_RXBUF);
    this.hdrLen = this.mrg || p.hasFeature(VirtioFeature.F_VERSION_1) ? 12 : 10;
    this.pairs = [];
    const regions = p.mem!.regions;
    const r0 = regions[0];
    this.fast = this.dataPath === 'fast' && regions.length === 1 && r0 !== undefined && (r0.mapping.offset & 3) === 0 && !p.hasFeature(VirtioFeature.F_ACCESS_PLATFORM);
    for (let q = 0; q < this.queuePairs; q++) this.pairs.push({ rx: undefined, tx: undefined, frx: undefined, ftx: undefined, scheduled: false, rxPending: 0, rxEnabled: false });
    if (this.fast) {
      this.newFastDevice();
      return;
    }
    for (let i = 0; i < p.nrVring; i++) {
      const v = p.vrings[i]!;
      const dev = new SplitVirtqueueDevice(mem, {
        size: v.size,
        desc: v.descGpa!,
        driver: v.availGpa!,
        device: v.usedGpa!,
        features: p.features,
        index: i,
        flavor: 'dpdk',
        trace: this.ringTrace,
        call: () => {
          this.counters.calls++;
          v.calls++;
          v.call?.signal();
        },
        onError: () => void this.counters.ringErrors++,
      });
      // translate_ring_addresses: a used idx that disagrees with the base wins (DPDK warns that
      // "some packets maybe resent for Tx and dropped for Rx").
      const usedIdx = mem.load16(v.usedGpa! + 2);
      dev.setVringBase(usedIdx !== v.lastUsedIdx ? usedIdx : v.lastAvailIdx);
      if (this.poll) dev.disableNotification();
      const pair = this.pairs[i >> 1];
      if (pair === undefined) continue;
      if ((i & 1) === 0) pair.rx = dev;
      else pair.tx = dev;
    }
    if (this.poll) this.startPolling();
    else for (let q = 0; q < this.pairs.length; q++) this.schedule(q);
  }

  private newFastDevice(): void {
    const p = this.protocol;
    const r = p.mem!.regions[0]!;
    const views = regionViews(r.mapping.buffer, r.mapping.offset, r.memorySize);
    const eventIdx = p.hasFeature(VirtioFeature.RING_F_EVENT_IDX);
    for (let i = 0; i < p.nrVring; i++) {
      const v = p.vrings[i]!;
      const q = new FastSplitQueue(views, r.memorySize, r.guestPhysAddr, v.size, v.descGpa!, v.availGpa!, v.usedGpa!, eventIdx, i, () => {
        this.counters.calls++;
        v.calls++;
        v.call?.signal();
      }, this.ringTrace);
      const usedIdx = views.u16[(v.usedGpa! - r.guestPhysAddr + 2) >>> 1]!;
      q.setBase(usedIdx !== v.lastUsedIdx ? usedIdx : v.lastAvailIdx);
      if (this.poll) q.disableNotification();
      const pair = this.pairs[i >> 1];
      if (pair === undefined) continue;
      if ((i & 1) === 0) pair.frx = q;
      else pair.ftx = q;
    }
    if (this.poll) this.startPolling();
    else for (let q = 0; q < this.pairs.length; q++) this.schedule(q);
  }

  /** DPDK destroy_device: remember where each ring stopped (GET_VRING_BASE answers it). */
  private destroyDevice(): void {
    const p = this.protocol;
    this.pairs.forEach((pair, q) => {
      for (const [dev, idx] of [[pair.rx, 2 * q], [pair.tx, 2 * q + 1]] as const) {
        const v = p.vrings[idx];
        if (dev !== undefined && v !== undefined) {
          v.lastAvailIdx = dev.getVringBase();
          v.lastUsedIdx = dev.used;
        }
      }
      for (const [fq, idx] of [[pair.frx, 2 * q], [pair.ftx, 2 * q + 1]] as const) {
        const v = p.vrings[idx];
        if (fq !== undefined && v !== undefined) {
          v.lastAvailIdx = fq.lastAvail;
          v.lastUsedIdx = fq.usedIdx;
        }
      }
    });
    this.pairs = [];
    this.polling = false;
  }

  private kick(index: number): void {
    this.counters.kicks++;
    if (this.poll) return;
    this.schedule(index >> 1);
  }

  private schedule(q: number): void {
    const pair = this.pairs[q];
    if (pair === undefined || pair.scheduled) return;
    pair.scheduled = true;
    this.defer(() => {
      pair.scheduled = false;
      if (this.pairs[q] !== pair) return;
      // vhost's handle_tx pattern: no kicks while draining, then re-enable and re-check.
      const tx = pair.ftx ?? pair.tx;
      if (tx === undefined) return;
      tx.disableNotification();
      const n = this.processTx(pair);
      if (n >= this.budget || tx.enableNotification()) this.schedule(q);
    });
  }

  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    // DPDK's lcore loop, but cooperative: spin over the TX rings for up to `pollSliceMs`, then
    // yield one turn to Node's loop (vhost-user messages, signals) and come back.
    const slice = this.pollSliceMs;
    const loop = (): void => {
      if (!this.polling || !this.protocol.running) {
        this.polling = false;
        return;
      }
      const until = performance.now() + slice;
      const pairs = this.pairs;
      do {
        for (let k = 0; k < 64; k++) for (let q = 0; q < pairs.length; q++) this.processTx(pairs[q]!);
      } while (slice > 0 && performance.now() < until && this.pairs === pairs);
      this.defer(loop);
    };
    this.defer(loop);
  }

  /** One pass over a pair's TX ring: at most `budget` chains. Returns the chains taken. */
  processTx(pair: QueuePair): number {
    const t = this.netTrace;
    if (t !== undefined && t.on) {
      const q = pair.ftx?.index ?? pair.tx?.index ?? -1;
      t.emit('vhost.dequeue', 'virtio_dev_tx_split', 'rte_vhost_dequeue_burst', { queue: q });
    }
    if (pair.ftx !== undefined) return this.processTxFast(pair, pair.ftx);
    const tx = pair.tx;
    if (tx === undefined || tx.broken) return 0;
    const p = this.protocol;
    const txIdx = tx.index;
    const txEnabled = p.vrings[txIdx]?.enabled ?? false;
    this.current = pair;
    let n = 0;
    const hl = this.hdrLen;
    const c = this.counters;
    while (n < this.budget) {
      const chain = tx.pop(this.txChain);
      if (chain === null) break;
      n++;
      const total = chain.outBytes;
      if (txEnabled && total > hl) {
        if (total > this.scratch.length) this.scratch = new Uint8Array(total);
        const got = tx.readFromChain(chain, this.scratch.subarray(0, total));
        if (got > hl) {
          c.txFrames++;
          c.txBytes += got - hl;
          this.handler.handle(this.scratch.subarray(hl, got), this.replyFn);
        }
      } else if (!txEnabled) c.txDropped++;
      tx.fill(chain, 0);
      if ((n & 31) === 0) this.flushPair(pair);
    }
    if (n > 0) this.flushPair(pair);
    this.current = undefined;
    return n;
  }

  /** The zero-copy pass: typed-array ring access, frames copied once (TX buffer → RX buffer). */
  private processTxFast(pair: QueuePair, tx: FastSplitQueue): number {
    let avail = tx.available();
    if (avail === 0) return 0;
    if (avail > this.budget) avail = this.budget;
    const c = this.counters;
    const hl = this.hdrLen;
    const h = this.handler;
    const fwd = h.forward;
    const txEnabled = this.protocol.vrings[tx.index]?.enabled ?? false;
    pair.rxEnabled = pair.frx !== undefined && (this.protocol.vrings[pair.frx.index]?.enabled ?? false);
    const u8 = tx.u8;
    this.current = pair;
    let n = 0;
    let frames = 0;
    let bytes = 0;
    this.touched ^= tx.touch(avail);
    const rxq = pair.frx;
    if (rxq !== undefined && fwd !== 'drop') {
      const ra = rxq.available();
      this.touched ^= rxq.touch(ra < avail ? ra : avail);
    }
    for (; n < avail; n++) {
      const head = tx.nextHead();
      if (head < 0) break;
      let src = u8;
      let off = tx.simple(head, false);
      let len = tx.lastLen;
      if (off < 0) {
        if (!tx.walk(head, false)) break;
        if (tx.segBytes > this.scratch.length) this.scratch = new Uint8Array(tx.segBytes);
        len = tx.gather(this.scratch);
        src = this.scratch;
        off = 0;
      }
      if (!txEnabled) c.txDropped++;
      else if (len > hl) {
        frames++;
        bytes += len - hl;
        if (fwd === 'macswap' || fwd === 'loopback') this.deliverFast(pair, src, off + hl, len - hl, fwd === 'macswap');
        else if (fwd !== 'drop') {
          const f = src === u8 ? u8.slice(off + hl, off + len) : src.subarray(off + hl, off + len);
          h.handle(f, this.replyFn);
        }
      }
      tx.fill(head, 0);
      if ((n & 31) === 31) this.flushFast(pair);
    }
    c.txFrames += frames;
    c.txBytes += bytes;
    if (fwd === 'drop' && h.counted !== undefined) h.counted(frames, bytes);
    this.flushFast(pair);
    this.current = undefined;
    return n;
  }

  private flushFast(pair: QueuePair): void {
    const c = this.counters;
    const tx = pair.ftx!;
    const rx = pair.frx;
    if (tx.flushAndNotify() === 0) c.callsSuppressed++;
    pair.rxPending = 0;
    if (rx !== undefined && rx.flushAndNotify() === 0) c.callsSuppressed++;
  }

  /** virtio_dev_rx_split on the fast path: one frame from `src[off, off+len)` into RX. */
  private deliverFast(pair: QueuePair, src: Uint8Array, off: number, len: number, swap: boolean): boolean {
    const c = this.counters;
    const rx = pair.frx;
    if (rx === undefined || !pair.rxEnabled || rx.available() === 0) {
      c.rxDropped++;
      return false;
    }
    const hl = this.hdrLen;
    const need = hl + len;
    const head = rx.nextHead();
    if (head < 0) {
      c.rxDropped++;
      return false;
    }
    const u8 = rx.u8;
    const dst = rx.simple(head, true);
    if (dst >= 0 && rx.lastLen >= need) {
      // Small frames: plain loops beat TypedArray fill/copyWithin, which call into the runtime.
      if (hl === 12 && (dst & 3) === 0) {
        const u32 = rx.u32;
        const w = dst >>> 2;
        u32[w] = 0;
        u32[w + 1] = 0;
        u32[w + 2] = 0x10000;
      } else {
        for (let i = 0; i < hl; i++) u8[dst + i] = 0;
        if (hl === 12) u8[dst + 10] = 1;
      }
      if (src === u8 && len <= 256) copySmall(u8, rx.u32, dst + hl, off, len);
      else if (src === u8) u8.copyWithin(dst + hl, off, off + len);
      else u8.set(src.subarray(off, off + len), dst + hl);
      if (swap && len >= 12) {
        const a = dst + hl;
        if ((a & 1) === 0) swapMacs16(rx.u16, a >>> 1);
        else swapMacs(u8, a);
      }
      rx.fill(head, need);
    } else if (!this.deliverFastSlow(rx, head, src, off, len, swap)) {
      c.rxDropped++;
      return false;
    }
    c.rxFrames++;
    c.rxBytes += len;
    if (++pair.rxPending + 64 >= rx.size) {
      pair.rxPending = 0;
      if (rx.flushAndNotify() === 0) c.callsSuppressed++;
    }
    return true;
  }

  /** Chained or (MRG_RXBUF) several RX buffers: stage header + frame, then scatter. */
  private readonly heads: number[] = [];
  private readonly caps: number[] = [];
  private deliverFastSlow(rx: FastSplitQueue, first: number, src: Uint8Array, off: number, len: number, swap: boolean): boolean {
    const hl = this.hdrLen;
    const need = hl + len;
    let have = 0;
    let k = 0;
    let head = first;
    for (;;) {
      if (!rx.walk(head, true)) return false;
      this.heads[k] = head;
      this.caps[k] = rx.segBytes;
      have += rx.segBytes;
      k++;
      if (have >= need || !this.mrg || k >= 64 || rx.available() === 0) break;
      head = rx.nextHead();
      if (head < 0) return false;
    }
    if (have < need) {
      rx.unget(k);
      return false;
    }
    if (this.stage.length < need) this.stage = new Uint8Array(need);
    const st = this.stage;
    st.fill(0, 0, hl);
    if (hl === 12) {
      st[10] = k & 0xff;
      st[11] = k >>> 8;
    }
    st.set(src.subarray(off, off + len), hl);
    if (swap && len >= 12) swapMacs(st, hl);
    let at = 0;
    for (let i = 0; i < k; i++) {
      rx.walk(this.heads[i]!, true);
      const w = rx.scatter(st, at, need, 0);
      at += w;
      rx.fill(this.heads[i]!, w);
    }
    return true;
  }
  private stage = new Uint8Array(2048);

  private flushPair(pair: QueuePair): void {
    const tx = pair.tx!;
    if (tx.flush() > 0) this.notify(tx);
    const rx = pair.rx;
    pair.rxPending = 0;
    if (rx !== undefined && rx.flush() > 0) this.notify(rx);
  }

  private notify(dev: SplitVirtqueueDevice): void {
    if (!dev.notify()) this.counters.callsSuppressed++;
  }

  /**
   * Puts one frame into the current pair's RX ring (virtio_dev_rx_split): header with
   * num_buffers, then the frame, over one buffer or (MRG_RXBUF) several.
   */
  deliver(frame: Uint8Array, pair: QueuePair | undefined = this.current ?? this.pairs[0]): boolean {
    const c = this.counters;
    if (pair?.frx !== undefined) {
      if (pair === this.current) return this.deliverFast(pair, frame, 0, frame.length, false);
      pair.rxEnabled = this.protocol.vrings[pair.frx.index]?.enabled ?? false;
      const ok = this.deliverFast(pair, frame, 0, frame.length, false);
      pair.rxPending = 0;
      if (pair.frx.flushAndNotify() === 0) c.callsSuppressed++;
      return ok;
    }
    const rx = pair?.rx;
    if (rx === undefined || rx.broken || !(this.protocol.vrings[rx.index]?.enabled ?? false)) {
      c.rxDropped++;
      return false;
    }
    if (pair!.rxPending + 64 >= rx.size) {
      pair!.rxPending = 0;
      if (rx.flush() > 0) this.notify(rx);
    }
    const need = this.hdrLen + frame.length;
    let have = 0;
    let k = 0;
    while (have < need && k < 64) {
      if (k > 0 && !this.mrg) break;
      const chain = rx.pop(this.rxChains[k] ?? (this.rxChains[k] = new DescriptorChain()));
      if (chain === null) break;
      have += chain.inBytes;
      k++;
    }
    if (have < need) {
      if (k > 0) rx.unpop(k);
      c.rxDropped++;
      return false;
    }
    const h = this.hdr;
    h.fill(0);
    if (this.hdrLen === 12) {
      h[10] = k & 0xff;
      h[11] = k >>> 8;
    }
    let off = 0; // bytes of (header + frame) written so far
    for (let i = 0; i < k; i++) {
      const chain = this.rxChains[i]!;
      let wrote = 0;
      if (off < this.hdrLen) {
        wrote += rx.writeToChain(chain, h.subarray(off, this.hdrLen), 0);
        off += wrote;
      }
      const fo = off - this.hdrLen;
      const w = rx.writeToChain(chain, frame.subarray(fo), wrote);
      off += w;
      rx.fill(chain, wrote + w);
    }
    pair!.rxPending += k;
    if (pair !== this.current) {
      pair!.rxPending = 0;
      if (rx.flush() > 0) this.notify(rx);
    }
    c.rxFrames++;
    c.rxBytes += frame.length;
    return true;
  }

  /** Processes every TX ring once (poll mode's loop body; tests and benchmarks). */
  pollOnce(): number {
    let n = 0;
    for (const pair of this.pairs) n += this.processTx(pair);
    return n;
  }

  /** The fast-path queues, for inspection: [rx0, tx0, …] (empty on the virtio-ring path). */
  fastQueues(): (FastSplitQueue | undefined)[] {
    return this.pairs.flatMap((p) => [p.frx, p.ftx]);
  }

  /** The ring devices, for inspection: [rx0, tx0, rx1, tx1, …]. */
  rings(): (SplitVirtqueueDevice | undefined)[] {
    return this.pairs.flatMap((p) => [p.rx, p.tx]);
  }

  /** Stops the data path and releases everything (the connection closed). */
  disconnect(): void {
    this.protocol.disconnect();
    this.polling = false;
  }
}


/** Swaps the destination and source MAC of the frame at `at`. */
function swapMacs(b: Uint8Array, at: number): void {
  for (let i = 0; i < 6; i++) {
    const t = b[at + i]!;
    b[at + i] = b[at + 6 + i]!;
    b[at + 6 + i] = t;
  }
}

/** memmove of a short range inside one region (non-overlapping: RX and TX buffers differ). */
function copySmall(u8: Uint8Array, u32: Uint32Array, dst: number, src: number, len: number): void {
  let i = 0;
  if (((dst | src) & 3) === 0) {
    const d = dst >>> 2;
    const s = src >>> 2;
    const words = len >>> 2;
    for (let w = 0; w < words; w++) u32[d + w] = u32[s + w]!;
    i = words << 2;
  }
  for (; i < len; i++) u8[dst + i] = u8[src + i]!;
}

/** swapMacs on a 2-byte aligned frame: three u16 swaps. */
function swapMacs16(u16: Uint16Array, at: number): void {
  for (let i = 0; i < 3; i++) {
    const t = u16[at + i]!;
    u16[at + i] = u16[at + 3 + i]!;
    u16[at + 3 + i] = t;
  }
}
