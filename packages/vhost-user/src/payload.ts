import { VirqError } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import { VHOST_MEMORY_BASELINE_NREGIONS, VHOST_USER_MAX_CONFIG_SIZE } from './protocol.js';

/**
 * Payload types of vhost-user messages (FACTS §10.1 "Payload types"), little endian. u64
 * addresses are decoded to JS numbers: exact below 2^53, and anything at or above 2^53 stays
 * at or above 2^53 after rounding, so it can never alias a mapped address (every check
 * against region bounds fails for it). Feature masks are bigints.
 */

/** vhost_vring_state. */
export interface VringState {
  index: number;
  num: number;
}
/** vhost_vring_addr: note the wire order desc, used, avail. */
export interface VringAddr {
  index: number;
  /** bit 0: VHOST_VRING_F_LOG. */
  flags: number;
  desc: number;
  used: number;
  avail: number;
  log: number;
}
/** VhostUserMemoryRegion (32 bytes). */
export interface VhostUserMemoryRegion {
  guestPhysAddr: number;
  memorySize: number;
  userspaceAddr: number;
  mmapOffset: number;
}
export interface VhostUserLog {
  mmapSize: number;
  mmapOffset: number;
}
/** vhost_iotlb_msg. */
export interface VhostIotlbMsg {
  iova: number;
  size: number;
  uaddr: number;
  /** 0 none, 1 RO, 2 WO, 3 RW. */
  perm: number;
  /** 1 miss, 2 update, 3 invalidate, 4 access-fail. */
  type: number;
}
export interface VhostUserConfig {
  offset: number;
  size: number;
  flags: number;
  data: Uint8Array;
}
export interface VhostUserInflight {
  mmapSize: number;
  mmapOffset: number;
  numQueues: number;
  queueSize: number;
}
export interface VhostUserDeviceStateParams {
  direction: number;
  phase: number;
}

export const VRING_STATE_SIZE = 8;
export const VRING_ADDR_SIZE = 40;
export const MEMORY_REGION_SIZE = 32;
export const MEMORY_TABLE_HDR_SIZE = 8;
export const SINGLE_REGION_SIZE = 8 + MEMORY_REGION_SIZE;
export const LOG_SIZE = 16;
export const IOTLB_SIZE = 32;
export const CONFIG_HDR_SIZE = 12;
export const INFLIGHT_SIZE = 24;
export const VRING_AREA_SIZE = 24;
export const DEVICE_STATE_PARAMS_SIZE = 8;

function dv(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}
function getU64n(d: DataView, o: number): number {
  return d.getUint32(o, true) + d.getUint32(o + 4, true) * 4294967296;
}
function setU64n(d: DataView, o: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new VirqError(VhostUserErrorCode.Overflow, `u64 field must be a safe unsigned integer, got ${v}`, { errno: 'EINVAL' });
  }
  d.setUint32(o, v % 4294967296, true);
  d.setUint32(o + 4, Math.floor(v / 4294967296), true);
}

function expectSize(what: string, p: Uint8Array, size: number): DataView {
  if (p.length !== size) {
    throw new VirqError(VhostUserErrorCode.BadSize, `${what} payload must be ${size} bytes, got ${p.length}`, { errno: 'EINVAL', details: { expected: size, got: p.length } });
  }
  return dv(p);
}

export function encodeU64(v: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  dv(out).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return out;
}
export function decodeU64(p: Uint8Array, what = 'u64'): bigint {
  return expectSize(what, p, 8).getBigUint64(0, true);
}

export function encodeVringState(s: VringState): Uint8Array {
  const out = new Uint8Array(VRING_STATE_SIZE);
  const d = dv(out);
  d.setUint32(0, s.index >>> 0, true);
  d.setUint32(4, s.num >>> 0, true);
  return out;
}
export function decodeVringState(p: Uint8Array, what = 'vring state'): VringState {
  const d = expectSize(what, p, VRING_STATE_SIZE);
  return { index: d.getUint32(0, true), num: d.getUint32(4, true) };
}

