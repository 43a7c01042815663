import { VirqError } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import type { VhostUserMessage } from './message.js';
import {
  DEVICE_STATE_PARAMS_SIZE,
  decodeConfig,
  decodeDeviceStateParams,
  decodeInflight,
  decodeIotlb,
  decodeLog,
  decodeMemoryTable,
  decodeSingleRegion,
  decodeU64,
  decodeVringAddr,
  decodeVringState,
  type VhostIotlbMsg,
  type VhostUserConfig,
  type VhostUserDeviceStateParams,
  type VhostUserInflight,
  type VhostUserLog,
  type VhostUserMemoryRegion,
  type VringAddr,
} from './payload.js';
import {
  VHOST_USER_VRING_IDX_MASK,
  VHOST_USER_VRING_NOFD_MASK,
  VhostUserProtocolFeature,
  VhostUserRequest,
  requestName,
  type VhostUserRequestName,
} from './protocol.js';

/** What a request's payload is. */
export type PayloadKind = 'none' | 'u64' | 'vring-state' | 'vring-addr' | 'memory-table' | 'single-region' | 'log' | 'iotlb' | 'config' | 'inflight' | 'device-state' | 'vring-fd' | 'opaque';
/** What the back end answers: `none` = only a REPLY_ACK when NEED_REPLY was set. */
export type ReplyKind = 'none' | 'u64' | 'vring-state' | 'config' | 'inflight' | 'memory-table' | 'ack';
/** How many fds a request carries. */
export type FdRule = 'none' | 'one' | 'per-region' | 'vring-fd' | 'zero-or-one';

export interface RequestSpec {
  readonly payload: PayloadKind;
  readonly reply: ReplyKind;
  readonly fds: FdRule;
  /** Protocol feature the request needs, when it needs one. */
  readonly protocolFeature?: number;
}

const P = VhostUserProtocolFeature;
/**
 * The front-end → back-end message table (FACTS §10.3). `reply` lists the replies that are
 * always sent; SET_LOG_BASE (with LOG_SHMFD) and SET_MEM_TABLE (postcopy) reply only then.
 */
export const REQUEST_SPECS: Readonly<Record<VhostUserRequestName, RequestSpec>> = {
  GET_FEATURES: { payload: 'none', reply: 'u64', fds: 'none' },
  SET_FEATURES: { payload: 'u64', reply: 'none', fds: 'none' },
  SET_OWNER: { payload: 'none', reply: 'none', fds: 'none' },
  RESET_OWNER: { payload: 'none', reply: 'none', fds: 'none' },
  SET_MEM_TABLE: { payload: 'memory-table', reply: 'none', fds: 'per-region' },
  SET_LOG_BASE: { payload: 'log', reply: 'u64', fds: 'one', protocolFeature: P.LOG_SHMFD },
  SET_LOG_FD: { payload: 'none', reply: 'none', fds: 'one' },
  SET_VRING_NUM: { payload: 'vring-state', reply: 'none', fds: 'none' },
  SET_VRING_ADDR: { payload: 'vring-addr', reply: 'none', fds: 'none' },
  SET_VRING_BASE: { payload: 'vring-state', reply: 'none', fds: 'none' },
  GET_VRING_BASE: { payload: 'vring-state', reply: 'vring-state', fds: 'none' },
  SET_VRING_KICK: { payload: 'vring-fd', reply: 'none', fds: 'vring-fd' },
  SET_VRING_CALL: { payload: 'vring-fd', reply: 'none', fds: 'vring-fd' },
  SET_VRING_ERR: { payload: 'vring-fd', reply: 'none', fds: 'vring-fd' },
  GET_PROTOCOL_FEATURES: { payload: 'none', reply: 'u64', fds: 'none' },
  SET_PROTOCOL_FEATURES: { payload: 'u64', reply: 'none', fds: 'none' },
  GET_QUEUE_NUM: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.MQ },
  SET_VRING_ENABLE: { payload: 'vring-state', reply: 'none', fds: 'none' },
  SEND_RARP: { payload: 'u64', reply: 'none', fds: 'none', protocolFeature: P.RARP },
  NET_SET_MTU: { payload: 'u64', reply: 'none', fds: 'none', protocolFeature: P.NET_MTU },
  SET_BACKEND_REQ_FD: { payload: 'none', reply: 'none', fds: 'one', protocolFeature: P.BACKEND_REQ },
  IOTLB_MSG: { payload: 'iotlb', reply: 'ack', fds: 'none' },
  SET_VRING_ENDIAN: { payload: 'vring-state', reply: 'none', fds: 'none', protocolFeature: P.CROSS_ENDIAN },
  GET_CONFIG: { payload: 'config', reply: 'config', fds: 'none', protocolFeature: P.CONFIG },
  SET_CONFIG: { payload: 'config', reply: 'none', fds: 'none', protocolFeature: P.CONFIG },
  CREATE_CRYPTO_SESSION: { payload: 'opaque', reply: 'u64', fds: 'none', protocolFeature: P.CRYPTO_SESSION },
  CLOSE_CRYPTO_SESSION: { payload: 'u64', reply: 'none', fds: 'none', protocolFeature: P.CRYPTO_SESSION },
  POSTCOPY_ADVISE: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.PAGEFAULT },
  POSTCOPY_LISTEN: { payload: 'none', reply: 'none', fds: 'none', protocolFeature: P.PAGEFAULT },
  POSTCOPY_END: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.PAGEFAULT },
  GET_INFLIGHT_FD: { payload: 'inflight', reply: 'inflight', fds: 'none', protocolFeature: P.INFLIGHT_SHMFD },
  SET_INFLIGHT_FD: { payload: 'inflight', reply: 'none', fds: 'one', protocolFeature: P.INFLIGHT_SHMFD },
  GPU_SET_SOCKET: { payload: 'none', reply: 'none', fds: 'one' },
  RESET_DEVICE: { payload: 'none', reply: 'none', fds: 'none', protocolFeature: P.RESET_DEVICE },
  VRING_KICK: { payload: 'vring-state', reply: 'none', fds: 'none', protocolFeature: P.INBAND_NOTIFICATIONS },
  GET_MAX_MEM_SLOTS: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.CONFIGURE_MEM_SLOTS },
  ADD_MEM_REG: { payload: 'single-region', reply: 'none', fds: 'one', protocolFeature: P.CONFIGURE_MEM_SLOTS },
  REM_MEM_REG: { payload: 'single-region', reply: 'none', fds: 'zero-or-one', protocolFeature: P.CONFIGURE_MEM_SLOTS },
  SET_STATUS: { payload: 'u64', reply: 'none', fds: 'none', protocolFeature: P.STATUS },
  GET_STATUS: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.STATUS },
  GET_SHARED_OBJECT: { payload: 'opaque', reply: 'u64', fds: 'none', protocolFeature: P.SHARED_OBJECT },
  SET_DEVICE_STATE_FD: { payload: 'device-state', reply: 'u64', fds: 'one', protocolFeature: P.DEVICE_STATE },
  CHECK_DEVICE_STATE: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.DEVICE_STATE },
  GET_SHMEM_CONFIG: { payload: 'none', reply: 'u64', fds: 'none', protocolFeature: P.SHMEM },
};

