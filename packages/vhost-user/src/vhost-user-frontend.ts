import { VirqError } from '@virq/core';
import type { VhostUserChannel } from './channel.js';
import { VhostUserErrorCode } from './errors.js';
import { EMPTY, type VhostUserMessage } from './message.js';
import { decodeU64, decodeVringState, encodeMemoryTable, encodeU64, encodeVringAddr, encodeVringState, type VhostUserMemoryRegion } from './payload.js';
import { VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_VRING_NOFD_MASK, VhostUserFlag, VhostUserProtocolFeature, VhostUserRequest, VirtioDeviceStatus, bit, requestName } from './protocol.js';

/** A ring as the front end starts it (QEMU's vhost_virtqueue_start). */
export interface FrontendVringConfig<F> {
  num: number;
  /** last_avail_idx to restore (SET_VRING_BASE). */
  base: number;
  /** Front-end user addresses of the three parts. */
  desc: number;
  avail: number;
  used: number;
  /** Host notifier (the ioeventfd); null sends "no fd" (poll). */
  kick: F | null;
  /** Guest notifier (irqfd eventfd); null = no MSI-X vector ⇒ SET_VRING_CALL with no fd (F14). */
  call: F | null;
}

export interface FrontendStartConfig<F> {
  /** Guest-acked virtio features (bit 30 is added when negotiated). */
  features: bigint;
  regions: { region: VhostUserMemoryRegion; fd: F }[];
  rings: FrontendVringConfig<F>[];
}

export interface VhostUserFrontendOptions {
  /** Protocol features the front end implements (QEMU 7.2: 0x1ebff-ish). */
  protocolFeatures: bigint;
}

/** QEMU 7.2's VHOST_USER_PROTOCOL_FEATURE_MASK minus postcopy/inflight it does not use for net. */
export const QEMU_PROTOCOL_FEATURES = [
  VhostUserProtocolFeature.MQ,
  VhostUserProtocolFeature.LOG_SHMFD,
  VhostUserProtocolFeature.RARP,
  VhostUserProtocolFeature.REPLY_ACK,
  VhostUserProtocolFeature.NET_MTU,
  VhostUserProtocolFeature.BACKEND_REQ,
  VhostUserProtocolFeature.CROSS_ENDIAN,
  VhostUserProtocolFeature.CRYPTO_SESSION,
  VhostUserProtocolFeature.CONFIG,
  VhostUserProtocolFeature.BACKEND_SEND_FD,
  VhostUserProtocolFeature.HOST_NOTIFIER,
  VhostUserProtocolFeature.RESET_DEVICE,
  VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS,
  VhostUserProtocolFeature.STATUS,
].reduce((m, b) => m | bit(b), 0n);

/**
 * The front end (QEMU's hw/virtio/vhost-user.c driven by vhost.c / vhost_net.c): sends the
 * messages in the order QEMU 7.2 sends them for a virtio-net device
 * (../shared/realvm/qemu-vhost-user-sequence.txt) and checks the replies: reply flags exactly
 * VERSION|REPLY, same request, a u64 ack of 0 for NEED_REPLY messages with REPLY_ACK.
 */
export class VhostUserFrontend<F> {
  backendFeatures = 0n;
  protocolFeatures = 0n;
  queueNum = 1;
  maxMemSlots = 0;

  constructor(
    readonly channel: VhostUserChannel<F>,
    readonly options: VhostUserFrontendOptions = { protocolFeatures: QEMU_PROTOCOL_FEATURES },
  ) {}

  private has(b: number): boolean {
    return (this.protocolFeatures & bit(b)) !== 0n;
  }

  /** Sends one message; `needReply` asks for a REPLY_ACK when it is negotiated. */
  send(request: number, payload: Uint8Array = EMPTY, fds: F[] = [], needReply = false): VhostUserMessage<F> | undefined {
    const ack = needReply && this.has(VhostUserProtocolFeature.REPLY_ACK);
    const flags = VhostUserFlag.VERSION | (ack ? VhostUserFlag.NEED_REPLY : 0);
    const reply = this.channel.request({ request, flags, payload, fds });
    if (ack) {
      const v = decodeU64(this.checkReply(request, reply).payload, 'REPLY_ACK');
      if (v !== 0n) throw new VirqError(VhostUserErrorCode.BadReply, `${requestName(request)} was refused by the back end (REPLY_ACK ${v})`, { errno: 'EIO' });
    }
    return reply;
  }

  /** Sends a request that always has a reply and returns it checked. */
  call(request: number, payload: Uint8Array = EMPTY): VhostUserMessage<F> {
    return this.checkReply(request, this.channel.request({ request, flags: VhostUserFlag.VERSION, payload, fds: [] }));
  }

  private checkReply(request: number, reply: VhostUserMessage<F> | undefined): VhostUserMessage<F> {
    if (reply === undefined) throw new VirqError(VhostUserErrorCode.BadReply, `${requestName(request)}: no reply from the back end`, { errno: 'EIO' });
    if (reply.request !== request || reply.flags !== (VhostUserFlag.VERSION | VhostUserFlag.REPLY)) {
      throw new VirqError(VhostUserErrorCode.BadReply, `${requestName(request)}: reply has request ${reply.request} flags 0x${reply.flags.toString(16)} (expected the same request with flags 0x5)`, { errno: 'EPROTO' });
    }
    return reply;
  }

