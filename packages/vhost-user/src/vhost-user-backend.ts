import { VirqError, type TraceChannel, type TraceEvent, type TraceBus } from '@virq/core';
import { VhostUserErrorCode } from './errors.js';
import type { VhostUserHost } from './host.js';
import { encodeMessage, type VhostUserMessage } from './message.js';
import { ADDRESS_LIMIT, VhostMemoryTable } from './memory-table.js';
import { encodeConfig, encodeInflight, encodeU64, encodeVringState, type VhostIotlbMsg, type VhostUserMemoryRegion } from './payload.js';
import {
  VHOST_F_LOG_ALL,
  VHOST_MEMORY_BASELINE_NREGIONS,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VIRTQUEUE_MAX_SIZE,
  VhostUserFlag,
  VhostUserProtocolFeature,
  VhostUserRequest,
  VirtioDeviceStatus,
  VirtioFeature,
  bit,
  requestName,
} from './protocol.js';
import { decodeFrontendRequest, requestSpec, type FrontendRequest } from './request.js';
import { VhostUserVring, splitRingSizes } from './vring.js';

/** What the device behind the protocol (vhost-user-net, a test device) supplies and hears. */
export interface VhostUserDeviceOps {
  /** Virtio features offered (bit 30 is added when `protocolFeatures` is non-zero). */
  readonly features: bigint;
  /** Protocol features offered (0n: the back end does not speak protocol features). */
  readonly protocolFeatures: bigint;
  /** Most rings the device has (2 × queue pairs for net). */
  readonly maxRings: number;
  /** GET_QUEUE_NUM's answer (DPDK: the number of queue pairs). */
  readonly queueNum: number;
  /** Device config space for GET_CONFIG (CONFIG protocol feature). */
  readonly config?: Uint8Array;
  /** `virtio_is_ready` became true: start the data path (DPDK's new_device). */
  newDevice?(): void;
  /** The device stopped (GET_VRING_BASE, reset, disconnect): DPDK's destroy_device. */
  destroyDevice?(): void;
  /** SET_VRING_ENABLE changed a ring while running (vring_state_changed). */
  vringStateChanged?(index: number, enabled: boolean): void;
  /** A kick arrived on a started ring. */
  kick?(index: number): void;
}

/** Result of handling one message. */
export interface VhostUserHandleResult<F> {
  /** Reply to send (with REPLY set), if any. */
  reply: VhostUserMessage<F> | undefined;
  /** The rejection, when the message was rejected. */
  error: VirqError | undefined;
  /** The connection must close (a reply body was owed but the request was rejected). */
  close: boolean;
}

export type VhostUserBackendEvent = TraceEvent<'vhost-user.msg' | 'vhost-user.rejected' | 'vhost-user.ready' | 'vhost-user.stopped' | 'vhost-user.kick' | 'vhost-user.call'>;

export interface VhostUserBackendOptions {
  /** Trace bus (a SimContext's `trace`) to publish on; optional in real mode. */
  trace?: TraceBus;
  /** Most entries in the memory table (GET_MAX_MEM_SLOTS). Default 8 (DPDK). */
  maxMemSlots?: number;
}

/** IOTLB entries cached from IOTLB_MSG updates. */
interface IotlbEntry {
  iova: number;
  size: number;
  uaddr: number;
  perm: number;
}

const HANDLER_NAMES: Partial<Record<string, string>> = {
  SET_BACKEND_REQ_FD: 'vhost_user_set_req_fd',
  IOTLB_MSG: 'vhost_user_iotlb_msg',
  POSTCOPY_ADVISE: 'vhost_user_set_postcopy_advise',
  POSTCOPY_LISTEN: 'vhost_user_set_postcopy_listen',
  POSTCOPY_END: 'vhost_user_postcopy_end',
};

/**
 * The vhost-user back end's protocol state machine (DPDK lib/vhost/vhost_user.c's
 * `vhost_user_msg_handler` and its per-message handlers; rust-vmm's VhostUserSlaveReqHandler):
 * owner, features and protocol features, memory table with address translation, vrings
 * (num/base/addr/kick/call/err/enable, GET_VRING_BASE stopping a ring), readiness
 * (`virtio_is_ready` → new_device), reset, multiqueue, config, status.
 *
 * `handle(msg)` validates and applies one message and returns the reply; it never throws for
 * peer input: a rejection is returned as a typed VirqError, and every fd of a rejected
 * message is closed (DPDK's close_msg_fds), so bad peers cannot leak fds.
 */
