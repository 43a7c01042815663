import type { PciAccess, PciBus } from '@virq/pci';

/** Where captured guest register writes go: the vCPU whose guest code is running. */
export type CapturedWrite =
  | { op: 'mmio-write'; addr: number; len: number; value: number; fn?: string }
  | { op: 'pio-write'; port: number; len: number; value: number; fn?: string }
  | { op: 'pio-read'; port: number; len: number; done?: (value: number) => void; fn?: string };

export interface CapturingCpu {
  capture: { push(op: CapturedWrite): unknown } | undefined;
}

/**
 * The guest's register accesses as the guest driver models make them. While guest code runs
 * on a vCPU's run loop, writes are captured and become that vCPU's `mmio-write`/`pio-write`
 * operations (each then takes its real VM exit, goes through KVM's ioeventfd bus, and only
 * reaches QEMU's PCI bus as a userspace exit). Outside the run loop (firmware and driver probe
 * at boot) accesses go straight to the bus. Reads are answered at once from the bus (QEMU's
 * value); their exits are not counted — the data path of these flows only writes.
 */
export class GuestPciAccess implements PciAccess {
  constructor(
    private readonly bus: PciBus,
    private readonly current: { cpu: CapturingCpu | undefined },
    private readonly notifyName: string | undefined = undefined,
  ) {}

  configRead(bdf: number, offset: number, size: number): number {
    return this.bus.configRead(bdf, offset, size);
  }
  configWrite(bdf: number, offset: number, size: number, value: number): void {
    this.bus.configWrite(bdf, offset, size, value);
  }
  mmioRead(addr: number, size: 1 | 2 | 4 | 8): number {
    return this.bus.mmioRead(addr, size);
  }
  mmioWrite(addr: number, size: 1 | 2 | 4 | 8, value: number): void {
    const cap = this.current.cpu?.capture;
    if (cap !== undefined && size !== 8) cap.push(this.notifyName === undefined ? { op: 'mmio-write', addr, len: size, value } : { op: 'mmio-write', addr, len: size, value, fn: this.notifyName });
    else this.bus.mmioWrite(addr, size, value);
  }
  pioRead(port: number, size: 1 | 2 | 4): number {
    return this.bus.pioRead(port, size);
  }
  pioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    const cap = this.current.cpu?.capture;
    if (cap !== undefined) cap.push(this.notifyName === undefined ? { op: 'pio-write', port, len: size, value } : { op: 'pio-write', port, len: size, value, fn: this.notifyName });
    else this.bus.pioWrite(port, size, value);
  }
}
