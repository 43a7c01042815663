/**
 * ITS commands: 32 bytes, four little-endian 64-bit words (DW0–DW3), with the encodings of
 * FACTS §13.2 (Linux its_encode_*, QEMU gicv3_internal.h, KVM its_cmd_get_*). The encoders
 * are what a driver (Linux irq-gic-v3-its.c, KVM's host ITS driver) writes into the queue;
 * `ItsCommandWords` is how the ITS decodes them.
 */
export const ItsOpcode = {
  MOVI: 0x01,
  INT: 0x03,
  CLEAR: 0x04,
  SYNC: 0x05,
  MAPD: 0x08,
  MAPC: 0x09,
  MAPTI: 0x0a,
  MAPI: 0x0b,
  INV: 0x0c,
  INVALL: 0x0d,
  MOVALL: 0x0e,
  DISCARD: 0x0f,
  VMOVI: 0x21,
  VMOVP: 0x22,
  VSGI: 0x23,
  VSYNC: 0x25,
  VMAPP: 0x29,
  VMAPTI: 0x2a,
  VMAPI: 0x2b,
  VINVALL: 0x2d,
  INVDB: 0x2e,
} as const;
export type ItsOpcodeName = keyof typeof ItsOpcode;

/** Command error numbers, format 0x01 | opcode << 8 | subcode (FACTS §13.4, Linux names). */
export const ItsError = {
  MOVI_UNMAPPED_INTERRUPT: 0x010107,
  MOVI_UNMAPPED_COLLECTION: 0x010109,
  INT_UNMAPPED_INTERRUPT: 0x010307,
  CLEAR_UNMAPPED_INTERRUPT: 0x010507,
  MAPD_DEVICE_OOR: 0x010801,
  MAPD_ITTSIZE_OOR: 0x010802,
  MAPC_PROCNUM_OOR: 0x010902,
  MAPC_COLLECTION_OOR: 0x010903,
  MAPTI_UNMAPPED_DEVICE: 0x010a04,
  MAPTI_ID_OOR: 0x010a05,
  MAPTI_PHYSICALID_OOR: 0x010a06,
  INV_UNMAPPED_INTERRUPT: 0x010c07,
  INVALL_UNMAPPED_COLLECTION: 0x010d09,
  MOVALL_PROCNUM_OOR: 0x010e01,
  DISCARD_UNMAPPED_INTERRUPT: 0x010f07,
} as const;
export type ItsErrorName = keyof typeof ItsError;

export function itsErrorName(code: number): ItsErrorName | undefined {
  for (const [k, v] of Object.entries(ItsError)) if (v === code) return k as ItsErrorName;
  return undefined;
}

export function itsOpcodeName(op: number): ItsOpcodeName | undefined {
  for (const [k, v] of Object.entries(ItsOpcode)) if (v === op) return k as ItsOpcodeName;
  return undefined;
}

/**
 * A decoded command as eight 32-bit halves (w[2n] = low half of DWn), which keeps every
 * field extraction in plain numbers. Field getters follow §13.2.
 */
export class ItsCommandWords {
  readonly w = new Uint32Array(8);

  static fromBytes(b: Uint8Array): ItsCommandWords {
    const c = new ItsCommandWords();
    const dv = new DataView(b.buffer, b.byteOffset, 32);
    for (let i = 0; i < 8; i++) c.w[i] = dv.getUint32(i * 4, true);
    return c;
  }