export class VhostUserBackend<F> {
  readonly vrings: VhostUserVring<F>[] = [];
  /** Rings referenced so far (DPDK's nr_vring: allocated on first reference). */
  nrVring = 0;
  owner = false;
  /** Acked virtio features (SET_FEATURES). */
  features = 0n;
  featuresSet = false;
  /** Acked protocol features (SET_PROTOCOL_FEATURES). */
  protocolFeatures = 0n;
  status = 0;
  mtu = 0;
  rarpMac: Uint8Array | undefined;
  mem: VhostMemoryTable | undefined;
  /** Regions described by SET_MEM_TABLE / ADD_MEM_REG, with their fds. */
  private memRegions: { region: VhostUserMemoryRegion; fd: F }[] = [];
  private backendReqFd: F | undefined;
  private logFd: F | undefined;
  private inflightFd: F | undefined;
  private readonly iotlb: IotlbEntry[] = [];
  /** new_device was called and destroy_device not since (DPDK's VIRTIO_DEV_RUNNING). */
  running = false;
  messages = 0;
  rejected = 0;
  lastError: VirqError | undefined;
  readonly maxMemSlots: number;
  private readonly trace: TraceChannel<VhostUserBackendEvent> | undefined;

  constructor(
    private readonly host: VhostUserHost<F>,
    readonly device: VhostUserDeviceOps,
    options: VhostUserBackendOptions = {},
  ) {
    if (!Number.isInteger(device.maxRings) || device.maxRings < 1 || device.maxRings > 256) {
      throw new VirqError(VhostUserErrorCode.Usage, `a vhost-user device has 1..256 rings (index is bits 7:0), got ${device.maxRings}`);
    }
    this.maxMemSlots = options.maxMemSlots ?? VHOST_MEMORY_BASELINE_NREGIONS;
    this.trace = options.trace?.channel<VhostUserBackendEvent>('vhost-user');
  }

  /** Virtio features offered in GET_FEATURES. */
  get offeredFeatures(): bigint {
    return this.device.protocolFeatures !== 0n ? this.device.features | bit(VHOST_USER_F_PROTOCOL_FEATURES) : this.device.features;
  }

  hasFeature(b: number): boolean {
    return (this.features & bit(b)) !== 0n;
  }
  hasProtocolFeature(b: number): boolean {
    return (this.protocolFeatures & bit(b)) !== 0n;
  }

  /** The ring (allocating its state on first use, like vhost_user_check_and_alloc_queue_pair). */
  vring(index: number): VhostUserVring<F> {
    if (!Number.isInteger(index) || index < 0 || index >= this.device.maxRings) {
      throw new VirqError(VhostUserErrorCode.RingIndex, `vring index ${index} is out of range; this device has ${this.device.maxRings} rings (0..${this.device.maxRings - 1})`, { errno: 'EINVAL', details: { index, maxRings: this.device.maxRings } });
    }
    while (this.vrings.length <= index) this.vrings.push(new VhostUserVring<F>(this.vrings.length));
    if (index + 1 > this.nrVring) this.nrVring = index + 1;
    return this.vrings[index]!;
  }

  /** Handles one message from the front end. */
  handle(msg: VhostUserMessage<F>): VhostUserHandleResult<F> {
    this.messages++;
    const entry = requestSpec(msg.request);
    const needReply = (msg.flags & VhostUserFlag.NEED_REPLY) !== 0;
    let req: FrontendRequest | undefined;
    try {
      if ((msg.flags & VhostUserFlag.REPLY) !== 0) {
        throw new VirqError(VhostUserErrorCode.BadVersion, `${requestName(msg.request)} from the front end has the REPLY flag set; only replies carry it`, { errno: 'EPROTO' });
      }
      req = decodeFrontendRequest(msg);
      if (this.trace?.on) {
        this.trace.emit('vhost-user.msg', HANDLER_NAMES[req.type] ?? `vhost_user_${req.type.toLowerCase()}`, 'vhost_user_msg_handler', { request: requestName(msg.request), fds: msg.fds.length });
      }
      const spec = entry![1];
      if (spec.protocolFeature !== undefined && !this.hasProtocolFeature(spec.protocolFeature)) {
        throw new VirqError(VhostUserErrorCode.NotNegotiated, `${requestName(msg.request)} needs protocol feature ${protocolFeatureName(spec.protocolFeature)} (bit ${spec.protocolFeature}), which was not negotiated`, { errno: 'EOPNOTSUPP', details: { request: msg.request } });
      }
      const body = this.apply(req, msg.fds);
      let reply: VhostUserMessage<F> | undefined;
      if (body !== undefined) reply = { request: msg.request, flags: VhostUserFlag.VERSION | VhostUserFlag.REPLY, payload: body.payload, fds: body.fds };
      else if (spec.reply === 'ack' || (needReply && this.hasProtocolFeature(VhostUserProtocolFeature.REPLY_ACK))) {
        reply = { request: msg.request, flags: VhostUserFlag.VERSION | VhostUserFlag.REPLY, payload: encodeU64(0n), fds: [] };
      }
      this.checkReady();
      return { reply, error: undefined, close: false };
    } catch (e) {
      const err = e instanceof VirqError ? e : new VirqError(VhostUserErrorCode.WrongState, `${requestName(msg.request)}: ${String(e)}`, { cause: e });
      for (const fd of msg.fds) this.host.close(fd);
      this.rejected++;
      this.lastError = err;
      if (this.trace?.on) this.trace.emit('vhost-user.rejected', 'vhost_user_msg_handler', 'vhost_user_read_cb', { request: requestName(msg.request), code: err.code });
      const spec = entry?.[1];
      const owesBody = spec !== undefined && spec.reply !== 'none' && spec.reply !== 'ack';
      if (!owesBody && (spec?.reply === 'ack' || (needReply && this.hasProtocolFeature(VhostUserProtocolFeature.REPLY_ACK)))) {
        return { reply: { request: msg.request, flags: VhostUserFlag.VERSION | VhostUserFlag.REPLY, payload: encodeU64(1n), fds: [] }, error: err, close: false };
      }
      return { reply: undefined, error: err, close: owesBody || spec === undefined };
    }
  }

