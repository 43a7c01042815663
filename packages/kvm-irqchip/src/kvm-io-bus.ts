/**
 * One of KVM's I/O buses (`struct kvm_io_bus`, virt/kvm/kvm_main.c): an array of
 * `{addr, len, dev}` ranges kept in the order `kvm_io_bus_register_dev` inserts them, searched
 * with the kernel's `bsearch` and `kvm_io_bus_cmp`.
 *
 * The order matters and is not a plain sort: `kvm_io_bus_cmp` treats a range of length 0 as
 * "this exact address" and any other range as "covers the access", so overlapping ranges
 * (an ioeventfd on a PIC port or on the IOAPIC window) and zero-length ioeventfds compare
 * "equal" one way and "greater" the other. The insertion rule and the binary search are
 * reproduced step for step, so a guest access finds (or misses) the same device the kernel
 * does, and overlapping devices are offered the access in the kernel's order
 * (`__kvm_io_bus_write` / `__kvm_io_bus_read`: the first device that does not return
 * -EOPNOTSUPP handles it).
 */

/** A device on a bus (`struct kvm_io_device_ops`): `false`/`undefined` = -EOPNOTSUPP. */
export interface KvmIoDevice {
  write(addr: number, len: number, value: number): boolean;
  read(addr: number, len: number): number | undefined;
}

/** `struct kvm_io_range` */
export interface KvmIoRange {
  readonly addr: number;
  readonly len: number;
  readonly dev: KvmIoDevice;
}

/** kvm_io_bus_cmp(r1, r2): r2's length 0 means "exactly this address". */
export function kvmIoBusCmp(a1: number, l1: number, a2: number, l2: number): number {
  if (a1 < a2) return -1;
  let x = a1;
  let y = a2;
  if (l2) {
    x += l1;
    y += l2;
  }
  return x > y ? 1 : 0;
}

export class KvmIoBus {
  private ranges: KvmIoRange[] = [];

  get devCount(): number {
    return this.ranges.length;
  }

  /** The ranges in bus order (for tests and tracing). */
  list(): readonly KvmIoRange[] {
    return this.ranges;
  }

  /** kvm_io_bus_register_dev: insert before the first range that compares greater than the new one. */
  register(addr: number, len: number, dev: KvmIoDevice): void {
    let i = 0;
    for (; i < this.ranges.length; i++) {
      const r = this.ranges[i]!;
      if (kvmIoBusCmp(r.addr, r.len, addr, len) > 0) break;
    }
    this.ranges = [...this.ranges.slice(0, i), { addr, len, dev }, ...this.ranges.slice(i)];
  }

  /** kvm_io_bus_unregister_dev: drops the first range of that device. */
  unregister(dev: KvmIoDevice): boolean {
    const i = this.ranges.findIndex((r) => r.dev === dev);
    if (i < 0) return false;
    this.ranges = [...this.ranges.slice(0, i), ...this.ranges.slice(i + 1)];
    return true;
  }

  /** kvm_io_bus_get_first_dev: lib/bsearch.c over the ranges, then back to the first equal one. */
  private firstDev(addr: number, len: number): number {
    const rs = this.ranges;
    let base = 0;
    let num = rs.length;
    let found = -1;
    while (num > 0) {
      const pivot = base + (num >> 1);
      const r = rs[pivot]!;
      const result = kvmIoBusCmp(addr, len, r.addr, r.len);
      if (result === 0) {
        found = pivot;
        break;
      }
      if (result > 0) {
        base = pivot + 1;
        num--;
      }
      num >>= 1;
    }
    if (found < 0) return -1;
    while (found > 0) {
      const r = rs[found - 1]!;
      if (kvmIoBusCmp(addr, len, r.addr, r.len) !== 0) break;
      found--;
    }
    return found;
  }

  /** __kvm_io_bus_write: true when a device handled it (else the access exits to userspace). */
  write(addr: number, len: number, value: number): boolean {
    const rs = this.ranges;
    let idx = this.firstDev(addr, len);
    if (idx < 0) return false;
    while (idx < rs.length && kvmIoBusCmp(addr, len, rs[idx]!.addr, rs[idx]!.len) === 0) {
      if (rs[idx]!.dev.write(addr, len, value)) return true;
      idx++;
    }
    return false;
  }

  /** __kvm_io_bus_read: the value, or undefined when no device handled it. */
  read(addr: number, len: number): number | undefined {
    const rs = this.ranges;
    let idx = this.firstDev(addr, len);
    if (idx < 0) return undefined;
    while (idx < rs.length && kvmIoBusCmp(addr, len, rs[idx]!.addr, rs[idx]!.len) === 0) {
      const v = rs[idx]!.dev.read(addr, len);
      if (v !== undefined) return v;
      idx++;
    }
    return undefined;
  }
}
