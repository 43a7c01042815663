import { VirqError } from '@virq/core';
import { PciErrorCode } from './errors.js';
import type { AccessSize } from './mmio-region.js';
import type { PciBar, PciDevice } from './pci-device.js';

/**
 * How guest code reaches PCI devices: config cycles by bus/device/function, MMIO and port
 * I/O by address. A machine implements this in front of the bus to put its own steps in
 * (a VM exit, KVM's ioeventfd bus) before an access reaches the device.
 */
export interface PciAccess {
  configRead(bdf: number, offset: number, size: number): number;
  configWrite(bdf: number, offset: number, size: number, value: number): void;
  mmioRead(addr: number, size: 1 | 2 | 4 | 8): number;
  mmioWrite(addr: number, size: 1 | 2 | 4 | 8, value: number): void;
  pioRead(port: number, size: 1 | 2 | 4): number;
  pioWrite(port: number, size: 1 | 2 | 4, value: number): void;
}

/** Makes a bus/device/function number. */
export function pciBdf(bus: number, dev: number, fn = 0): number {
  return ((bus & 0xff) << 8) | ((dev & 0x1f) << 3) | (fn & 7);
}

/**
 * A PCI root bus: devices by devfn, config accesses by BDF (a read of an empty slot returns
 * all-ones, like a master abort), and MMIO / PIO decoded against the BARs as they are
 * mapped now. Accesses that hit no BAR read as all-ones and are dropped (unassigned).
 */
export class PciBus implements PciAccess {
  private readonly devices = new Map<number, PciDevice>();
  private mmio: PciBar[] = [];
  private pio: PciBar[] = [];
  private readonly owner = new Map<PciBar, PciDevice>();
  /** Accesses that decoded to nothing. */
  unassigned = 0;

  constructor(readonly busNumber = 0) {}

  /** Plugs `dev` in at `devfn` (device << 3 | function). */
  attach(dev: PciDevice, devfn: number): void {
    if (!Number.isInteger(devfn) || devfn < 0 || devfn > 0xff) {
      throw new VirqError(PciErrorCode.DevfnInUse, `devfn must be 0..255, got ${devfn}`);
    }
    if (this.devices.has(devfn)) {
      throw new VirqError(PciErrorCode.DevfnInUse, `devfn 0x${devfn.toString(16)} on bus ${this.busNumber} is taken by ${this.devices.get(devfn)!.name}; choose another slot`);
    }
    dev.bus = this.busNumber;
    dev.devfn = devfn;
    this.devices.set(devfn, dev);
    for (const b of dev.allBars()) this.owner.set(b, dev);
    dev.onBarMapped(() => this.rebuild());
    this.rebuild();
  }

  device(devfn: number): PciDevice | undefined {
    return this.devices.get(devfn);
  }

  private rebuild(): void {
    this.mmio = [];
    this.pio = [];
    for (const d of this.devices.values()) {
      for (const b of d.allBars()) {
        this.owner.set(b, d);
        if (b.address === undefined) continue;
        (b.kind === 'mmio' ? this.mmio : this.pio).push(b);
      }
    }
  }

  private dev(bdf: number): PciDevice | undefined {
    if (bdf >>> 8 !== this.busNumber) return undefined;
    return this.devices.get(bdf & 0xff);
  }

  configRead(bdf: number, offset: number, size: number): number {
    const d = this.dev(bdf);
    if (d === undefined) return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    return d.configRead(offset, size);
  }

  configWrite(bdf: number, offset: number, size: number, value: number): void {
    this.dev(bdf)?.configWrite(offset, size, value);
  }

  /** The mapped BAR that contains [addr, addr+size), if any. */
  decode(space: 'mmio' | 'pio', addr: number, size = 1): { bar: PciBar; offset: number } | undefined {
    const list = space === 'mmio' ? this.mmio : this.pio;
    for (let i = 0; i < list.length; i++) {
      const b = list[i]!;
      const a = b.address!;
      if (addr >= a && addr + size <= a + b.size) return { bar: b, offset: addr - a };
    }
    return undefined;
  }

  mmioRead(addr: number, size: 1 | 2 | 4 | 8): number {
    if (size === 8) return this.mmioRead(addr, 4) + this.mmioRead(addr + 4, 4) * 2 ** 32;
    const hit = this.decode('mmio', addr, size);
    if (hit === undefined) {
      this.unassigned++;
      return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    }
    return hit.bar.region.read(hit.offset, size as AccessSize);
  }

  mmioWrite(addr: number, size: 1 | 2 | 4 | 8, value: number): void {
    if (size === 8) {
      this.mmioWrite(addr, 4, value % 2 ** 32);
      this.mmioWrite(addr + 4, 4, Math.floor(value / 2 ** 32));
      return;
    }
    const hit = this.decode('mmio', addr, size);
    if (hit === undefined) {
      this.unassigned++;
      return;
    }
    hit.bar.region.write(hit.offset, size as AccessSize, value);
  }

  pioRead(port: number, size: 1 | 2 | 4): number {
    const hit = this.decode('pio', port, size);
    if (hit === undefined) {
      this.unassigned++;
      return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    }
    return hit.bar.region.read(hit.offset, size);
  }

  pioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    const hit = this.decode('pio', port, size);
    if (hit === undefined) {
      this.unassigned++;
      return;
    }
    hit.bar.region.write(hit.offset, size, value);
  }
}