  /** Encodes a handle() reply for a byte transport. */
  static encodeReply<F>(reply: VhostUserMessage<F>): Uint8Array {
    return encodeMessage(reply.request, reply.flags, reply.payload);
  }

  private requireOwner(what: string): void {
    if (!this.owner) {
      throw new VirqError(VhostUserErrorCode.WrongState, `${what} before VHOST_USER_SET_OWNER; the front end must take ownership first`, { errno: 'EPERM' });
    }
  }

  private requireStopped(v: VhostUserVring<F>, what: string): void {
    if (v.started && this.running) {
      throw new VirqError(VhostUserErrorCode.WrongState, `${what} on vring ${v.index} while it runs; stop it with GET_VRING_BASE first`, { errno: 'EBUSY', details: { index: v.index } });
    }
  }

  private apply(req: FrontendRequest, fds: F[]): { payload: Uint8Array; fds: F[] } | undefined {
    const T = req.type;
    switch (req.type) {
      case 'GET_FEATURES':
        return { payload: encodeU64(this.offeredFeatures), fds: [] };
      case 'SET_FEATURES': {
        this.requireOwner(T);
        const extra = req.value & ~(this.offeredFeatures | bit(VHOST_F_LOG_ALL));
        if (extra !== 0n || ((req.value & bit(VHOST_F_LOG_ALL)) !== 0n && (this.device.features & bit(VHOST_F_LOG_ALL)) === 0n)) {
          throw new VirqError(VhostUserErrorCode.BadFeatures, `SET_FEATURES 0x${req.value.toString(16)} acks features the back end did not offer (offered 0x${this.offeredFeatures.toString(16)})`, { errno: 'EINVAL', details: { features: req.value.toString(16) } });
        }
        if ((req.value & bit(VirtioFeature.F_RING_PACKED)) !== 0n) {
          throw new VirqError(VhostUserErrorCode.BadFeatures, 'SET_FEATURES acks VIRTIO_F_RING_PACKED; this back end serves split rings only', { errno: 'EINVAL' });
        }
        if (this.running && this.featuresSet && req.value !== this.features && (req.value ^ this.features) !== bit(VHOST_F_LOG_ALL)) this.stopDevice();
        this.features = req.value;
        this.featuresSet = true;
        for (const v of this.vrings) this.translate(v, false);
        if (!this.hasFeature(VHOST_USER_F_PROTOCOL_FEATURES)) for (let i = 0; i < this.device.maxRings; i++) this.vring(i).enabled = true;
        return undefined;
      }
      case 'SET_OWNER':
        // Repeated SET_OWNER on one connection is normal: QEMU's vhost-user-net inits one
        // vhost_dev per queue pair on the same chardev, each calling vhost_set_owner.
        this.owner = true;
        return undefined;
      case 'RESET_OWNER':
        this.resetDevice();
        return undefined;
      case 'RESET_DEVICE':
        this.resetDevice();
        return undefined;
      case 'SET_MEM_TABLE':
        this.requireOwner(T);
        this.setMemTable(req.regions, fds);
        return undefined;
      case 'ADD_MEM_REG': {
        this.requireOwner(T);
        if (this.memRegions.length >= this.maxMemSlots) {
          throw new VirqError(VhostUserErrorCode.MemoryTable, `ADD_MEM_REG: all ${this.maxMemSlots} memory slots are used (GET_MAX_MEM_SLOTS)`, { errno: 'ENOSPC' });
        }
        const next = [...this.memRegions, { region: req.region, fd: fds[0]! }];
        this.remap(next, []);
        return undefined;
      }
      case 'REM_MEM_REG': {
        this.requireOwner(T);
        const r = req.region;
        const i = this.memRegions.findIndex((m) => m.region.guestPhysAddr === r.guestPhysAddr && m.region.userspaceAddr === r.userspaceAddr && m.region.memorySize === r.memorySize);
        if (i < 0) {
          throw new VirqError(VhostUserErrorCode.MemoryTable, `REM_MEM_REG: no region with gpa 0x${r.guestPhysAddr.toString(16)}, uva 0x${r.userspaceAddr.toString(16)}, size 0x${r.memorySize.toString(16)}`, { errno: 'EINVAL' });
        }
        const gone = this.memRegions[i]!;
        const next = this.memRegions.filter((_, j) => j !== i);
        this.remap(next, [gone.fd]);
        for (const fd of fds) this.host.close(fd);
        return undefined;
      }
      case 'SET_LOG_BASE': {
        this.requireOwner(T);
        const { mmapSize, mmapOffset } = req.log;
        if (mmapSize === 0 || !(mmapOffset + mmapSize < ADDRESS_LIMIT)) {
          throw new VirqError(VhostUserErrorCode.Overflow, `SET_LOG_BASE: mmap_offset 0x${mmapOffset.toString(16)} + mmap_size 0x${mmapSize.toString(16)} is empty or overflows`, { errno: 'EINVAL' });
        }
        const m = this.host.mapMemory(fds[0]!, mmapOffset, mmapSize);
        m.unmap();
        if (this.logFd !== undefined) this.host.close(this.logFd);
        this.logFd = fds[0];
        return { payload: encodeU64(0n), fds: [] };
      }
      case 'SET_LOG_FD':
        this.requireOwner(T);
        throw new VirqError(VhostUserErrorCode.Unsupported, 'SET_LOG_FD: dirty logging (VHOST_F_LOG_ALL) is not offered by this back end', { errno: 'EOPNOTSUPP' });
      case 'SET_VRING_NUM': {
        this.requireOwner(T);
        const v = this.vring(req.index);
        this.requireStopped(v, T);
        const n = req.num;
        if (n === 0 || n > VIRTQUEUE_MAX_SIZE || (n & (n - 1)) !== 0) {
          throw new VirqError(VhostUserErrorCode.RingSize, `SET_VRING_NUM ${n} for vring ${req.index}: a split ring's size must be a power of two in 1..${VIRTQUEUE_MAX_SIZE}`, { errno: 'EINVAL', details: { index: req.index, num: n } });
        }
        v.size = n;
        this.translate(v, false);
        return undefined;
      }
      case 'SET_VRING_ADDR': {
        this.requireOwner(T);
        const a = req.addr;
        const v = this.vring(a.index);
        if ((a.flags & ~1) !== 0) {
          throw new VirqError(VhostUserErrorCode.BadSize, `SET_VRING_ADDR flags 0x${a.flags.toString(16)}: only bit 0 (VHOST_VRING_F_LOG) is defined`, { errno: 'EINVAL' });
        }
        if ((a.flags & 1) !== 0 && !this.hasFeature(VHOST_F_LOG_ALL)) {
          throw new VirqError(VhostUserErrorCode.NotNegotiated, 'SET_VRING_ADDR asks for used-ring logging (VHOST_VRING_F_LOG) but VHOST_F_LOG_ALL is not negotiated', { errno: 'EINVAL' });
        }
        const prev = v.addr;
        v.addr = a;
        try {
          this.translate(v, true);
        } catch (e) {
          v.addr = prev;
          this.translate(v, false);
          throw e;
        }
        return undefined;
      }
      case 'SET_VRING_BASE': {
        this.requireOwner(T);
        const v = this.vring(req.index);
        this.requireStopped(v, T);
        if (req.num > 0xffff) {
          throw new VirqError(VhostUserErrorCode.RingSize, `SET_VRING_BASE ${req.num} for vring ${req.index}: a split ring's avail index is 16 bits (packed-ring wrap counters are not negotiated)`, { errno: 'EINVAL' });
        }
        v.lastAvailIdx = req.num;
        v.lastUsedIdx = req.num;
        v.signalledUsedValid = false;
        return undefined;
      }
      case 'GET_VRING_BASE': {
        const v = this.vring(req.index);
        // Stops the ring (FACTS §10.5): DPDK destroys the running device first.
        if (this.running) this.stopDevice();
        v.started = false;
        if (v.stopKickWatch !== undefined) v.stopKickWatch();
        v.stopKickWatch = undefined;
        if (v.kickFd !== undefined && v.kickFd !== null) this.host.close(v.kickFd);
        v.kickFd = undefined;
        v.signalledUsedValid = false;
        if (this.trace?.on) this.trace.emit('vhost-user.stopped', 'vhost_user_get_vring_base', 'vhost_user_msg_handler', { index: v.index, lastAvailIdx: v.lastAvailIdx });
        return { payload: encodeVringState({ index: req.index, num: v.lastAvailIdx }), fds: [] };
      }
      case 'SET_VRING_KICK': {
        this.requireOwner(T);
        const v = this.vring(req.index);
        const idx = v.index;
        // Watch the new fd first: if it is not an eventfd the message is rejected with the
        // ring unchanged (and the handler's error path closes the fd exactly once).
        const stop = req.noFd ? undefined : this.host.watchKick(fds[0]!, () => this.onKick(idx));
        if (v.stopKickWatch !== undefined) v.stopKickWatch();
        if (v.kickFd !== undefined && v.kickFd !== null) this.host.close(v.kickFd);
        v.stopKickWatch = stop;
        v.kickFd = req.noFd ? null : fds[0]!;
        if (!this.hasFeature(VHOST_USER_F_PROTOCOL_FEATURES) && this.featuresSet) v.enabled = true;
        v.started = true;
        return undefined;
      }
      case 'SET_VRING_CALL': {
        this.requireOwner(T);
        const v = this.vring(req.index);
        const call = req.noFd ? undefined : this.host.notifier(fds[0]!);
        if (v.callFd !== undefined && v.callFd !== null) this.host.close(v.callFd);
        v.callFd = req.noFd ? null : fds[0]!;
        v.call = call;
        v.signalledUsedValid = false;
        return undefined;
      }
      case 'SET_VRING_ERR': {
        this.requireOwner(T);
        const v = this.vring(req.index);
        if (v.errFd !== undefined && v.errFd !== null) this.host.close(v.errFd);
        v.errFd = req.noFd ? null : fds[0]!;
        return undefined;
      }
      case 'GET_PROTOCOL_FEATURES':
        this.requireProtocolFeatures(T);
        return { payload: encodeU64(this.device.protocolFeatures), fds: [] };
      case 'SET_PROTOCOL_FEATURES': {
        this.requireProtocolFeatures(T);
        if ((req.value & ~this.device.protocolFeatures) !== 0n) {
          throw new VirqError(VhostUserErrorCode.BadFeatures, `SET_PROTOCOL_FEATURES 0x${req.value.toString(16)} acks protocol features the back end did not offer (offered 0x${this.device.protocolFeatures.toString(16)})`, { errno: 'EINVAL' });
        }
        this.protocolFeatures = req.value;
        return undefined;
      }
      case 'GET_QUEUE_NUM':
        return { payload: encodeU64(BigInt(this.device.queueNum)), fds: [] };
      case 'SET_VRING_ENABLE': {
        this.requireOwner(T);
        this.requireProtocolFeatures(T);
        const v = this.vring(req.index);
        if (req.num > 1) {
          throw new VirqError(VhostUserErrorCode.BadSize, `SET_VRING_ENABLE num ${req.num} for vring ${req.index}: must be 0 (disable) or 1 (enable)`, { errno: 'EINVAL' });
        }
        const en = req.num === 1;
        const changed = v.enabled !== en;
        v.enabled = en;
        if (changed && this.running) this.device.vringStateChanged?.(v.index, en);
        return undefined;
      }
      case 'SEND_RARP': {
        const mac = encodeU64(req.value).subarray(0, 6);
        this.rarpMac = mac.slice();
        return undefined;
      }
      case 'NET_SET_MTU': {
        if (req.value < 68n || req.value > 65535n) {
          throw new VirqError(VhostUserErrorCode.BadSize, `NET_SET_MTU ${req.value}: the MTU must be in 68..65535`, { errno: 'EINVAL' });
        }
        this.mtu = Number(req.value);
        return undefined;
      }
      case 'SET_BACKEND_REQ_FD':
        if (this.backendReqFd !== undefined) this.host.close(this.backendReqFd);
        this.backendReqFd = fds[0];
        return undefined;
      case 'IOTLB_MSG':
        this.iotlbMsg(req.iotlb);
        return undefined;
      case 'SET_VRING_ENDIAN':
        throw new VirqError(VhostUserErrorCode.Unsupported, 'SET_VRING_ENDIAN: this back end serves little-endian (virtio 1.0) rings only', { errno: 'EOPNOTSUPP' });
      case 'GET_CONFIG': {
        const c = req.config;
        const cfg = this.device.config ?? new Uint8Array(0);
        if (c.offset + c.size > cfg.length) {
          throw new VirqError(VhostUserErrorCode.BadSize, `GET_CONFIG [${c.offset}, +${c.size}) reaches past the ${cfg.length}-byte config space`, { errno: 'EINVAL' });
        }
        return { payload: encodeConfig({ offset: c.offset, size: c.size, flags: c.flags, data: cfg.subarray(c.offset, c.offset + c.size) }), fds: [] };
      }
      case 'SET_CONFIG':
        throw new VirqError(VhostUserErrorCode.Unsupported, 'SET_CONFIG: the config space of this device is read-only', { errno: 'EOPNOTSUPP' });
      case 'GET_INFLIGHT_FD': {
        const f = req.inflight;
        if (f.numQueues === 0 || f.numQueues > this.device.maxRings) {
          throw new VirqError(VhostUserErrorCode.RingIndex, `GET_INFLIGHT_FD num_queues ${f.numQueues}: must be 1..${this.device.maxRings}`, { errno: 'EINVAL' });
        }
        const q = f.queueSize;
        if (q === 0 || (q & (q - 1)) !== 0 || q > VIRTQUEUE_MAX_SIZE) {
          throw new VirqError(VhostUserErrorCode.RingSize, `GET_INFLIGHT_FD queue_size ${q}: must be a power of two in 1..${VIRTQUEUE_MAX_SIZE}`, { errno: 'EINVAL' });
        }
        // Split inflight area per queue: 48-byte header + 16 bytes per descriptor, 64-byte aligned
        // (DPDK get_pervq_shm_size_split); bounded by the checks above (CVE-2020-10726 class).
        const perQueue = Math.ceil((48 + 16 * q) / 64) * 64;
        const size = perQueue * f.numQueues;
        if (this.host.createSharedMemory === undefined) {
          throw new VirqError(VhostUserErrorCode.Unsupported, 'GET_INFLIGHT_FD: this host cannot create shared memory', { errno: 'EOPNOTSUPP' });
        }
        const shm = this.host.createSharedMemory(size);
        shm.region.unmap();
        if (this.inflightFd !== undefined) this.host.close(this.inflightFd);
        this.inflightFd = shm.fd;
        return { payload: encodeInflight({ mmapSize: size, mmapOffset: 0, numQueues: f.numQueues, queueSize: q }), fds: [shm.fd] };
      }
      case 'SET_INFLIGHT_FD': {
        const f = req.inflight;
        if (f.numQueues === 0 || f.numQueues > this.device.maxRings || f.mmapSize === 0 || !(f.mmapOffset + f.mmapSize < ADDRESS_LIMIT)) {
          throw new VirqError(VhostUserErrorCode.Overflow, `SET_INFLIGHT_FD: num_queues ${f.numQueues}, mmap_size 0x${f.mmapSize.toString(16)}, mmap_offset 0x${f.mmapOffset.toString(16)} are out of range`, { errno: 'EINVAL' });
        }
        this.host.mapMemory(fds[0]!, f.mmapOffset, f.mmapSize).unmap();
        if (this.inflightFd !== undefined) this.host.close(this.inflightFd);
        this.inflightFd = fds[0];
        return undefined;
      }
      case 'GET_MAX_MEM_SLOTS':
        return { payload: encodeU64(BigInt(this.maxMemSlots)), fds: [] };
      case 'SET_STATUS': {
        if (req.value > 0xffn) {
          throw new VirqError(VhostUserErrorCode.BadSize, `SET_STATUS 0x${req.value.toString(16)}: the virtio status is one byte`, { errno: 'EINVAL' });
        }
        this.status = Number(req.value);
        if (this.status === 0 && this.running) this.stopDevice();
        return undefined;
      }
      case 'GET_STATUS':
        return { payload: encodeU64(BigInt(this.status)), fds: [] };
      case 'GPU_SET_SOCKET':
        throw new VirqError(VhostUserErrorCode.Unsupported, 'GPU_SET_SOCKET: this is not a vhost-user-gpu back end', { errno: 'EOPNOTSUPP' });
      case 'VRING_KICK':
      case 'CREATE_CRYPTO_SESSION':
      case 'CLOSE_CRYPTO_SESSION':
      case 'POSTCOPY_ADVISE':
      case 'POSTCOPY_LISTEN':
      case 'POSTCOPY_END':
      case 'GET_SHARED_OBJECT':
      case 'SET_DEVICE_STATE_FD':
      case 'CHECK_DEVICE_STATE':
      case 'GET_SHMEM_CONFIG':
        throw new VirqError(VhostUserErrorCode.Unsupported, `VHOST_USER_${T} is not implemented by this back end; do not offer its protocol feature`, { errno: 'EOPNOTSUPP' });
    }
  }

