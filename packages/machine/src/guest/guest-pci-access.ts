import type { Actor } from '@virq/core';
import type { PciAccess, PciBus } from '@virq/pci';

/** Where captured guest register writes go: the vCPU whose guest code is running. */
export type CapturedWrite =
  | { op: 'mmio-write'; addr: number; len: number; value: number; fn?: string }
  | { op: 'pio-write'; port: number; len: number; value: number; fn?: string; applied?: boolean }
  | { op: 'pio-read'; port: number; len: number; done?: (value: number) => void; fn?: string; applied?: boolean }
  | { op: 'mmio-read'; addr: number; len: number; applied: true };

export interface CapturingCpu {
  capture: { push(op: CapturedWrite): unknown } | undefined;
}

/**
 * The guest's register accesses as the guest driver models make them. While guest code runs
 * on a vCPU's run loop, writes are captured and become that vCPU's `mmio-write`/`pio-write`
 * operations (each then takes its real VM exit, goes through KVM's ioeventfd bus, and only
 * reaches QEMU's PCI bus as a userspace exit). Outside the run loop (firmware and driver probe
 * at boot) accesses go straight to the bus. A read is answered at once from the bus (QEMU's
 * value: the driver needs it now — vp_interrupt's ISR read decides what runs next) and its exit
 * is captured after it (`applied`: the exit takes its time and counts, without a second read).
 */
export class GuestPciAccess implements PciAccess {
  constructor(
    private readonly bus: PciBus,
    private readonly current: { cpu: CapturingCpu | undefined },
    private readonly notifyName: string | undefined = undefined,
    /** The running actor, whose guest-code attribution a read's device emulation (host code) must not take. */
    private readonly running: () => Actor | undefined = () => undefined,
  ) {}

  /** A read the driver makes at once reaches QEMU's device: that emulation is the vCPU thread's, not the guest's. */
  private hostRead<T>(fn: () => T): T {
    const a = this.running();
    const prev = a?.traceAs;
    if (a !== undefined) a.traceAs = undefined;
    try {
      return fn();
    } finally {
      if (a !== undefined) a.traceAs = prev;
    }
  }

  configRead(bdf: number, offset: number, size: number): number {
    return this.bus.configRead(bdf, offset, size);
  }
  configWrite(bdf: number, offset: number, size: number, value: number): void {
    this.bus.configWrite(bdf, offset, size, value);
  }
  mmioRead(addr: number, size: 1 | 2 | 4 | 8): number {
    const v = this.hostRead(() => this.bus.mmioRead(addr, size));
    this.current.cpu?.capture?.push({ op: 'mmio-read', addr, len: size, applied: true });
    return v;
  }
  mmioWrite(addr: number, size: 1 | 2 | 4 | 8, value: number): void {
    const cap = this.current.cpu?.capture;
    if (cap !== undefined && size !== 8) cap.push(this.notifyName === undefined ? { op: 'mmio-write', addr, len: size, value } : { op: 'mmio-write', addr, len: size, value, fn: this.notifyName });
    else this.bus.mmioWrite(addr, size, value);
  }
  pioRead(port: number, size: 1 | 2 | 4): number {
    const v = this.hostRead(() => this.bus.pioRead(port, size));
    this.current.cpu?.capture?.push({ op: 'pio-read', port, len: size, applied: true });
    return v;
  }
  pioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    const cap = this.current.cpu?.capture;
    if (cap !== undefined) cap.push(this.notifyName === undefined ? { op: 'pio-write', port, len: size, value } : { op: 'pio-write', port, len: size, value, fn: this.notifyName });
    else this.bus.pioWrite(port, size, value);
  }
}
