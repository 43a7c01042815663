import { VirqError, type EventFd } from '@virq/core';
import { KvmErrorCode } from './errors.js';
import type { KvmIoBus, KvmIoDevice } from './kvm-io-bus.js';

export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
export const KVM_IOEVENTFD_FLAG_PIO = 2;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 4;
export const KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY = 8;
const KVM_IOEVENTFD_VALID_FLAG_MASK = (1 << 5) - 1;

export type KvmBus = 'mmio' | 'pio' | 'fast-mmio' | 'ccw';

/** `struct _ioeventfd` */
export interface Ioeventfd {
  readonly bus: KvmBus;
  readonly addr: bigint;
  readonly length: number;
  readonly eventfd: EventFd;
  readonly datamatch: bigint;
  readonly wildcard: boolean;
  /** Its `struct kvm_io_device` on the PIO or MMIO bus (absent on the fast-MMIO / CCW lists). */
  readonly dev?: KvmIoDevice;
}

/** KVM_IOEVENTFD at the uapi level (`struct kvm_ioeventfd`); `fd: null` = not an eventfd. */
export interface KvmIoeventfdArgs {
  readonly fd: EventFd | null;
  readonly addr: bigint | number;
  readonly len: number;
  readonly flags: number;
  readonly datamatch?: bigint | number;
}

/**
 * The ioeventfds of a VM on KVM's I/O buses (virt/kvm/eventfd.c): KVM_IOEVENTFD's validation,
 * the collision rule (EEXIST), and `ioeventfd_in_range` for a guest write. A write that
 * matches signals the eventfd in the kernel; one that does not goes on to the other devices
 * or exits to userspace (KVM_EXIT_IO / KVM_EXIT_MMIO).
 */
export class IoeventfdBus {
  readonly list: Ioeventfd[] = [];
  /**
   * `buses`: the VM's PIO and MMIO buses, where each ioeventfd is registered as a device
   * (kvm_io_bus_register_dev) so guest accesses find it in the kernel's bus order;
   * `signal`: eventfd_signal for a write that hits (ioeventfd_write).
   */
  constructor(
    private readonly buses?: { readonly pio: KvmIoBus; readonly mmio: KvmIoBus },
    private readonly signal?: (p: Ioeventfd) => void,
  ) {}
  /** Count per bus (bus->ioeventfd_count). */
  count(bus: KvmBus): number {
    return this.list.filter((p) => p.bus === bus).length;
  }

  private static busOf(flags: number): KvmBus {
    if (flags & KVM_IOEVENTFD_FLAG_PIO) return 'pio';
    if (flags & KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY) return 'ccw';
    return 'mmio';
  }

  /** KVM_IOEVENTFD */
  ioeventfd(args: KvmIoeventfdArgs): void {
    if (args.flags & KVM_IOEVENTFD_FLAG_DEASSIGN) this.deassign(args);
    else this.assign(args);
  }

  private assign(args: KvmIoeventfdArgs): void {
    const bus = IoeventfdBus.busOf(args.flags);
    const len = args.len;
    if (len !== 0 && len !== 1 && len !== 2 && len !== 4 && len !== 8) {
      throw new VirqError(KvmErrorCode.IoeventfdInvalid, `KVM_IOEVENTFD: len ${len} must be 0, 1, 2, 4 or 8`, { errno: 'EINVAL' });
    }
    const addr = BigInt.asUintN(64, BigInt(args.addr));
    if (addr + BigInt(len) > 0xffff_ffff_ffff_ffffn) {
      throw new VirqError(KvmErrorCode.IoeventfdInvalid, `KVM_IOEVENTFD: addr 0x${addr.toString(16)} + len ${len} overflows`, { errno: 'EINVAL' });
    }
    if (args.flags & ~KVM_IOEVENTFD_VALID_FLAG_MASK) {
      throw new VirqError(KvmErrorCode.IoeventfdInvalid, `KVM_IOEVENTFD: unknown flags 0x${args.flags.toString(16)}`, { errno: 'EINVAL' });
    }
    if (len === 0 && args.flags & KVM_IOEVENTFD_FLAG_DATAMATCH) {
      throw new VirqError(KvmErrorCode.IoeventfdInvalid, 'KVM_IOEVENTFD: DATAMATCH needs a length (len 0 matches any write)', { errno: 'EINVAL' });
    }
    this.assignIdx(bus, addr, args);
    if (len === 0 && bus === 'mmio') this.assignIdx('fast-mmio', addr, args);
  }