  private requireProtocolFeatures(what: string): void {
    if (this.device.protocolFeatures === 0n) {
      throw new VirqError(VhostUserErrorCode.NotNegotiated, `${what} needs VHOST_USER_F_PROTOCOL_FEATURES (bit 30), which this back end does not offer`, { errno: 'EINVAL' });
    }
  }

  private setMemTable(regions: VhostUserMemoryRegion[], fds: F[]): void {
    if (regions.length > this.maxMemSlots) {
      throw new VirqError(VhostUserErrorCode.MemoryTable, `SET_MEM_TABLE with ${regions.length} regions exceeds the ${this.maxMemSlots} memory slots`, { errno: 'EINVAL' });
    }
    const old = this.memRegions.map((m) => m.fd);
    this.remap(regions.map((region, i) => ({ region, fd: fds[i]! })), old);
  }

  /** Maps a new table (all or nothing), then retires the old one and re-translates the rings. */
  private remap(next: { region: VhostUserMemoryRegion; fd: F }[], closeFds: F[]): void {
    const table = VhostMemoryTable.map(this.host, next.map((n) => n.region), next.map((n) => n.fd));
    if (this.running) this.stopDevice();
    this.mem?.unmapAll();
    for (const fd of closeFds) this.host.close(fd);
    this.mem = table;
    this.memRegions = next;
    for (const v of this.vrings) this.translate(v, false);
  }

