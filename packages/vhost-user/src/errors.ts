/**
 * Error codes of @virq/vhost-user. Every rejection of a peer's message is a `VirqError` with
 * one of these codes, an errno where the real back ends answer with one, and a message that
 * says what the peer (or the user) must change.
 */
export const VhostUserErrorCode = {
  /** Fewer than 12 header bytes, or a payload shorter than the header's size. */
  Truncated: 'vhost-user.truncated',
  /** flags bits 1:0 are not 1, or reserved flag bits are set. */
  BadVersion: 'vhost-user.bad-version',
  /** Header `size` larger than the largest payload this implementation accepts. */
  TooLarge: 'vhost-user.too-large',
  /** Request number not in the protocol's table. */
  UnknownRequest: 'vhost-user.unknown-request',
  /** Payload size does not match the request's payload type. */
  BadSize: 'vhost-user.bad-size',
  /** The message carries the wrong number of file descriptors. */
  FdCount: 'vhost-user.fd-count',
  /** A vring index at or beyond the number of rings. */
  RingIndex: 'vhost-user.ring-index',
  /** A ring size of 0, not a power of two, or above 32768. */
  RingSize: 'vhost-user.ring-size',
  /** A vring address that translates nowhere (outside every memory region). */
  Address: 'vhost-user.address',
  /** A memory table with too many, empty, overflowing or overlapping regions. */
  MemoryTable: 'vhost-user.memory-table',
  /** An offset + size computation that would overflow (CVE-2020-10722/10726 class). */
  Overflow: 'vhost-user.overflow',
  /** Mapping a region's fd failed or the fd is smaller than the region. */
  Map: 'vhost-user.map',
  /** A message that needs a feature (virtio or protocol) that was not negotiated. */
  NotNegotiated: 'vhost-user.not-negotiated',
  /** Features the back end did not offer. */
  BadFeatures: 'vhost-user.bad-features',
  /** A message that is not valid in the current state (no owner, ring running …). */
  WrongState: 'vhost-user.wrong-state',
  /** A request this back end does not implement. */
  Unsupported: 'vhost-user.unsupported',
  /** The peer answered with a malformed or unexpected reply. */
  BadReply: 'vhost-user.bad-reply',
  /** The connection is closed. */
  Closed: 'vhost-user.closed',
  /** A kernel vhost ioctl rejected its argument. */
  Ioctl: 'vhost.ioctl',
  /** Bad command-line arguments. */
  Usage: 'vhost-user.usage',
  /** A host facility (eventfd, memfd, Unix socket) is missing. */
  NoHostSupport: 'vhost-user.no-host-support',
} as const;
export type VhostUserErrorCode = (typeof VhostUserErrorCode)[keyof typeof VhostUserErrorCode];
