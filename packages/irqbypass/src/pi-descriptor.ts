import { VirqError } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';

/** Host vectors of the posted-interrupt machinery (arch/x86/include/asm/irq_vectors.h). */
export const POSTED_INTR_VECTOR = 0xf2;
export const POSTED_INTR_WAKEUP_VECTOR = 0xf1;
export const POSTED_INTR_NESTED_VECTOR = 0xf0;

/** Byte offset of the 64-bit control word (ON, SN, NV, NDST) in the descriptor. */
export const PID_CONTROL_OFFSET = 32;
/** Bit positions inside the descriptor (FACTS §8.1, asm/posted_intr.h). */
export const PID_ON_BIT = 256;
export const PID_SN_BIT = 257;
export const PID_NV_SHIFT = 272;
export const PID_NDST_SHIFT = 288;

/** Size and alignment of a descriptor. */
export const PI_DESC_SIZE = 64;

export interface PiDescriptorState {
  readonly pir: readonly number[]; // 8 u32 words, PIR bits 0–255
  readonly on: boolean;
  readonly sn: boolean;
  readonly nv: number;
  readonly ndst: number;
}

/**
 * The VMX Posted-Interrupt Descriptor (`struct pi_desc`), 64 bytes, kept byte-exact:
 *
 * | bits    | field |
 * |---------|-------|
 * | 255:0   | PIR, one bit per vector |
 * | 256     | ON, outstanding notification |
 * | 257     | SN, suppress notification |
 * | 279:272 | NV, notification vector |
 * | 319:288 | NDST, notification destination (x2APIC id; xAPIC id << 8) |
 *
 * The words are a `Uint32Array` over 64 bytes; with a SharedArrayBuffer the updates use
 * Atomics like the kernel's `lock`-prefixed bit operations and cmpxchg on the control word.
 * `address` is the host physical address an IRTE in posted format points at (PDA).
 */
export class PiDescriptor {
  readonly bytes: Uint8Array;
  private readonly w: Uint32Array;
  /** Host physical address of the descriptor (64-byte aligned). */
  readonly address: number;

  constructor(address: number, buffer?: ArrayBuffer | SharedArrayBuffer, byteOffset = 0) {
    const buf = buffer ?? new ArrayBuffer(PI_DESC_SIZE);
    if (byteOffset % PI_DESC_SIZE !== 0 || byteOffset + PI_DESC_SIZE > buf.byteLength) {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, `a PI descriptor is 64 bytes, 64-byte aligned; offset ${byteOffset} in a ${buf.byteLength}-byte buffer is not`, { errno: 'EINVAL' });
    }
    this.bytes = new Uint8Array(buf, byteOffset, PI_DESC_SIZE);
    this.w = new Uint32Array(buf, byteOffset, PI_DESC_SIZE / 4);
    if (!Number.isSafeInteger(address) || address < 0 || address % PI_DESC_SIZE !== 0) {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, `PI descriptor address 0x${address.toString(16)} must be 64-byte aligned`, { errno: 'EINVAL' });
    }
    this.address = address;
  }

  // --- PIR -------------------------------------------------------------------------------

  /** pi_test_and_set_pir: sets PIR[vector]; returns whether it was already set. */
  testAndSetPir(vector: number): boolean {
    const i = vector >>> 5;
    const m = 1 << (vector & 31);
    const old = this.w[i]!;
    this.w[i] = old | m;
    return (old & m) !== 0;
  }

  pirBit(vector: number): boolean {
    return (this.w[vector >>> 5]! & (1 << (vector & 31))) !== 0;
  }

  /** pi_is_pir_empty. */
  get pirEmpty(): boolean {
    const w = this.w;
    return (w[0]! | w[1]! | w[2]! | w[3]! | w[4]! | w[5]! | w[6]! | w[7]!) === 0;
  }

  /**
   * Atomically takes every PIR bit (xchg of each word with 0) and returns the vectors, in
   * ascending order — what the CPU does on a notification and `vmx_sync_pir_to_irr` does in
   * software (`kvm_apic_update_irr`).
   */
  takePir(): number[] {
    const out: number[] = [];
    for (let i = 0; i < 8; i++) {
      let v = this.w[i]!;
      if (v === 0) continue;
      this.w[i] = 0;
      while (v !== 0) {
        const b = 31 - Math.clz32(v & -v);
        out.push(i * 32 + b);
        v &= v - 1;
      }
    }
    return out;
  }

  // --- control word ----------------------------------------------------------------------

  get on(): boolean {
    return (this.w[8]! & 1) !== 0;
  }

  get sn(): boolean {
    return (this.w[8]! & 2) !== 0;
  }

  get nv(): number {
    return (this.w[8]! >>> 16) & 0xff;
  }

  get ndst(): number {
    return this.w[9]!;
  }

  /** pi_test_and_set_on: returns whether ON was already set. */
  testAndSetOn(): boolean {
    const old = this.w[8]!;
    this.w[8] = old | 1;
    return (old & 1) !== 0;
  }

  /** pi_test_and_clear_on. */
  testAndClearOn(): boolean {
    const old = this.w[8]!;
    this.w[8] = old & ~1;
    return (old & 1) !== 0;
  }

  setSn(): void {
    this.w[8] = this.w[8]! | 2;
  }

  clearSn(): void {
    this.w[8] = this.w[8]! & ~2;
  }

  /**
   * The cmpxchg loop of vmx_vcpu_pi_load / pi_enable_wakeup_handler: writes NV and NDST
   * (and optionally SN) in one update of the control word.
   */
  updateControl(update: { nv?: number; ndst?: number; sn?: boolean }): void {
    let c = this.w[8]!;
    if (update.nv !== undefined) c = (c & ~0x00ff0000) | ((update.nv & 0xff) << 16);
    if (update.sn !== undefined) c = update.sn ? c | 2 : c & ~2;
    this.w[8] = c >>> 0;
    if (update.ndst !== undefined) this.w[9] = update.ndst >>> 0;
  }

  snapshot(): PiDescriptorState {
    return { pir: Array.from(this.w.subarray(0, 8)), on: this.on, sn: this.sn, nv: this.nv, ndst: this.ndst };
  }

  restore(s: PiDescriptorState): void {
    this.w.fill(0);
    for (let i = 0; i < 8; i++) this.w[i] = (s.pir[i] ?? 0) >>> 0;
    this.updateControl({ nv: s.nv, ndst: s.ndst, sn: s.sn });
    if (s.on) this.testAndSetOn();
  }
}

/** NDST for a host APIC id: x2APIC uses the id as is, xAPIC puts it in bits 15:8. */
export function piNdst(hostApicId: number, x2apic: boolean): number {
  return x2apic ? hostApicId >>> 0 : (hostApicId & 0xff) << 8;
}