  /** IOTLB update/invalidate (FACTS §10.1): sizes checked for overflow (CVE-2020-10722/10725 class). */
  private iotlbMsg(m: VhostIotlbMsg): void {
    if (!this.hasFeature(VirtioFeature.F_ACCESS_PLATFORM)) {
      throw new VirqError(VhostUserErrorCode.NotNegotiated, 'IOTLB_MSG needs VIRTIO_F_ACCESS_PLATFORM (an IOMMU), which was not negotiated', { errno: 'EINVAL' });
    }
    if (m.type === 2) {
      if (m.size === 0 || !(m.iova + m.size < ADDRESS_LIMIT) || !(m.uaddr + m.size < ADDRESS_LIMIT) || m.perm > 3) {
        throw new VirqError(VhostUserErrorCode.Overflow, `IOTLB update iova 0x${m.iova.toString(16)} size 0x${m.size.toString(16)} uaddr 0x${m.uaddr.toString(16)} perm ${m.perm}: empty, overflowing or bad permission`, { errno: 'EINVAL' });
      }
      if (this.mem === undefined || this.mem.uvaToGpa(m.uaddr, m.size) === undefined) {
        throw new VirqError(VhostUserErrorCode.Address, `IOTLB update maps iova 0x${m.iova.toString(16)} to uaddr [0x${m.uaddr.toString(16)}, +0x${m.size.toString(16)}) which is not inside one memory region`, { errno: 'EFAULT' });
      }
      this.iotlb.push({ iova: m.iova, size: m.size, uaddr: m.uaddr, perm: m.perm });
      if (this.iotlb.length > 2048) this.iotlb.shift();
    } else if (m.type === 3) {
      for (let i = this.iotlb.length - 1; i >= 0; i--) {
        const e = this.iotlb[i]!;
        if (e.iova < m.iova + m.size && m.iova < e.iova + e.size) this.iotlb.splice(i, 1);
      }
    } else {
      throw new VirqError(VhostUserErrorCode.BadSize, `IOTLB_MSG type ${m.type}: the front end sends only update (2) and invalidate (3)`, { errno: 'EINVAL' });
    }
    for (const v of this.vrings) this.translate(v, false);
  }

