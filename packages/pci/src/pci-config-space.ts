import { VirqError } from '@virq/core';
import { PciErrorCode } from './errors.js';
import { PciReg, PciStatus } from './pci-regs.js';

/** Size of a conventional PCI function's configuration space (PCIe has 4096). */
export const PCI_CONFIG_SPACE_SIZE = 256;
export const PCIE_CONFIG_SPACE_SIZE = 4096;

/**
 * The bytes of one function's configuration space with QEMU's three per-byte masks:
 * `wmask` (bits the guest may write), `w1cmask` (write-1-to-clear bits) and what is left is
 * read-only. All accesses are little-endian.
 */
export class PciConfigSpace {
  readonly bytes: Uint8Array;
  readonly wmask: Uint8Array;
  readonly w1cmask: Uint8Array;
  /** Bytes already claimed by a capability (so two never overlap). */
  private readonly used: Uint8Array;

  constructor(readonly size: number = PCI_CONFIG_SPACE_SIZE) {
    this.bytes = new Uint8Array(size);
    this.wmask = new Uint8Array(size);
    this.w1cmask = new Uint8Array(size);
    this.used = new Uint8Array(size);
    this.used.fill(1, 0, 0x40);
  }

  /** Guest-visible read of 1, 2 or 4 bytes (a read past the end returns all-ones, as a master abort). */
  read(offset: number, size: number): number {
    checkAccess(offset, size, this.size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.bytes[offset + i]!;
    return v >>> 0;
  }

  /**
   * Guest write through the masks (QEMU's pci_default_write_config byte loop):
   * writable bits take the value, W1C bits set in the value are cleared.
   */
  write(offset: number, size: number, value: number): void {
    checkAccess(offset, size, this.size);
    for (let i = 0; i < size; i++) {
      const a = offset + i;
      const b = (value >>> (8 * i)) & 0xff;
      const wm = this.wmask[a]!;
      const w1c = this.w1cmask[a]!;
      this.bytes[a] = (this.bytes[a]! & ~wm) | (b & wm);
      this.bytes[a] = this.bytes[a]! & ~(b & w1c);
    }
  }

  // Device-side accessors (no masks): how the model itself sets registers.
  get8(o: number): number {
    return this.bytes[o]!;
  }
  get16(o: number): number {
    return this.bytes[o]! | (this.bytes[o + 1]! << 8);
  }
  get32(o: number): number {
    return (this.bytes[o]! | (this.bytes[o + 1]! << 8) | (this.bytes[o + 2]! << 16) | (this.bytes[o + 3]! << 24)) >>> 0;
  }
  set8(o: number, v: number): void {
    this.bytes[o] = v & 0xff;
  }
  set16(o: number, v: number): void {
    this.bytes[o] = v & 0xff;
    this.bytes[o + 1] = (v >>> 8) & 0xff;
  }
  set32(o: number, v: number): void {
    for (let i = 0; i < 4; i++) this.bytes[o + i] = (v >>> (8 * i)) & 0xff;
  }
  setWmask16(o: number, v: number): void {
    this.wmask[o] = v & 0xff;
    this.wmask[o + 1] = (v >>> 8) & 0xff;
  }
  get32Wmask(o: number): number {
    return (this.wmask[o]! | (this.wmask[o + 1]! << 8) | (this.wmask[o + 2]! << 16) | (this.wmask[o + 3]! << 24)) >>> 0;
  }
  setWmask32(o: number, v: number): void {
    for (let i = 0; i < 4; i++) this.wmask[o + i] = (v >>> (8 * i)) & 0xff;
  }

  /**
   * pci_add_capability: links a capability of `size` bytes into the list. The new one goes
   * at the head (QEMU inserts new capabilities first), at `offset` or at the first free
   * dword-aligned range. Returns the capability's offset.
   */
  addCapability(capId: number, size: number, offset?: number): number {
    if (!Number.isInteger(size) || size < 2 || size > 0xff) {
      throw new VirqError(PciErrorCode.CapabilityNoSpace, `a capability must be 2..255 bytes, got ${size}`);
    }
    let at = offset;
    if (at === undefined) {
      for (let o = 0x40; o + size <= PCI_CONFIG_SPACE_SIZE; o += 4) {
        if (this.used.subarray(o, o + size).every((b) => b === 0)) {
          at = o;
          break;
        }
      }
      if (at === undefined) {
        throw new VirqError(PciErrorCode.CapabilityNoSpace, `no room for a ${size}-byte capability 0x${capId.toString(16)} in config space; remove a capability or give a smaller size`);
      }
    } else if (at < 0x40 || at % 4 !== 0 || at + size > PCI_CONFIG_SPACE_SIZE || this.used.subarray(at, at + size).some((b) => b !== 0)) {
      throw new VirqError(PciErrorCode.CapabilityNoSpace, `capability 0x${capId.toString(16)} cannot go at 0x${at.toString(16)} (${size} bytes): it must be dword-aligned in 0x40..0xff and not overlap another capability`);
    }
    this.used.fill(1, at, at + size);
    this.bytes[at] = capId;
    this.bytes[at + 1] = this.bytes[PciReg.CAPABILITY_LIST]!;
    this.bytes[PciReg.CAPABILITY_LIST] = at;
    this.set16(PciReg.STATUS, this.get16(PciReg.STATUS) | PciStatus.CAP_LIST);
    return at;
  }

  /** Walks the capability list (as a driver does) and returns the offsets of `capId`, in list order. */
  findCapabilities(capId: number): number[] {
    const out: number[] = [];
    let p = this.bytes[PciReg.CAPABILITY_LIST]! & ~3;
    let guard = 0;
    while (p !== 0 && guard++ < 64) {
      if (this.bytes[p] === capId) out.push(p);
      p = this.bytes[p + 1]! & ~3;
    }
    return out;
  }
}

function checkAccess(offset: number, size: number, limit: number): void {
  if ((size !== 1 && size !== 2 && size !== 4) || !Number.isInteger(offset) || offset < 0 || offset + size > limit || offset % size !== 0) {
    throw new VirqError(PciErrorCode.ConfigAccessInvalid, `config space access of ${size} bytes at 0x${offset.toString(16)} is invalid: use 1, 2 or 4 bytes, naturally aligned, below 0x${limit.toString(16)}`, { errno: 'EINVAL', details: { offset, size } });
  }
}