  /** vhost_user_backend_init + vhost_dev_init: negotiation, owner, masked call notifiers. */
  init(nvqs: number, maskedCalls: F[], errFds: F[] = [], backendReqFd?: F): void {
    const R = VhostUserRequest;
    this.backendFeatures = decodeU64(this.call(R.GET_FEATURES).payload);
    if ((this.backendFeatures & bit(VHOST_USER_F_PROTOCOL_FEATURES)) !== 0n) {
      const offered = decodeU64(this.call(R.GET_PROTOCOL_FEATURES).payload);
      this.protocolFeatures = offered & this.options.protocolFeatures;
      this.send(R.SET_PROTOCOL_FEATURES, encodeU64(this.protocolFeatures));
      if (this.has(VhostUserProtocolFeature.MQ)) this.queueNum = Number(decodeU64(this.call(R.GET_QUEUE_NUM).payload));
      if (this.has(VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS)) this.maxMemSlots = Number(decodeU64(this.call(R.GET_MAX_MEM_SLOTS).payload));
      if (this.has(VhostUserProtocolFeature.BACKEND_REQ) && backendReqFd !== undefined) this.send(R.SET_BACKEND_REQ_FD, EMPTY, [backendReqFd], true);
    }
    this.send(R.SET_OWNER);
    this.backendFeatures = decodeU64(this.call(R.GET_FEATURES).payload);
    for (let i = 0; i < nvqs; i++) {
      this.setVringFile(R.SET_VRING_CALL, i, maskedCalls[i] ?? null);
      if (errFds[i] !== undefined) this.setVringFile(R.SET_VRING_ERR, i, errFds[i]!);
    }
  }

  /** vhost_set_vring_enable for every ring (virtio-net's peer_attach on each queue-pair reset). */
  setVringEnable(nvqs: number, enable: boolean): void {
    if ((this.backendFeatures & bit(VHOST_USER_F_PROTOCOL_FEATURES)) === 0n) return;
    for (let i = 0; i < nvqs; i++) this.send(VhostUserRequest.SET_VRING_ENABLE, encodeVringState({ index: i, num: enable ? 1 : 0 }));
  }

  private setVringFile(request: number, index: number, fd: F | null): void {
    const v = fd === null ? index | VHOST_USER_VRING_NOFD_MASK : index;
    this.send(request, encodeU64(v), fd === null ? [] : [fd]);
  }

  /** vhost_dev_start: features, status, memory table, then each ring. */
  start(cfg: FrontendStartConfig<F>): void {
    const R = VhostUserRequest;
    const protoBit = (this.backendFeatures & bit(VHOST_USER_F_PROTOCOL_FEATURES)) !== 0n ? bit(VHOST_USER_F_PROTOCOL_FEATURES) : 0n;
    this.send(R.SET_FEATURES, encodeU64(cfg.features | protoBit));
    const status = this.has(VhostUserProtocolFeature.STATUS);
    if (status) this.setStatusOr(VirtioDeviceStatus.FEATURES_OK);
    this.send(R.SET_MEM_TABLE, encodeMemoryTable(cfg.regions.map((r) => r.region)), cfg.regions.map((r) => r.fd), true);
    cfg.rings.forEach((r, i) => {
      this.send(R.SET_VRING_NUM, encodeVringState({ index: i, num: r.num }));
      this.send(R.SET_VRING_BASE, encodeVringState({ index: i, num: r.base }));
      this.send(R.SET_VRING_ADDR, encodeVringAddr({ index: i, flags: 0, desc: r.desc, used: r.used, avail: r.avail, log: 0 }));
      this.setVringFile(R.SET_VRING_KICK, i, r.kick);
      this.setVringFile(R.SET_VRING_CALL, i, r.call);
    });
    if (status) this.setStatusOr(VirtioDeviceStatus.ACKNOWLEDGE | VirtioDeviceStatus.DRIVER | VirtioDeviceStatus.FEATURES_OK | VirtioDeviceStatus.DRIVER_OK);
  }

  /** vhost_user_add_status: GET_STATUS, then SET_STATUS with the bits or'ed in (QEMU 7.2). */
  private setStatusOr(bits: number): void {
    const cur = Number(decodeU64(this.call(VhostUserRequest.GET_STATUS).payload));
    this.send(VhostUserRequest.SET_STATUS, encodeU64(cur | bits), [], true);
  }

  /** vhost_dev_stop: status 0, then GET_VRING_BASE per ring (stops it). Returns the bases. */
  stop(nvqs: number): number[] {
    if (this.has(VhostUserProtocolFeature.STATUS)) this.send(VhostUserRequest.SET_STATUS, encodeU64(0), [], true);
    const bases: number[] = [];
    for (let i = 0; i < nvqs; i++) bases.push(decodeVringState(this.call(VhostUserRequest.GET_VRING_BASE, encodeVringState({ index: i, num: 0 })).payload).num);
    return bases;
  }
}