  get opcode(): number { return this.w[0] & 0xff; }
  /** DW0 63:32. */
  get deviceId(): number { return this.w[1]; }
  /** DW1 31:0. */
  get eventId(): number { return this.w[2]; }
  /** DW1 63:32 (MAPTI pINTID). */
  get physicalId(): number { return this.w[3]; }
  /** DW1 4:0 (MAPD Size = EventID bits − 1). */
  get size(): number { return this.w[2] & 0x1f; }
  /** DW2 51:8 (MAPD ITT address). */
  get ittAddr(): number { return (this.w[4] & 0xffffff00) + (this.w[5] & 0xfffff) * 2 ** 32; }
  /** DW2 63 (MAPD, MAPC, VMAPP Valid). */
  get valid(): boolean { return (this.w[5] & 0x80000000) !== 0; }
  /** DW2 15:0 (ICID). */
  get icid(): number { return this.w[4] & 0xffff; }
  /** DW2 51:16 (RDbase: a processor number when GITS_TYPER.PTA = 0). */
  get rdbase(): number { return (this.w[4] >>> 16) + (this.w[5] & 0xfffff) * 0x10000; }
  /** DW3 51:16 (MOVALL RDbase2, VMAPP VPT address >> 16). */
  get rdbase2(): number { return (this.w[6] >>> 16) + (this.w[7] & 0xfffff) * 0x10000; }
  /** DW1 47:32 (vPEID). */
  get vpeId(): number { return this.w[3] & 0xffff; }
  /** DW2 31:0 (VMAPTI vINTID). */
  get virtualId(): number { return this.w[4]; }
  /** DW2 63:32 (VMAPTI / VMAPI / VMOVI doorbell pINTID). */
  get doorbell(): number { return this.w[5]; }
  /** DW3 7:0 (VMAPP VPT size: ID bits − 1). */
  get vptSize(): number { return this.w[6] & 0xff; }
  /** DW3 51:16 as an address (VMAPP VPT_addr). */
  get vptAddr(): number { return this.rdbase2 * 0x10000; }
  /** DW1 31:0 (GICv4.1 VMAPP/VMOVP default doorbell in DW1/DW3). */
  get defaultDoorbellVmapp(): number { return this.w[2]; }
  /** DW0 51:16 (GICv4.1 VMAPP VCONF address >> 16). */
  get vconfAddr(): number { return ((this.w[0] >>> 16) + (this.w[1] & 0xfffff) * 0x10000) * 0x10000; }
  /** DW0 bit 8 (VMAPP 4.1 Alloc) */
  get alloc(): boolean { return (this.w[0] & 0x100) !== 0; }
  /** DW0 bit 9 (VMAPP 4.1 PTZ). */
  get ptz(): boolean { return (this.w[0] & 0x200) !== 0; }
  /** VSGI DW0 35:32. */
  get vsgiId(): number { return this.w[1] & 0xf; }

  toBytes(): Uint8Array {
    const b = new Uint8Array(32);
    const dv = new DataView(b.buffer);
    for (let i = 0; i < 8; i++) dv.setUint32(i * 4, this.w[i], true);
    return b;
  }
}

/** Builds a command from its four DWs' fields. */
class Enc {
  private readonly c = new ItsCommandWords();
  constructor(op: number) {
    this.c.w[0] = op;
  }
  /** Sets bits [lo, lo+width) of DW `dw` to `value` (width ≤ 32, field within one half). */
  f(dw: number, lo: number, width: number, value: number): this {
    const idx = dw * 2 + (lo >= 32 ? 1 : 0);
    const sh = lo & 31;
    const mask = width === 32 ? 0xffffffff : ((1 << width) - 1) >>> 0;
    this.c.w[idx] = ((this.c.w[idx] & ~((mask << sh) >>> 0)) | (((value & mask) << sh) >>> 0)) >>> 0;
    return this;
  }
  /** Sets an address field whose bits [lo, 51] hold address bits [lo, 51]. */
  addr(dw: number, lo: number, address: number): this {
    const low = address % 2 ** 32;
    const high = Math.floor(address / 2 ** 32) & 0xfffff;
    const m = (0xffffffff << lo) >>> 0;
    this.c.w[dw * 2] = ((this.c.w[dw * 2] & ~m) | (low & m)) >>> 0;
    this.c.w[dw * 2 + 1] = ((this.c.w[dw * 2 + 1] & ~0xfffff) | high) >>> 0;
    return this;
  }
  /** RDbase-like field 51:16 holding a number (processor number or PA >> 16). */
  rd(dw: number, value: number): this {
    this.c.w[dw * 2] = ((this.c.w[dw * 2] & 0xffff) | ((value & 0xffff) << 16)) >>> 0;
    this.c.w[dw * 2 + 1] = ((this.c.w[dw * 2 + 1] & ~0xfffff) | (Math.floor(value / 0x10000) & 0xfffff)) >>> 0;
    return this;
  }
  bytes(): Uint8Array {
    return this.c.toBytes();
  }
}

