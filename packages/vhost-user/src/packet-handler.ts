/**
 * What the vhost-user-net back end does with the frames the guest transmits: a pluggable
 * sink/source. `handle` gets each frame (without its virtio_net_hdr) as a view that is only
 * valid during the call, and may answer frames with `reply` (they go to the guest's RX ring
 * of the same queue pair; copied before `reply` returns).
 */
export interface PacketHandler {
  readonly name: string;
  handle(frame: Uint8Array, reply: (frame: Uint8Array) => void): void;
  /**
   * A declarative equivalent of `handle` the zero-copy data path can run inline: 'macswap'
   * (copy to RX, swap MACs there), 'loopback' (copy to RX), 'drop'. Handlers with side
   * effects beyond that leave it undefined.
   */
  readonly forward?: 'macswap' | 'loopback' | 'drop';
  /** Told about frames the inline path consumed (counters). */
  counted?(frames: number, bytes: number): void;
}

/** testpmd's macswap: swap destination and source MAC, send the frame back. */
export function macswapHandler(): PacketHandler {
  const tmp = new Uint8Array(6);
  return {
    name: 'macswap',
    forward: 'macswap',
    handle(frame, reply) {
      if (frame.length < 12) return;
      tmp.set(frame.subarray(0, 6));
      frame.copyWithin(0, 6, 12);
      frame.set(tmp, 6);
      reply(frame);
    },
  };
}

/** Reflects every frame unchanged. */
export function loopbackHandler(): PacketHandler {
  return { name: 'loopback', forward: 'loopback', handle: (frame, reply) => reply(frame) };
}

/** Counts frames and bytes, sends nothing back (testpmd rxonly). */
export function counterHandler(): PacketHandler & { frames: number; bytes: number } {
  const h = {
    name: 'count',
    forward: 'drop' as const,
    frames: 0,
    bytes: 0,
    handle(frame: Uint8Array): void {
      h.frames++;
      h.bytes += frame.length;
    },
    counted(frames: number, bytes: number): void {
      h.frames += frames;
      h.bytes += bytes;
    },
  };
  return h;
}

/** Wraps a user callback. */
export function callbackHandler(fn: (frame: Uint8Array, reply: (frame: Uint8Array) => void) => void, name = 'callback'): PacketHandler {
  return { name, handle: fn };
}

const ETH_P_ARP = 0x0806;
const ETH_P_IPV4 = 0x0800;
const IPPROTO_ICMP = 1;

/** The Internet checksum (RFC 1071) of `b`. */
export function inetChecksum(b: Uint8Array, start = 0, end = b.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * testpmd's icmpecho forwarding: answers every ARP request (for any address) with `mac`, and
 * every IPv4 ICMP echo request with an echo reply (addresses swapped, checksums recomputed).
 * Other frames are dropped. This is what makes the guest's `ping` pass.
 */
export function icmpEchoHandler(mac: Uint8Array = new Uint8Array([0x02, 0, 0, 0, 0, 0x01])): PacketHandler & { arpReplies: number; echoReplies: number } {
  const h = {
    name: 'icmpecho',
    arpReplies: 0,
    echoReplies: 0,
    handle(frame: Uint8Array, reply: (f: Uint8Array) => void): void {
      if (frame.length < 14) return;
      const type = (frame[12]! << 8) | frame[13]!;
      if (type === ETH_P_ARP && frame.length >= 42) {
        const op = (frame[20]! << 8) | frame[21]!;
        if (op !== 1) return;
        const out = frame.slice(0, 42);
        out.set(frame.subarray(6, 12), 0); // eth dst = requester
        out.set(mac, 6); // eth src = us
        out[21] = 2; // ARP reply
        out.set(mac, 22); // sender hw = us
        out.set(frame.subarray(38, 42), 28); // sender ip = the asked-for ip
        out.set(frame.subarray(22, 28), 32); // target hw = requester
        out.set(frame.subarray(28, 32), 38); // target ip = requester ip
        h.arpReplies++;
        reply(out);
        return;
      }
      if (type !== ETH_P_IPV4 || frame.length < 34) return;
      const ihl = (frame[14]! & 0xf) * 4;
      if (ihl < 20 || frame[23] !== IPPROTO_ICMP) return;
      const totalLen = (frame[16]! << 8) | frame[17]!;
      const ipEnd = 14 + totalLen;
      const icmp = 14 + ihl;
      if (ipEnd > frame.length || icmp + 8 > ipEnd || frame[icmp] !== 8) return;
      const out = frame.slice(0, ipEnd);
      out.set(frame.subarray(6, 12), 0);
      out.set(frame.subarray(0, 6), 6);
      out.set(frame.subarray(30, 34), 26); // src ip = old dst
      out.set(frame.subarray(26, 30), 30); // dst ip = old src
      out[24] = 0;
      out[25] = 0;
      const ipc = inetChecksum(out, 14, 14 + ihl);
      out[24] = ipc >>> 8;
      out[25] = ipc & 0xff;
      out[icmp] = 0; // echo reply
      out[icmp + 2] = 0;
      out[icmp + 3] = 0;
      const c = inetChecksum(out, icmp, ipEnd);
      out[icmp + 2] = c >>> 8;
      out[icmp + 3] = c & 0xff;
      h.echoReplies++;
      reply(out);
    },
  };
  return h;
}

export type PacketMode = 'macswap' | 'loopback' | 'icmpecho' | 'count';

export function packetHandler(mode: PacketMode): PacketHandler {
  switch (mode) {
    case 'macswap':
      return macswapHandler();
    case 'loopback':
      return loopbackHandler();
    case 'icmpecho':
      return icmpEchoHandler();
    case 'count':
      return counterHandler();
  }
}
