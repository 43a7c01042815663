import { type MsiMessage, VirqError } from '@virq/core';
import { PciErrorCode } from './errors.js';
import type { PciDevice } from './pci-device.js';
import { MsiCap, PciCapId } from './pci-regs.js';

export interface MsiInit {
  /** Vectors the function requests (1, 2, 4, 8, 16 or 32). */
  vectors: number;
  is64?: boolean;
  perVectorMask?: boolean;
  capOffset?: number;
}

/**
 * Plain MSI (capability 0x05) as hw/pci/msi.c emulates it: Enable, Multiple Message
 * Capable/Enable, 32/64-bit address, optional per-vector mask and pending bits.
 */
export class MsiCapability {
  readonly capOffset: number;
  readonly is64: boolean;
  readonly perVectorMask: boolean;

  constructor(
    readonly dev: PciDevice,
    init: MsiInit,
  ) {
    const n = init.vectors;
    if (![1, 2, 4, 8, 16, 32].includes(n)) {
      throw new VirqError(PciErrorCode.MsiInvalid, `MSI vectors must be a power of two ≤ 32, got ${n}`);
    }
    this.is64 = init.is64 ?? true;
    this.perVectorMask = init.perVectorMask ?? false;
    const size = this.perVectorMask ? (this.is64 ? 24 : 20) : this.is64 ? 14 : 10;
    const c = dev.config;
    this.capOffset = c.addCapability(PciCapId.MSI, size, init.capOffset);
    const cap = this.capOffset;
    const flags = (Math.log2(n) << 1) | (this.is64 ? MsiCap.FLAGS_64BIT : 0) | (this.perVectorMask ? MsiCap.FLAGS_MASKBIT : 0);
    c.set16(cap + MsiCap.FLAGS, flags);
    c.setWmask16(cap + MsiCap.FLAGS, MsiCap.FLAGS_ENABLE | MsiCap.FLAGS_QSIZE);
    c.setWmask32(cap + MsiCap.ADDRESS_LO, 0xfffffffc);
    if (this.is64) c.setWmask32(cap + MsiCap.ADDRESS_HI, 0xffffffff);
    c.setWmask16(this.dataOffset, 0xffff);
    if (this.perVectorMask) c.setWmask32(this.maskOffset, n === 32 ? 0xffffffff : (1 << n) - 1);
    dev.addConfigWriteHook((offset, sz) => this.writeConfig(offset, sz));
  }

  private get flags(): number {
    return this.dev.config.get16(this.capOffset + MsiCap.FLAGS);
  }
  private get dataOffset(): number {
    return this.capOffset + (this.is64 ? MsiCap.DATA_64 : MsiCap.DATA_32);
  }
  private get maskOffset(): number {
    return this.capOffset + (this.is64 ? MsiCap.MASK_64 : MsiCap.MASK_32);
  }
  private get pendingOffset(): number {
    return this.capOffset + (this.is64 ? MsiCap.PENDING_64 : MsiCap.PENDING_32);
  }

  get enabled(): boolean {
    return (this.flags & MsiCap.FLAGS_ENABLE) !== 0;
  }

  /** Vectors the guest enabled (Multiple Message Enable). */
  get enabledVectors(): number {
    return 1 << ((this.flags & MsiCap.FLAGS_QSIZE) >>> 4);
  }

  isMasked(vector: number): boolean {
    return this.perVectorMask && (this.dev.config.get32(this.maskOffset) & (1 << vector)) !== 0;
  }

  isPending(vector: number): boolean {
    return this.perVectorMask && (this.dev.config.get32(this.pendingOffset) & (1 << vector)) !== 0;
  }

  /** msi_get_message: the vector number goes into the low data bits. */
  getMessage(vector: number): MsiMessage {
    const c = this.dev.config;
    const lo = c.get32(this.capOffset + MsiCap.ADDRESS_LO);
    const hi = this.is64 ? c.get32(this.capOffset + MsiCap.ADDRESS_HI) : 0;
    const nr = this.enabledVectors;
    const data = ((c.get16(this.dataOffset) & ~(nr - 1)) | vector) & 0xffff;
    return { addressLo: lo, addressHi: hi, data, requesterId: this.dev.requesterId };
  }

  /** msi_notify. */
  notify(vector: number, caller = 'virtio_pci_notify'): number {
    if (!this.enabled || vector >= this.enabledVectors) return -1;
    const t = this.dev.trace;
    if (t.on) t.emit('msi.notify', 'msi_notify', caller, { dev: this.dev.name, vector });
    if (this.isMasked(vector)) {
      const c = this.dev.config;
      c.set32(this.pendingOffset, c.get32(this.pendingOffset) | (1 << vector));
      return -1;
    }
    return this.dev.sendMsi(this.getMessage(vector), 'msi_notify');
  }

  /** msi_write_config: enabling deasserts INTx; an unmasked pending vector is delivered. */
  private writeConfig(offset: number, size: number): void {
    const cap = this.capOffset;
    if (offset + size <= cap || offset >= cap + 24) return;
    if (!this.enabled) return;
    this.dev.deassertIntx();
    if (!this.perVectorMask) return;
    const c = this.dev.config;
    const pending = c.get32(this.pendingOffset);
    for (let v = 0; v < this.enabledVectors; v++) {
      if ((pending & (1 << v)) !== 0 && !this.isMasked(v)) {
        c.set32(this.pendingOffset, c.get32(this.pendingOffset) & ~(1 << v));
        this.notify(v, 'msi_write_config');
      }
    }
  }
}