/** Command encoders, one per command (the driver side: Linux its_build_*_cmd). */
export const ItsCommand = {
  movi: (deviceId: number, eventId: number, icid: number): Uint8Array =>
    new Enc(ItsOpcode.MOVI).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).f(2, 0, 16, icid).bytes(),
  int: (deviceId: number, eventId: number): Uint8Array => new Enc(ItsOpcode.INT).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).bytes(),
  clear: (deviceId: number, eventId: number): Uint8Array => new Enc(ItsOpcode.CLEAR).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).bytes(),
  sync: (rdbase: number): Uint8Array => new Enc(ItsOpcode.SYNC).rd(2, rdbase).bytes(),
  /** MAPD: `eventIdBits` EventID bits (Size = bits − 1), ITT address 256-byte aligned. */
  mapd: (deviceId: number, eventIdBits: number, ittAddr: number, valid: boolean): Uint8Array =>
    new Enc(ItsOpcode.MAPD).f(0, 32, 32, deviceId).f(1, 0, 5, eventIdBits - 1).addr(2, 8, ittAddr).f(2, 63, 1, valid ? 1 : 0).bytes(),
  mapc: (icid: number, rdbase: number, valid: boolean): Uint8Array =>
    new Enc(ItsOpcode.MAPC).f(2, 0, 16, icid).rd(2, rdbase).f(2, 63, 1, valid ? 1 : 0).bytes(),
  mapti: (deviceId: number, eventId: number, pintid: number, icid: number): Uint8Array =>
    new Enc(ItsOpcode.MAPTI).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).f(1, 32, 32, pintid).f(2, 0, 16, icid).bytes(),
  mapi: (deviceId: number, eventId: number, icid: number): Uint8Array =>
    new Enc(ItsOpcode.MAPI).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).f(2, 0, 16, icid).bytes(),
  inv: (deviceId: number, eventId: number): Uint8Array => new Enc(ItsOpcode.INV).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).bytes(),
  invall: (icid: number): Uint8Array => new Enc(ItsOpcode.INVALL).f(2, 0, 16, icid).bytes(),
  movall: (rdbase1: number, rdbase2: number): Uint8Array => new Enc(ItsOpcode.MOVALL).rd(2, rdbase1).rd(3, rdbase2).bytes(),
  discard: (deviceId: number, eventId: number): Uint8Array => new Enc(ItsOpcode.DISCARD).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).bytes(),
  /** VMAPP (GICv4.0 layout; `defaultDoorbell` fills the 4.1 DW1 field, 1023 = none). */
  vmapp: (vpeId: number, rdbase: number, vptAddr: number, vptIdBits: number, valid: boolean, defaultDoorbell = 1023): Uint8Array =>
    new Enc(ItsOpcode.VMAPP).f(1, 32, 16, vpeId).f(1, 0, 32, defaultDoorbell).rd(2, rdbase).f(2, 63, 1, valid ? 1 : 0).rd(3, Math.floor(vptAddr / 0x10000)).f(3, 0, 8, vptIdBits - 1).bytes(),
  vmapti: (deviceId: number, eventId: number, vpeId: number, vintid: number, doorbell: number): Uint8Array =>
    new Enc(ItsOpcode.VMAPTI).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).f(1, 32, 16, vpeId).f(2, 0, 32, vintid).f(2, 32, 32, doorbell).bytes(),
  vmapi: (deviceId: number, eventId: number, vpeId: number, doorbell: number): Uint8Array =>
    new Enc(ItsOpcode.VMAPI).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).f(1, 32, 16, vpeId).f(2, 32, 32, doorbell).bytes(),
  vmovi: (deviceId: number, eventId: number, vpeId: number, doorbell: number | undefined): Uint8Array =>
    new Enc(ItsOpcode.VMOVI).f(0, 32, 32, deviceId).f(1, 0, 32, eventId).f(1, 32, 16, vpeId).f(2, 0, 1, doorbell === undefined ? 0 : 1).f(2, 32, 32, doorbell ?? 0).bytes(),
  vmovp: (sequence: number, itsList: number, vpeId: number, rdbase: number, defaultDoorbell?: number): Uint8Array =>
    new Enc(ItsOpcode.VMOVP).f(0, 32, 16, sequence).f(1, 0, 16, itsList).f(1, 32, 16, vpeId).rd(2, rdbase).f(2, 63, 1, defaultDoorbell === undefined ? 0 : 1).f(3, 0, 32, defaultDoorbell ?? 0).bytes(),
  vsync: (vpeId: number): Uint8Array => new Enc(ItsOpcode.VSYNC).f(1, 32, 16, vpeId).bytes(),
  vinvall: (vpeId: number): Uint8Array => new Enc(ItsOpcode.VINVALL).f(1, 32, 16, vpeId).bytes(),
  invdb: (vpeId: number): Uint8Array => new Enc(ItsOpcode.INVDB).f(1, 32, 16, vpeId).bytes(),
  vsgi: (vpeId: number, sgi: number, o: { enable?: boolean; clear?: boolean; group?: 0 | 1; priority?: number } = {}): Uint8Array =>
    new Enc(ItsOpcode.VSGI).f(0, 8, 1, o.enable === true ? 1 : 0).f(0, 9, 1, o.clear === true ? 1 : 0).f(0, 10, 1, o.group ?? 1)
      .f(0, 20, 4, (o.priority ?? 0) >> 4).f(0, 32, 4, sgi).f(1, 32, 16, vpeId).bytes(),
} as const;