export function encodeVringAddr(a: VringAddr): Uint8Array {
  const out = new Uint8Array(VRING_ADDR_SIZE);
  const d = dv(out);
  d.setUint32(0, a.index >>> 0, true);
  d.setUint32(4, a.flags >>> 0, true);
  setU64n(d, 8, a.desc);
  setU64n(d, 16, a.used);
  setU64n(d, 24, a.avail);
  setU64n(d, 32, a.log);
  return out;
}
export function decodeVringAddr(p: Uint8Array): VringAddr {
  const d = expectSize('vring address', p, VRING_ADDR_SIZE);
  return { index: d.getUint32(0, true), flags: d.getUint32(4, true), desc: getU64n(d, 8), used: getU64n(d, 16), avail: getU64n(d, 24), log: getU64n(d, 32) };
}

function putRegion(d: DataView, o: number, r: VhostUserMemoryRegion): void {
  setU64n(d, o, r.guestPhysAddr);
  setU64n(d, o + 8, r.memorySize);
  setU64n(d, o + 16, r.userspaceAddr);
  setU64n(d, o + 24, r.mmapOffset);
}
function getRegion(d: DataView, o: number): VhostUserMemoryRegion {
  return { guestPhysAddr: getU64n(d, o), memorySize: getU64n(d, o + 8), userspaceAddr: getU64n(d, o + 16), mmapOffset: getU64n(d, o + 24) };
}

/** SET_MEM_TABLE payload: nregions, padding, then the regions (QEMU sends only the used ones). */
export function encodeMemoryTable(regions: readonly VhostUserMemoryRegion[]): Uint8Array {
  const out = new Uint8Array(MEMORY_TABLE_HDR_SIZE + MEMORY_REGION_SIZE * regions.length);
  const d = dv(out);
  d.setUint32(0, regions.length, true);
  regions.forEach((r, i) => putRegion(d, MEMORY_TABLE_HDR_SIZE + i * MEMORY_REGION_SIZE, r));
  return out;
}
export function decodeMemoryTable(p: Uint8Array): VhostUserMemoryRegion[] {
  if (p.length < MEMORY_TABLE_HDR_SIZE) {
    throw new VirqError(VhostUserErrorCode.BadSize, `memory table payload needs at least ${MEMORY_TABLE_HDR_SIZE} bytes, got ${p.length}`, { errno: 'EINVAL' });
  }
  const d = dv(p);
  const n = d.getUint32(0, true);
  if (n > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new VirqError(VhostUserErrorCode.MemoryTable, `memory table has ${n} regions; at most ${VHOST_MEMORY_BASELINE_NREGIONS} fit in one SET_MEM_TABLE (use ADD_MEM_REG with CONFIGURE_MEM_SLOTS for more)`, { errno: 'EINVAL', details: { nregions: n } });
  }
  const need = MEMORY_TABLE_HDR_SIZE + n * MEMORY_REGION_SIZE;
  if (p.length < need || p.length > MEMORY_TABLE_HDR_SIZE + VHOST_MEMORY_BASELINE_NREGIONS * MEMORY_REGION_SIZE) {
    throw new VirqError(VhostUserErrorCode.BadSize, `memory table with ${n} regions needs ${need} bytes (at most ${MEMORY_TABLE_HDR_SIZE + VHOST_MEMORY_BASELINE_NREGIONS * MEMORY_REGION_SIZE}), got ${p.length}`, { errno: 'EINVAL', details: { nregions: n, got: p.length } });
  }
  const out: VhostUserMemoryRegion[] = [];
  for (let i = 0; i < n; i++) out.push(getRegion(d, MEMORY_TABLE_HDR_SIZE + i * MEMORY_REGION_SIZE));
  return out;
}

/** ADD_MEM_REG / REM_MEM_REG payload: padding u64 + one region. */
export function encodeSingleRegion(r: VhostUserMemoryRegion): Uint8Array {
  const out = new Uint8Array(SINGLE_REGION_SIZE);
  putRegion(dv(out), 8, r);
  return out;
}
export function decodeSingleRegion(p: Uint8Array): VhostUserMemoryRegion {
  return getRegion(expectSize('single memory region', p, SINGLE_REGION_SIZE), 8);
}