  /** Ring address (front-end user address or IOVA) → guest physical address of [a, a+len). */
  private ringToGpa(a: number, len: number): number | undefined {
    if (this.mem === undefined) return undefined;
    let uva = a;
    if (this.hasFeature(VirtioFeature.F_ACCESS_PLATFORM)) {
      const e = this.iotlb.find((x) => a >= x.iova && a + len <= x.iova + x.size);
      if (e === undefined) return undefined;
      uva = e.uaddr + (a - e.iova);
    }
    return this.mem.uvaToGpa(uva, len);
  }

  /**
   * translate_ring_addresses: the whole desc table, avail and used rings must each lie in one
   * region (the CVE-2020-10725 class: a ring only partly mapped). With `strict`, failure is
   * a rejection; otherwise the ring just stays untranslated (not ready).
   */
  private translate(v: VhostUserVring<F>, strict: boolean): void {
    v.descGpa = v.availGpa = v.usedGpa = undefined;
    const a = v.addr;
    if (a === undefined || v.size === 0 || this.mem === undefined) return;
    const s = splitRingSizes(v.size, this.hasFeature(VirtioFeature.RING_F_EVENT_IDX) || !this.featuresSet);
    const desc = this.ringToGpa(a.desc, s.desc);
    const avail = this.ringToGpa(a.avail, s.avail);
    const used = this.ringToGpa(a.used, s.used);
    if (desc === undefined || avail === undefined || used === undefined || desc % 16 !== 0 || avail % 2 !== 0 || used % 4 !== 0) {
      if (!strict) return;
      const bad = desc === undefined ? ['desc', a.desc, s.desc] : avail === undefined ? ['avail', a.avail, s.avail] : used === undefined ? ['used', a.used, s.used] : ['alignment', a.desc, 0];
      throw new VirqError(VhostUserErrorCode.Address, `SET_VRING_ADDR for vring ${v.index}: the ${bad[0]} ring [0x${Number(bad[1]).toString(16)}, +${bad[2]}) does not translate into one memory region (or is misaligned)`, { errno: 'EFAULT', details: { index: v.index, part: bad[0] } });
    }
    v.descGpa = desc;
    v.availGpa = avail;
    v.usedGpa = used;
  }