  private assignIdx(bus: KvmBus, addr: bigint, args: KvmIoeventfdArgs): void {
    if (args.fd === null || args.fd.isClosed) {
      throw new VirqError(KvmErrorCode.IoeventfdInvalid, 'KVM_IOEVENTFD: fd is not an eventfd', { errno: 'EINVAL' });
    }
    const wildcard = (args.flags & KVM_IOEVENTFD_FLAG_DATAMATCH) === 0;
    const base = { bus, addr, length: args.len, eventfd: args.fd, datamatch: wildcard ? 0n : BigInt.asUintN(64, BigInt(args.datamatch ?? 0)), wildcard };
    const onBus = this.buses !== undefined && (bus === 'pio' || bus === 'mmio') ? this.buses[bus] : undefined;
    const p: Ioeventfd = onBus === undefined ? base : { ...base, dev: this.device(base) };
    for (const q of this.list) {
      if (q.bus === p.bus && q.addr === p.addr && (!q.length || !p.length || (q.length === p.length && (q.wildcard || p.wildcard || q.datamatch === p.datamatch)))) {
        throw new VirqError(KvmErrorCode.IoeventfdExists, `KVM_IOEVENTFD: an ioeventfd already covers ${bus} 0x${addr.toString(16)} (len ${q.length}${q.wildcard ? '' : `, datamatch ${q.datamatch}`})`, { errno: 'EEXIST' });
      }
    }
    if (onBus !== undefined && p.dev !== undefined) onBus.register(Number(addr), args.len, p.dev);
    this.list.push(p);
  }

  /** ioeventfd_ops: a write in range signals the eventfd; reads are not handled (-EOPNOTSUPP). */
  private device(p: Omit<Ioeventfd, 'dev'>): KvmIoDevice {
    const signal = this.signal;
    return {
      write: (addr: number, len: number, value: number): boolean => {
        if (!IoeventfdBus.inRange(p, addr, len, value)) return false;
        signal?.(p);
        return true;
      },
      read: (): number | undefined => undefined,
    };
  }

  /** ioeventfd_in_range */
  static inRange(p: Omit<Ioeventfd, 'dev'>, addr: number, len: number, value: number): boolean {
    if (p.addr !== BigInt(addr)) return false;
    if (!p.length) return true;
    if (len !== p.length) return false;
    if (p.wildcard) return true;
    if (len !== 1 && len !== 2 && len !== 4 && len !== 8) return false;
    return BigInt.asUintN(len * 8, BigInt(Math.trunc(value))) === p.datamatch;
  }

  private deassign(args: KvmIoeventfdArgs): void {
    const bus = IoeventfdBus.busOf(args.flags);
    const addr = BigInt.asUintN(64, BigInt(args.addr));
    this.deassignIdx(bus, addr, args);
    if (args.len === 0 && bus === 'mmio') {
      try {
        this.deassignIdx('fast-mmio', addr, args);
      } catch {
        // the fast bus copy may be absent
      }
    }
  }

  private deassignIdx(bus: KvmBus, addr: bigint, args: KvmIoeventfdArgs): void {
    if (args.fd === null) throw new VirqError(KvmErrorCode.IoeventfdInvalid, 'KVM_IOEVENTFD: fd is not an eventfd', { errno: 'EINVAL' });
    const wildcard = (args.flags & KVM_IOEVENTFD_FLAG_DATAMATCH) === 0;
    const dm = BigInt.asUintN(64, BigInt(args.datamatch ?? 0));
    const i = this.list.findIndex((p) => p.bus === bus && p.eventfd === args.fd && p.addr === addr && p.length === args.len && p.wildcard === wildcard && (p.wildcard || p.datamatch === dm));
    if (i < 0) throw new VirqError(KvmErrorCode.IoeventfdNotFound, `KVM_IOEVENTFD deassign: no such ioeventfd at ${bus} 0x${addr.toString(16)}`, { errno: 'ENOENT' });
    const p = this.list[i]!;
    if (p.dev !== undefined && (bus === 'pio' || bus === 'mmio')) this.buses?.[bus].unregister(p.dev);
    this.list.splice(i, 1);
  }

  /** The ioeventfd a guest write hits (ioeventfd_in_range), if any. */
  match(bus: KvmBus, addr: number, len: number, value: bigint): Ioeventfd | undefined {
    const a = BigInt(addr);
    for (const p of this.list) {
      if (p.bus !== bus || p.addr !== a) continue;
      if (!p.length) return p;
      if (len !== p.length) continue;
      if (p.wildcard) return p;
      if (BigInt.asUintN(len * 8, value) === p.datamatch) return p;
    }
    return undefined;
  }
}
