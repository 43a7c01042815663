import type { SimContext } from '@virq/core';
import type { DescriptorChain } from '@virq/virtio-ring';
import { VirtioPciErrorCode } from './errors.js';
import { VirtioBlk, VirtioDeviceId, VirtioFeature, bit } from './virtio-constants.js';
import { VirtioDevice, type VirtioDeviceInit } from './virtio-device.js';
import type { VirtQueue } from './virtqueue.js';

export interface VirtioBlkInit extends Omit<VirtioDeviceInit, 'deviceId' | 'configSize' | 'hostFeatures'> {
  /** The disk: its length must be a multiple of 512. */
  backing: Uint8Array;
  readOnly?: boolean;
  /** Serial returned by GET_ID (up to 20 bytes). */
  serial?: string;
  queueSize?: number;
  numQueues?: number;
  /** Virtual time from a request's submission to its completion (0: complete in the handler). */
  ioLatencyNs?: number;
  hostFeatures?: bigint;
}

/**
 * virtio-blk as QEMU's hw/block/virtio-blk.c serves it: requests of an out header (type,
 * ioprio, sector), data, and a status byte; IN / OUT / FLUSH / GET_ID over a backing store,
 * with range and size checks answered by VIRTIO_BLK_S_IOERR and unknown types by UNSUPP.
 * Malformed requests (missing headers) are guest errors: virtio_error.
 */
export class VirtioBlkDevice extends VirtioDevice {
  readonly backing: Uint8Array;
  readonly readOnly: boolean;
  readonly serial: Uint8Array;
  readonly ioLatencyNs: number;
  completed = 0;
  ioErrors = 0;

  constructor(ctx: SimContext, init: VirtioBlkInit) {
    const ro = init.readOnly ?? false;
    const f = init.hostFeatures ?? (bit(VirtioBlk.F_SEG_MAX) | bit(VirtioBlk.F_BLK_SIZE) | bit(VirtioBlk.F_FLUSH) | bit(VirtioFeature.RING_EVENT_IDX) | bit(VirtioFeature.RING_INDIRECT_DESC) | (ro ? bit(VirtioBlk.F_RO) : 0n) | ((init.numQueues ?? 1) > 1 ? bit(VirtioBlk.F_MQ) : 0n));
    super(ctx, { ...init, deviceId: VirtioDeviceId.BLOCK, configSize: 36, hostFeatures: f });
    this.backing = init.backing;
    this.readOnly = ro;
    this.serial = new TextEncoder().encode((init.serial ?? 'virq-disk').slice(0, VirtioBlk.ID_BYTES));
    this.ioLatencyNs = init.ioLatencyNs ?? 0;
    const n = init.numQueues ?? 1;
    for (let i = 0; i < n; i++) this.addQueue(init.queueSize ?? 256, (vq) => this.handleOutput(vq));
    this.refreshConfig();
  }

  get capacitySectors(): number {
    return Math.floor(this.backing.length / VirtioBlk.SECTOR_SIZE);
  }

  protected override refreshConfig(): void {
    const dv = new DataView(this.config.buffer);
    dv.setUint32(0, this.capacitySectors % 2 ** 32, true);
    dv.setUint32(4, Math.floor(this.capacitySectors / 2 ** 32), true);
    dv.setUint32(12, 126, true); // seg_max: queue size - 2
    dv.setUint32(20, VirtioBlk.SECTOR_SIZE, true);
    dv.setUint16(34, this.queues.length, true); // num_queues
  }

  /** virtio_blk_handle_output → virtio_blk_handle_vq: pop every request and serve it. */
  private handleOutput(vq: VirtQueue): void {
    const ring = vq.ring!;
    for (;;) {
      ring.disableNotification();
      for (;;) {
        const req = ring.pop();
        if (req === null) break;
        if (!this.handleRequest(vq, req)) return;
      }
      if (this.broken || !ring.enableNotification()) break;
    }
  }

  /** virtio_blk_handle_request. Returns false after a guest error. */
  private handleRequest(vq: VirtQueue, req: DescriptorChain): boolean {
    const ring = vq.ring!;
    if (req.outNum < 1 || req.inNum < 1) {
      this.virtioError(VirtioPciErrorCode.BlkRequestMalformed, 'virtio-blk missing headers', { out: req.outNum, in: req.inNum });
      return false;
    }
    const hdr = new Uint8Array(VirtioBlk.OUTHDR_SIZE);
    if (ring.readFromChain(req, hdr) !== VirtioBlk.OUTHDR_SIZE) {
      this.virtioError(VirtioPciErrorCode.BlkRequestMalformed, 'virtio-blk request outhdr too short', { out: req.outBytes });
      return false;
    }
    if (req.inLen[req.inNum - 1]! < 1) {
      this.virtioError(VirtioPciErrorCode.BlkRequestMalformed, 'virtio-blk request inhdr too short');
      return false;
    }
    const dv = new DataView(hdr.buffer);
    const type = dv.getUint32(0, true);
    const sector = dv.getUint32(8, true) + dv.getUint32(12, true) * 2 ** 32;
    const dataIn = req.inBytes - 1;
    const dataOut = req.outBytes - VirtioBlk.OUTHDR_SIZE;
    let status: number = VirtioBlk.S_OK;
    let written = 0;
    const inRange = (len: number) => len % VirtioBlk.SECTOR_SIZE === 0 && sector * VirtioBlk.SECTOR_SIZE + len <= this.backing.length;
    switch (type & ~0x80000000) {
      case VirtioBlk.T_IN:
        if (!inRange(dataIn)) status = VirtioBlk.S_IOERR;
        else {
          const at = sector * VirtioBlk.SECTOR_SIZE;
          written = ring.writeToChain(req, this.backing.subarray(at, at + dataIn));
        }
        break;
      case VirtioBlk.T_OUT:
        if (this.readOnly || !inRange(dataOut)) status = VirtioBlk.S_IOERR;
        else {
          const buf = new Uint8Array(dataOut);
          ring.readFromChain(req, buf, VirtioBlk.OUTHDR_SIZE);
          this.backing.set(buf, sector * VirtioBlk.SECTOR_SIZE);
        }
        break;
      case VirtioBlk.T_FLUSH:
        break;
      case VirtioBlk.T_GET_ID: {
        const id = new Uint8Array(Math.min(dataIn, VirtioBlk.ID_BYTES));
        id.set(this.serial.subarray(0, id.length));
        written = ring.writeToChain(req, id);
        break;
      }
      default:
        status = VirtioBlk.S_UNSUPP;
    }
    if (status === VirtioBlk.S_IOERR) this.ioErrors++;
    if (this.trace.on) this.trace.emit('blk.request', 'virtio_blk_handle_request', 'virtio_blk_handle_vq', { dev: this.name, queue: vq.index, type, sector, status });
    // pop() without a chain to reuse returns a fresh one, so `req` stays valid until completion.
    const complete = (): void => {
      if (this.broken || vq.ring !== ring) return;
      ring.writeToChain(req, new Uint8Array([status]), req.inBytes - 1);
      ring.push(req, written + 1);
      this.completed++;
      this.notify(vq, 'virtio_blk_req_complete');
    };
    if (this.ioLatencyNs > 0) this.ctx.scheduler.after(this.ioLatencyNs, this.mainLoop, complete);
    else complete();
    return true;
  }
}