  /** virtio_is_ready (DPDK 22.11): ≥ 2 rings, each ready, and DRIVER_OK when STATUS is negotiated. */
  isReady(): boolean {
    if (this.nrVring < 2 || this.mem === undefined) return false;
    for (let i = 0; i < this.nrVring; i++) if (!this.vrings[i]!.ready) return false;
    if (this.hasProtocolFeature(VhostUserProtocolFeature.STATUS) && (this.status & VirtioDeviceStatus.DRIVER_OK) === 0) return false;
    return true;
  }

  private checkReady(): void {
    if (!this.running && this.isReady()) {
      this.running = true;
      if (this.trace?.on) {
        this.trace.emit('vhost-user.ready', 'virtio_is_ready', 'vhost_user_msg_handler', { nrVring: this.nrVring, features: `0x${this.features.toString(16)}` });
        this.trace.emit('vhost-user.ready', 'new_device', 'vhost_user_msg_handler', { nrVring: this.nrVring });
      }
      this.device.newDevice?.();
    }
  }

  private stopDevice(): void {
    if (!this.running) return;
    this.running = false;
    if (this.trace?.on) this.trace.emit('vhost-user.stopped', 'destroy_device', 'vhost_user_msg_handler', { nrVring: this.nrVring });
    this.device.destroyDevice?.();
  }

