import type { SimContext } from '@virq/core';
import type { VirtqueueDriver } from '@virq/virtio-ring';
import type { GuestIrqMode, GuestVirtioPci } from './guest-virtio-pci.js';
import type { GuestPageAllocator } from './guest-page-allocator.js';
import { VirtioBlk, VirtioFeature, bit } from './virtio-constants.js';

export interface BlkRequest {
  type: number;
  sector: number;
  /** Bytes to read (IN, GET_ID) or the data to write (OUT). */
  len?: number;
  data?: Uint8Array;
}

export interface BlkCompletion {
  status: number;
  /** Data read (IN, GET_ID). */
  data: Uint8Array | undefined;
  submittedAt: number;
  completedAt: number;
}

interface Inflight {
  req: BlkRequest;
  hdr: number;
  buf: number;
  status: number;
  at: number;
  done: ((c: BlkCompletion) => void) | undefined;
}

/**
 * Linux drivers/block/virtio_blk.c as a model: virtio_queue_rq builds header + data +
 * status, adds the sgs and kicks (batched when `last` is false, as blk-mq's bd->last);
 * virtblk_done reclaims completions on the queue's interrupt.
 */
export class GuestVirtioBlk {
  readonly pci: GuestVirtioPci;
  readonly capacity: number;
  private readonly alloc: GuestPageAllocator;
  private readonly vq: VirtqueueDriver<unknown>;
  private readonly hdrPool: number[] = [];
  private readonly bufPool = new Map<number, number[]>();
  inflight = 0;
  completed = 0;
  kicks = 0;
  busy = 0;

  constructor(
    readonly ctx: SimContext,
    init: { pci: GuestVirtioPci; alloc: GuestPageAllocator; features?: bigint; irqModes?: readonly GuestIrqMode[]; queueSize?: number },
  ) {
    this.pci = init.pci;
    this.alloc = init.alloc;
    this.pci.probe(init.features ?? (bit(VirtioBlk.F_FLUSH) | bit(VirtioBlk.F_BLK_SIZE) | bit(VirtioBlk.F_SEG_MAX) | bit(VirtioFeature.RING_EVENT_IDX)));
    this.capacity = this.pci.readConfig(0, 4) + this.pci.readConfig(4, 4) * 2 ** 32;
    this.pci.findVqs([{ name: 'req.0', callback: () => this.virtblkDone(), ...(init.queueSize === undefined ? {} : { size: init.queueSize }) }], init.irqModes);
    this.vq = this.pci.vqs[0]!;
    this.pci.ready();
  }

  /** virtio_queue_rq. Returns false when the ring is full (BLK_STS_DEV_RESOURCE). */
  queueRq(req: BlkRequest, onDone?: (c: BlkCompletion) => void, last = true): boolean {
    const mem = this.pci.mem;
    const len = req.data?.length ?? req.len ?? 0;
    const hdr = this.hdrPool.pop() ?? this.alloc.alloc(VirtioBlk.OUTHDR_SIZE + 1, 16);
    mem.write32(hdr, req.type);
    mem.write32(hdr + 4, 0);
    mem.write64(hdr + 8, req.sector);
    const status = hdr + VirtioBlk.OUTHDR_SIZE;
    mem.write8(status, 0xff);
    const buf = len > 0 ? (this.bufPool.get(len)?.pop() ?? this.alloc.alloc(len, 512)) : 0;
    const out: { gpa: number; len: number }[] = [{ gpa: hdr, len: VirtioBlk.OUTHDR_SIZE }];
    const inn: { gpa: number; len: number }[] = [];
    if (req.type === VirtioBlk.T_OUT && req.data !== undefined) {
      mem.writeBytes(buf, req.data);
      out.push({ gpa: buf, len });
    } else if (len > 0) {
      inn.push({ gpa: buf, len });
    }
    inn.push({ gpa: status, len: 1 });
    if (this.pci.trace.on) this.pci.trace.emit('guest.blk_rq', 'virtio_queue_rq', 'blk_mq_dispatch_rq_list', { type: req.type, sector: req.sector, len });
    const token: Inflight = { req, hdr, buf, status, at: this.ctx.scheduler.now, done: onDone };
    if (!this.vq.addSgs(out, inn, token)) {
      this.busy++;
      return false;
    }
    this.inflight++;
    if (last && this.vq.kickPrepare()) {
      this.kicks++;
      this.vq.notify();
    }
    return true;
  }

  /** blk-mq's commit_rqs: kick after a batch queued with last = false. */
  commitRqs(): void {
    if (this.vq.kickPrepare()) {
      this.kicks++;
      this.vq.notify();
    }
  }

  /** virtblk_done: reclaim completions with callbacks disabled, then re-enable. */
  private virtblkDone(): void {
    const vq = this.vq;
    do {
      vq.disableCb();
      for (;;) {
        const t = vq.getBuf() as Inflight | undefined;
        if (t === undefined) break;
        this.inflight--;
        this.completed++;
        const mem = this.pci.mem;
        const st = mem.read8(t.status);
        const len = t.req.type === VirtioBlk.T_OUT ? 0 : (t.req.len ?? 0);
        const data = len > 0 ? mem.readBytes(t.buf, len) : undefined;
        this.hdrPool.push(t.hdr);
        const blen = t.req.data?.length ?? t.req.len ?? 0;
        if (blen > 0) {
          const list = this.bufPool.get(blen) ?? [];
          list.push(t.buf);
          this.bufPool.set(blen, list);
        }
        if (this.pci.trace.on) this.pci.trace.emit('guest.blk_done', 'virtblk_done', 'vring_interrupt', { status: st, type: t.req.type });
        t.done?.({ status: st, data, submittedAt: t.at, completedAt: this.ctx.scheduler.now });
      }
    } while (!vq.enableCb());
  }
}
