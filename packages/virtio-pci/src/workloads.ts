import { type Actor, Histogram, type SimContext, VirqError } from '@virq/core';
import { VirtioPciErrorCode } from './errors.js';
import type { BlkCompletion, GuestVirtioBlk } from './guest-virtio-blk.js';
import type { GuestVirtioNet } from './guest-virtio-net.js';
import type { VirtioNet } from './virtio-net.js';
import { VirtioBlk } from './virtio-constants.js';

function positive(name: string, v: number): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new VirqError(VirtioPciErrorCode.BadConfig, `${name} must be a finite number > 0, got ${v}`);
}

/** An Ethernet frame to `dst` of `size` bytes (≥ 14), with a sequence number in the payload. */
export function ethernetFrame(dst: readonly number[], src: readonly number[], size: number, seq: number): Uint8Array {
  const f = new Uint8Array(Math.max(14, size));
  f.set(dst.slice(0, 6), 0);
  f.set(src.slice(0, 6), 6);
  f[12] = 0x08;
  f[13] = 0x00;
  if (f.length >= 18) new DataView(f.buffer).setUint32(14, seq >>> 0, true);
  return f;
}

export interface NetTxWorkloadInit {
  driver: GuestVirtioNet;
  /** The vCPU thread the guest's transmit path runs on. */
  vcpu: Actor;
  packetsPerSecond: number;
  frameSize?: number;
  count: number;
  pair?: number;
  /** Frames queued per start_xmit batch (xmit_more: only the last kicks). */
  burst?: number;
  /** Poisson arrivals instead of a fixed interval. */
  poisson?: boolean;
}

/** The guest sending `count` frames at a rate through start_xmit (F3). */
export class NetTxWorkload {
  sent = 0;
  busy = 0;
  constructor(
    readonly ctx: SimContext,
    readonly init: NetTxWorkloadInit,
  ) {
    positive('packetsPerSecond', init.packetsPerSecond);
  }

  start(): void {
    const { scheduler } = this.ctx;
    const i = this.init;
    const interval = 1e9 / i.packetsPerSecond;
    const burst = i.burst ?? 1;
    const dst = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    const step = (): void => {
      for (let b = 0; b < burst && this.sent < i.count; b++) {
        const last = b === burst - 1 || this.sent === i.count - 1;
        if (i.driver.startXmit(ethernetFrame(dst, i.driver.mac, i.frameSize ?? 64, this.sent), i.pair ?? 0, !last)) this.sent++;
        else this.busy++;
      }
      if (this.sent < i.count) scheduler.after(i.poisson ? scheduler.prng.exponential(interval * burst) : interval * burst, i.vcpu, step);
    };
    scheduler.after(0, i.vcpu, step);
  }
}

export interface NetRxGeneratorInit {
  device: VirtioNet;
  /** Who reads the tap and calls the device (QEMU's main loop or an iothread). */
  actor: Actor;
  packetsPerSecond: number;
  frameSize?: number;
  count: number;
  pair?: number;
  /** Destination MAC (default: the device's). */
  dst?: readonly number[];
}

/** Frames arriving from the peer (tap) at a rate, delivered by the in-VMM device (F10's last hop). */
export class NetRxGenerator {
  offered = 0;
  constructor(
    readonly ctx: SimContext,
    readonly init: NetRxGeneratorInit,
  ) {
    positive('packetsPerSecond', init.packetsPerSecond);
  }

  start(): void {
    const { scheduler } = this.ctx;
    const i = this.init;
    const interval = 1e9 / i.packetsPerSecond;
    const src = [0x02, 0, 0, 0, 0, 1];
    const step = (): void => {
      i.device.receive(ethernetFrame(i.dst ?? i.device.mac, src, i.frameSize ?? 64, this.offered), i.pair ?? 0);
      this.offered++;
      if (this.offered < i.count) scheduler.after(interval, i.actor, step);
    };
    scheduler.after(0, i.actor, step);
  }
}

export interface BlkIoWorkloadInit {
  driver: GuestVirtioBlk;
  vcpu: Actor;
  /** Requests kept in flight (fio's iodepth). */
  iodepth: number;
  /** Bytes per request (multiple of 512). */
  blockSize: number;
  count: number;
  rw: 'read' | 'write' | 'randread' | 'randwrite';
}

/** fio-like I/O at a fixed depth through virtio_queue_rq (F1); completion latencies in `latency`. */
export class BlkIoWorkload {
  submitted = 0;
  completed = 0;
  errors = 0;
  readonly latency = new Histogram();
  private nextSector = 0;

  constructor(
    readonly ctx: SimContext,
    readonly init: BlkIoWorkloadInit,
  ) {
    positive('iodepth', init.iodepth);
    if (init.blockSize % VirtioBlk.SECTOR_SIZE !== 0 || init.blockSize <= 0) {
      throw new VirqError(VirtioPciErrorCode.BadConfig, `blockSize must be a positive multiple of 512, got ${init.blockSize}`);
    }
  }

  start(): void {
    this.ctx.scheduler.after(0, this.init.vcpu, () => this.fill());
  }

  private fill(): void {
    const i = this.init;
    let queued = 0;
    while (this.submitted - this.completed < i.iodepth && this.submitted < i.count) {
      const sectors = i.blockSize / VirtioBlk.SECTOR_SIZE;
      const maxStart = Math.max(0, i.driver.capacity - sectors);
      const sector = i.rw.startsWith('rand') ? this.ctx.scheduler.prng.int(0, Math.floor(maxStart / sectors)) * sectors : this.nextSector;
      this.nextSector = (this.nextSector + sectors) % Math.max(1, maxStart + 1);
      const write = i.rw.endsWith('write');
      const ok = i.driver.queueRq(
        write ? { type: VirtioBlk.T_OUT, sector, data: new Uint8Array(i.blockSize).fill(this.submitted & 0xff) } : { type: VirtioBlk.T_IN, sector, len: i.blockSize },
        (c) => this.done(c),
        false,
      );
      if (!ok) break;
      this.submitted++;
      queued++;
    }
    if (queued > 0) i.driver.commitRqs();
  }

  private done(c: BlkCompletion): void {
    this.completed++;
    if (c.status !== VirtioBlk.S_OK) this.errors++;
    this.latency.record(c.completedAt - c.submittedAt);
    if (this.submitted < this.init.count) this.fill();
  }
}
