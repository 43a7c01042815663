import { VirqError } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';

/**
 * A VT-d Interrupt Remapping Table Entry (`struct irte`, include/linux/dmar.h), 128 bits,
 * held as four little-endian u32 words (w[0] = bits 31:0 … w[3] = bits 127:96).
 *
 * Common: bit 0 Present, bit 1 FPD, bits 11:8 AVAIL, bit 15 IM/PST (0 remapped, 1 posted),
 * bits 23:16 vector, bits 79:64 SID, 81:80 SQ, 83:82 SVT.
 * Remapped: bit 2 DM, bit 3 RH, bit 4 TM, bits 7:5 delivery mode, bits 63:32 destination.
 * Posted: bit 14 URG, bits 63:38 PDA[31:6], bits 127:96 PDA[63:32]; the vector is the guest's.
 */
export type IrteWords = readonly [number, number, number, number];

interface IrteCommon {
  readonly present: boolean;
  readonly fpd: boolean;
  readonly avail: number;
  readonly sid: number;
  readonly sq: number;
  readonly svt: number;
}

export interface RemappedIrte extends IrteCommon {
  readonly mode: 'remapped';
  /** 0 physical, 1 logical. */
  readonly destMode: 0 | 1;
  readonly redirHint: boolean;
  /** 0 edge, 1 level. */
  readonly triggerMode: 0 | 1;
  /** 0 fixed, 1 lowest priority, … (the MSI delivery-mode encoding). */
  readonly deliveryMode: number;
  /** Host vector. */
  readonly vector: number;
  /** Destination field, bits 63:32 (x2APIC id, or xAPIC id << 8). */
  readonly destId: number;
}

export interface PostedIrte extends IrteCommon {
  readonly mode: 'posted';
  readonly urgent: boolean;
  /** Guest vector set in the PIR. */
  readonly vector: number;
  /** Posted-interrupt descriptor address (64-byte aligned). */
  readonly pda: number;
}

export type Irte = RemappedIrte | PostedIrte;

const PST = 1 << 15;

function checkField(name: string, v: number, bits: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw new VirqError(IrqBypassErrorCode.IrteInvalid, `IRTE ${name} must be a ${bits}-bit unsigned integer, got ${v}`, { errno: 'EINVAL' });
  }
  return v;
}

function commonHigh(e: IrteCommon): number {
  return (checkField('sid', e.sid, 16) | (checkField('sq', e.sq, 2) << 16) | (checkField('svt', e.svt, 2) << 18)) >>> 0;
}

/** Encodes an IRTE to its four words. */
export function encodeIrte(e: Irte): IrteWords {
  const base = (e.present ? 1 : 0) | (e.fpd ? 2 : 0) | (checkField('avail', e.avail, 4) << 8) | (checkField('vector', e.vector, 8) << 16);
  if (e.mode === 'remapped') {
    const w0 = base | (e.destMode << 2) | (e.redirHint ? 8 : 0) | (e.triggerMode << 4) | (checkField('deliveryMode', e.deliveryMode, 3) << 5);
    return [w0 >>> 0, checkField('destId', e.destId, 32) >>> 0, commonHigh(e), 0];
  }
  if (!Number.isSafeInteger(e.pda) || e.pda < 0 || e.pda % 64 !== 0 || e.pda >= 2 ** 52) {
    throw new VirqError(IrqBypassErrorCode.IrteInvalid, `IRTE posted descriptor address must be 64-byte aligned and below 2^52, got 0x${e.pda.toString(16)}`, { errno: 'EINVAL' });
  }
  const w0 = base | (e.urgent ? 1 << 14 : 0) | PST;
  const lo = e.pda % 2 ** 32;
  const hi = Math.floor(e.pda / 2 ** 32);
  return [w0 >>> 0, (lo & 0xffffffc0) >>> 0, commonHigh(e), hi >>> 0];
}

/**
 * Decodes four words. Reserved bits set → `iommu.irte-invalid` (the remapping hardware would
 * report a reserved-field fault).
 */
export function decodeIrte(w: IrteWords): Irte {
  const [w0, w1, w2, w3] = w;
  const common: IrteCommon = {
    present: (w0 & 1) !== 0,
    fpd: (w0 & 2) !== 0,
    avail: (w0 >>> 8) & 0xf,
    sid: w2 & 0xffff,
    sq: (w2 >>> 16) & 3,
    svt: (w2 >>> 18) & 3,
  };
  const vector = (w0 >>> 16) & 0xff;
  if ((w0 & PST) === 0) {
    if ((w0 & 0xff00f000) !== 0 || (w2 & 0xfff00000) !== 0 || w3 !== 0) {
      throw new VirqError(IrqBypassErrorCode.IrteInvalid, `remapped-format IRTE has reserved bits set: ${formatIrte(w)}`, { errno: 'EINVAL' });
    }
    return {
      ...common,
      mode: 'remapped',
      destMode: ((w0 >>> 2) & 1) as 0 | 1,
      redirHint: (w0 & 8) !== 0,
      triggerMode: ((w0 >>> 4) & 1) as 0 | 1,
      deliveryMode: (w0 >>> 5) & 7,
      vector,
      destId: w1 >>> 0,
    };
  }
  if ((w0 & 0xff0030fc) !== 0 || (w1 & 0x3f) !== 0 || (w2 & 0xfff00000) !== 0) {
    throw new VirqError(IrqBypassErrorCode.IrteInvalid, `posted-format IRTE has reserved bits set: ${formatIrte(w)}`, { errno: 'EINVAL' });
  }
  return { ...common, mode: 'posted', urgent: (w0 & (1 << 14)) !== 0, vector, pda: w3 * 2 ** 32 + (w1 >>> 0) };
}

/** The 128-bit value as a bigint (bit 0 = bit 0 of w[0]). */
export function irteToBigInt(w: IrteWords): bigint {
  return (BigInt(w[3] >>> 0) << 96n) | (BigInt(w[2] >>> 0) << 64n) | (BigInt(w[1] >>> 0) << 32n) | BigInt(w[0] >>> 0);
}

export function formatIrte(w: IrteWords): string {
  return `0x${irteToBigInt(w).toString(16).padStart(32, '0')}`;
}