const SPEC_BY_ID = new Map<number, [VhostUserRequestName, RequestSpec]>(
  (Object.keys(REQUEST_SPECS) as VhostUserRequestName[]).map((n) => [VhostUserRequest[n], [n, REQUEST_SPECS[n]]]),
);

export function requestSpec(id: number): [VhostUserRequestName, RequestSpec] | undefined {
  return SPEC_BY_ID.get(id);
}

/** A decoded, validated front-end request. */
export type FrontendRequest =
  | { type: 'GET_FEATURES' | 'SET_OWNER' | 'RESET_OWNER' | 'GET_PROTOCOL_FEATURES' | 'GET_QUEUE_NUM' | 'SET_LOG_FD' | 'SET_BACKEND_REQ_FD' | 'POSTCOPY_ADVISE' | 'POSTCOPY_LISTEN' | 'POSTCOPY_END' | 'GPU_SET_SOCKET' | 'RESET_DEVICE' | 'GET_MAX_MEM_SLOTS' | 'GET_STATUS' | 'CHECK_DEVICE_STATE' | 'GET_SHMEM_CONFIG' }
  | { type: 'SET_FEATURES' | 'SET_PROTOCOL_FEATURES' | 'SEND_RARP' | 'NET_SET_MTU' | 'SET_STATUS' | 'CLOSE_CRYPTO_SESSION'; value: bigint }
  | { type: 'SET_MEM_TABLE'; regions: VhostUserMemoryRegion[] }
  | { type: 'ADD_MEM_REG' | 'REM_MEM_REG'; region: VhostUserMemoryRegion }
  | { type: 'SET_LOG_BASE'; log: VhostUserLog }
  | { type: 'SET_VRING_NUM' | 'SET_VRING_BASE' | 'GET_VRING_BASE' | 'SET_VRING_ENABLE' | 'SET_VRING_ENDIAN' | 'VRING_KICK'; index: number; num: number }
  | { type: 'SET_VRING_ADDR'; addr: VringAddr }
  | { type: 'SET_VRING_KICK' | 'SET_VRING_CALL' | 'SET_VRING_ERR'; index: number; noFd: boolean }
  | { type: 'IOTLB_MSG'; iotlb: VhostIotlbMsg }
  | { type: 'GET_CONFIG' | 'SET_CONFIG'; config: VhostUserConfig }
  | { type: 'GET_INFLIGHT_FD' | 'SET_INFLIGHT_FD'; inflight: VhostUserInflight }
  | { type: 'SET_DEVICE_STATE_FD'; params: VhostUserDeviceStateParams }
  | { type: 'CREATE_CRYPTO_SESSION' | 'GET_SHARED_OBJECT'; bytes: Uint8Array };