export function encodeLog(l: VhostUserLog): Uint8Array {
  const out = new Uint8Array(LOG_SIZE);
  const d = dv(out);
  setU64n(d, 0, l.mmapSize);
  setU64n(d, 8, l.mmapOffset);
  return out;
}
export function decodeLog(p: Uint8Array): VhostUserLog {
  const d = expectSize('log', p, LOG_SIZE);
  return { mmapSize: getU64n(d, 0), mmapOffset: getU64n(d, 8) };
}

export function encodeIotlb(m: VhostIotlbMsg): Uint8Array {
  const out = new Uint8Array(IOTLB_SIZE);
  const d = dv(out);
  setU64n(d, 0, m.iova);
  setU64n(d, 8, m.size);
  setU64n(d, 16, m.uaddr);
  d.setUint8(24, m.perm);
  d.setUint8(25, m.type);
  return out;
}
export function decodeIotlb(p: Uint8Array): VhostIotlbMsg {
  const d = expectSize('IOTLB', p, IOTLB_SIZE);
  return { iova: getU64n(d, 0), size: getU64n(d, 8), uaddr: getU64n(d, 16), perm: d.getUint8(24), type: d.getUint8(25) };
}

export function encodeConfig(c: VhostUserConfig): Uint8Array {
  const out = new Uint8Array(CONFIG_HDR_SIZE + c.data.length);
  const d = dv(out);
  d.setUint32(0, c.offset >>> 0, true);
  d.setUint32(4, c.data.length, true);
  d.setUint32(8, c.flags >>> 0, true);
  out.set(c.data, CONFIG_HDR_SIZE);
  return out;
}
export function decodeConfig(p: Uint8Array): VhostUserConfig {
  if (p.length < CONFIG_HDR_SIZE) {
    throw new VirqError(VhostUserErrorCode.BadSize, `config payload needs at least ${CONFIG_HDR_SIZE} bytes, got ${p.length}`, { errno: 'EINVAL' });
  }
  const d = dv(p);
  const size = d.getUint32(4, true);
  if (size > VHOST_USER_MAX_CONFIG_SIZE) {
    throw new VirqError(VhostUserErrorCode.BadSize, `config size ${size} exceeds VHOST_USER_MAX_CONFIG_SIZE (${VHOST_USER_MAX_CONFIG_SIZE})`, { errno: 'EINVAL', details: { size } });
  }
  if (p.length !== CONFIG_HDR_SIZE + size) {
    throw new VirqError(VhostUserErrorCode.BadSize, `config payload of ${size} bytes needs ${CONFIG_HDR_SIZE + size} bytes in all, got ${p.length}`, { errno: 'EINVAL', details: { size, got: p.length } });
  }
  return { offset: d.getUint32(0, true), size, flags: d.getUint32(8, true), data: p.subarray(CONFIG_HDR_SIZE) };
}

export function encodeInflight(f: VhostUserInflight): Uint8Array {
  const out = new Uint8Array(INFLIGHT_SIZE);
  const d = dv(out);
  setU64n(d, 0, f.mmapSize);
  setU64n(d, 8, f.mmapOffset);
  d.setUint16(16, f.numQueues, true);
  d.setUint16(18, f.queueSize, true);
  return out;
}
export function decodeInflight(p: Uint8Array): VhostUserInflight {
  const d = expectSize('inflight', p, INFLIGHT_SIZE);
  return { mmapSize: getU64n(d, 0), mmapOffset: getU64n(d, 8), numQueues: d.getUint16(16, true), queueSize: d.getUint16(18, true) };
}

export function encodeDeviceStateParams(s: VhostUserDeviceStateParams): Uint8Array {
  const out = new Uint8Array(DEVICE_STATE_PARAMS_SIZE);
  const d = dv(out);
  d.setUint32(0, s.direction >>> 0, true);
  d.setUint32(4, s.phase >>> 0, true);
  return out;
}
export function decodeDeviceStateParams(p: Uint8Array): VhostUserDeviceStateParams {
  const d = expectSize('device-state transfer parameters', p, DEVICE_STATE_PARAMS_SIZE);
  return { direction: d.getUint32(0, true), phase: d.getUint32(4, true) };
}
