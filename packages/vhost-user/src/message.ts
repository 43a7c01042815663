import { VirqError } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import { VHOST_USER_HDR_SIZE, VhostUserFlag, requestName } from './protocol.js';

/**
 * One vhost-user message as it travels: the 12-byte header's fields, the payload bytes and the
 * file descriptors that came with it (SCM_RIGHTS). `F` is whatever stands for an fd on the
 * transport: a host fd number on a Unix socket, an object in the in-process transport.
 */
export interface VhostUserMessage<F = unknown> {
  request: number;
  flags: number;
  payload: Uint8Array;
  fds: F[];
}

/** The header fields. */
export interface VhostUserHeader {
  request: number;
  flags: number;
  size: number;
}

/** Largest payload accepted: QEMU's payload union is bounded by the 8-region memory table, the
 *  config space message (12 + 256) and the crypto session; 4 KiB covers every real message. */
export const VHOST_USER_MAX_PAYLOAD = 4096;

/** Decodes and checks a header (version 1, no reserved flag bits, size within bounds). */
export function decodeHeader(bytes: Uint8Array, offset = 0): VhostUserHeader {
  if (bytes.length - offset < VHOST_USER_HDR_SIZE) {
    throw new VirqError(VhostUserErrorCode.Truncated, `vhost-user header needs ${VHOST_USER_HDR_SIZE} bytes, got ${bytes.length - offset}`, { errno: 'EPROTO', details: { got: bytes.length - offset } });
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, VHOST_USER_HDR_SIZE);
  const request = dv.getUint32(0, true);
  const flags = dv.getUint32(4, true);
  const size = dv.getUint32(8, true);
  if ((flags & VhostUserFlag.VERSION_MASK) !== VhostUserFlag.VERSION) {
    throw new VirqError(VhostUserErrorCode.BadVersion, `${requestName(request)}: flags 0x${flags.toString(16)} carry protocol version ${flags & 3}; only version 1 exists (flags bits 1:0 = 1)`, { errno: 'EPROTO', details: { request, flags } });
  }
  if ((flags & ~0xf) !== 0) {
    throw new VirqError(VhostUserErrorCode.BadVersion, `${requestName(request)}: flags 0x${flags.toString(16)} set reserved bits (only version, REPLY 0x4 and NEED_REPLY 0x8 are defined)`, { errno: 'EPROTO', details: { request, flags } });
  }
  if (size > VHOST_USER_MAX_PAYLOAD) {
    throw new VirqError(VhostUserErrorCode.TooLarge, `${requestName(request)}: payload size ${size} exceeds the ${VHOST_USER_MAX_PAYLOAD}-byte maximum`, { errno: 'EMSGSIZE', details: { request, size } });
  }
  return { request, flags, size };
}

/** Header + payload as one byte string (what one sendmsg carries). */
export function encodeMessage(request: number, flags: number, payload: Uint8Array = EMPTY): Uint8Array {
  const out = new Uint8Array(VHOST_USER_HDR_SIZE + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, request >>> 0, true);
  dv.setUint32(4, flags >>> 0, true);
  dv.setUint32(8, payload.length, true);
  out.set(payload, VHOST_USER_HDR_SIZE);
  return out;
}

/** Splits a complete byte string (header + payload) into a message; the size must match exactly. */
export function decodeMessage<F>(bytes: Uint8Array, fds: F[] = []): VhostUserMessage<F> {
  const h = decodeHeader(bytes);
  if (bytes.length - VHOST_USER_HDR_SIZE !== h.size) {
    throw new VirqError(VhostUserErrorCode.Truncated, `${requestName(h.request)}: header says ${h.size} payload bytes, ${bytes.length - VHOST_USER_HDR_SIZE} arrived`, { errno: 'EPROTO', details: { request: h.request, size: h.size } });
  }
  return { request: h.request, flags: h.flags, payload: bytes.subarray(VHOST_USER_HDR_SIZE), fds };
}

export const EMPTY = new Uint8Array(0);