/** How many fds `spec` needs for this payload, as [min, max]. */
export function expectedFds(spec: RequestSpec, req: FrontendRequest): [number, number] {
  switch (spec.fds) {
    case 'none':
      return [0, 0];
    case 'one':
      return [1, 1];
    case 'zero-or-one':
      return [0, 1];
    case 'per-region': {
      const n = req.type === 'SET_MEM_TABLE' ? req.regions.length : 0;
      return [n, n];
    }
    case 'vring-fd': {
      const nofd = 'noFd' in req && req.noFd;
      return nofd ? [0, 0] : [1, 1];
    }
  }
}

/**
 * Decodes and validates a front-end message against the table: known request, exact payload
 * size for its type, the right number of fds (DPDK's `validate_msg_fds`). Throws a typed
 * VirqError; the caller closes every fd of a rejected message so none leaks.
 */
export function decodeFrontendRequest<F>(msg: VhostUserMessage<F>): FrontendRequest {
  const entry = requestSpec(msg.request);
  if (entry === undefined) {
    throw new VirqError(VhostUserErrorCode.UnknownRequest, `unknown vhost-user request ${msg.request}; valid front-end requests are 1..44`, { errno: 'EINVAL', details: { request: msg.request } });
  }
  const [name, spec] = entry;
  const what = `VHOST_USER_${name}`;
  const p = msg.payload;
  let req: FrontendRequest;
  try {
    req = decodePayload(name, spec, p);
  } catch (e) {
    if (e instanceof VirqError) throw new VirqError(e.code, `${what}: ${e.message}`, { errno: e.errno, details: { request: msg.request, ...e.details } });
    throw e;
  }
  const [min, max] = expectedFds(spec, req);
  if (msg.fds.length < min || msg.fds.length > max) {
    throw new VirqError(VhostUserErrorCode.FdCount, `${what} must carry ${min === max ? min : `${min}..${max}`} file descriptor(s), got ${msg.fds.length}`, { errno: 'EINVAL', details: { request: msg.request, fds: msg.fds.length, min, max } });
  }
  return req;
}

function noPayload(name: string, p: Uint8Array): void {
  if (p.length !== 0) {
    throw new VirqError(VhostUserErrorCode.BadSize, `${name} carries no payload, got ${p.length} bytes`, { errno: 'EINVAL', details: { got: p.length } });
  }
}

function decodePayload(name: VhostUserRequestName, spec: RequestSpec, p: Uint8Array): FrontendRequest {
  switch (spec.payload) {
    case 'none':
      noPayload(name, p);
      return { type: name } as FrontendRequest;
    case 'u64':
      return { type: name, value: decodeU64(p) } as FrontendRequest;
    case 'vring-state': {
      const s = decodeVringState(p);
      return { type: name, index: s.index, num: s.num } as FrontendRequest;
    }
    case 'vring-addr':
      return { type: 'SET_VRING_ADDR', addr: decodeVringAddr(p) };
    case 'memory-table':
      return { type: 'SET_MEM_TABLE', regions: decodeMemoryTable(p) };
    case 'single-region':
      return { type: name, region: decodeSingleRegion(p) } as FrontendRequest;
    case 'log':
      return { type: 'SET_LOG_BASE', log: decodeLog(p) };
    case 'iotlb':
      return { type: 'IOTLB_MSG', iotlb: decodeIotlb(p) };
    case 'config':
      return { type: name, config: decodeConfig(p) } as FrontendRequest;
    case 'inflight':
      return { type: name, inflight: decodeInflight(p) } as FrontendRequest;
    case 'device-state':
      if (p.length !== DEVICE_STATE_PARAMS_SIZE) decodeDeviceStateParams(p);
      return { type: 'SET_DEVICE_STATE_FD', params: decodeDeviceStateParams(p) };
    case 'vring-fd': {
      const v = decodeU64(p, 'vring fd');
      if (v >> 9n !== 0n) {
        throw new VirqError(VhostUserErrorCode.BadSize, `vring fd payload 0x${v.toString(16)} sets bits above 8 (bits 7:0 = ring index, bit 8 = no fd)`, { errno: 'EINVAL' });
      }
      const n = Number(v);
      return { type: name, index: n & VHOST_USER_VRING_IDX_MASK, noFd: (n & VHOST_USER_VRING_NOFD_MASK) !== 0 } as FrontendRequest;
    }
    case 'opaque':
      return { type: name, bytes: p } as FrontendRequest;
  }
}

/** The request's display name (`VHOST_USER_SET_VRING_CALL`). */
export { requestName };
