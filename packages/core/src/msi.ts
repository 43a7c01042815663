import type { Actor } from './actor.js';
import { CoreErrorCode, VirqError } from './errors.js';

/**
 * A message-signalled interrupt: a 32-bit write of `data` to a 64-bit `address`, the shape
 * of `struct kvm_msi` (address_lo, address_hi, data, devid). `requesterId` is the PCI
 * requester id (bus/dev/fn) — the ITS's DeviceID on ARM, KVM_MSI_VALID_DEVID's devid.
 */
export interface MsiMessage {
  readonly addressLo: number;
  readonly addressHi: number;
  readonly data: number;
  readonly requesterId?: number;
}

export function msiMessage(address: bigint | number, data: number, requesterId?: number): MsiMessage {
  const a = BigInt(address);
  if (a < 0n || a > 0xffff_ffff_ffff_ffffn) {
    throw new VirqError(CoreErrorCode.ArgumentInvalid, `MSI address must be a 64-bit unsigned value, got ${address}`);
  }
  if (!Number.isInteger(data) || data < 0 || data > 0xffffffff) {
    throw new VirqError(CoreErrorCode.ArgumentInvalid, `MSI data must be a 32-bit unsigned value, got ${data}`);
  }
  const msg = { addressLo: Number(a & 0xffffffffn), addressHi: Number(a >> 32n), data };
  return requesterId === undefined ? msg : { ...msg, requesterId };
}

/** The 64-bit address of an MSI message. */
export function msiAddress(msg: MsiMessage): bigint {
  return (BigInt(msg.addressHi >>> 0) << 32n) | BigInt(msg.addressLo >>> 0);
}

export function formatMsi(msg: MsiMessage): string {
  const rid = msg.requesterId === undefined ? '' : ` devid=0x${msg.requesterId.toString(16)}`;
  return `addr=0x${msiAddress(msg).toString(16)} data=0x${(msg.data >>> 0).toString(16)}${rid}`;
}

/**
 * Where devices send MSIs. On x86 it is the LAPIC bus (`kvm_set_msi` →
 * `kvm_irq_delivery_to_apic`); on ARM the ITS's GITS_TRANSLATER (DeviceID = requester id).
 * Returns KVM's convention: < 0 not delivered, 0 coalesced, > 0 CPUs it reached.
 */
export interface MsiSink {
  deliverMsi(msg: MsiMessage, by?: Actor): number;
}