  private onKick(index: number): void {
    const v = this.vrings[index];
    if (v === undefined) return;
    v.kicks++;
    v.started = true;
    // A DPDK application in Rx-interrupt mode sleeps in rte_epoll_wait on the kick fds; for a
    // ready one eal_epoll_process_event runs its callback, eal_intr_proc_rxtx_intr, which
    // reads the eventfd. (DPDK's vhost library has no kick handler of its own: it polls.)
    if (this.trace?.on) this.trace.emit('vhost-user.kick', 'eal_intr_proc_rxtx_intr', 'eal_epoll_process_event', { index });
    if (this.running) this.device.kick?.(index);
  }

  /** Device reset (RESET_OWNER / RESET_DEVICE): rings stopped and forgotten, features cleared. */
  resetDevice(): void {
    this.stopDevice();
    for (const v of this.vrings) this.releaseVring(v);
    this.vrings.length = 0;
    this.nrVring = 0;
    this.features = 0n;
    this.featuresSet = false;
    this.status = 0;
  }

  private releaseVring(v: VhostUserVring<F>): void {
    v.stopKickWatch?.();
    v.stopKickWatch = undefined;
    for (const fd of [v.kickFd, v.callFd, v.errFd]) if (fd !== undefined && fd !== null) this.host.close(fd);
    v.kickFd = v.callFd = v.errFd = undefined;
    v.call = undefined;
    v.started = false;
  }

  /** The connection closed: stop, release every fd and mapping (DPDK vhost_destroy_device). */
  disconnect(): void {
    this.resetDevice();
    this.mem?.unmapAll();
    this.mem = undefined;
    for (const m of this.memRegions) this.host.close(m.fd);
    this.memRegions = [];
    for (const fd of [this.backendReqFd, this.logFd, this.inflightFd]) if (fd !== undefined) this.host.close(fd);
    this.backendReqFd = this.logFd = this.inflightFd = undefined;
    this.owner = false;
    this.protocolFeatures = 0n;
  }
}

function protocolFeatureName(b: number): string {
  for (const [k, v] of Object.entries(VhostUserProtocolFeature)) if (v === b) return k;
  return `bit ${b}`;
}

