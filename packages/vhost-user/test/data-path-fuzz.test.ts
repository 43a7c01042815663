import { EventFd, Prng, createSimContext } from '@virq/core';
import { InProcessFd, InProcessHost, InProcessVhostUserLink, VhostUserFrontend, VhostUserNetBackend, bit, macswapHandler } from '@virq/vhost-user';

/**
 * Bad guest input on the data path (ARCHITECTURE "State, errors, bad input"): random
 * descriptor tables, avail rings and indirect tables — loops, jumps, wild addresses and
 * lengths, nested indirection. Whatever the guest wrote, both data paths must return (no
 * exception, no loop), and every byte they change must be in a used ring or in a buffer the
 * guest marked device-writable in the RX queue (directly or in an indirect table it points to).
 */
const MEM = 1 << 16;
const Q = 16;
// ring layout: RX desc 0x0000 avail 0x0100 used 0x0200; TX desc 0x1000 avail 0x1100 used 0x1200
const RX = { desc: 0x0000, avail: 0x0100, used: 0x0200 };
const TX = { desc: 0x1000, avail: 0x1100, used: 0x1200 };
const USED_BYTES = 6 + 8 * Q;

function rand(p: Prng, mem: DataView): void {
  const addr = (): number => (p.next() < 0.8 ? p.int(0x2000, MEM - 1) : p.next() < 0.5 ? p.int(0, MEM + 4096) : 0xffff_0000);
  for (const r of [RX, TX]) {
    for (let i = 0; i < Q; i++) {
      const d = r.desc + 16 * i;
      mem.setUint32(d, addr(), true);
      mem.setUint32(d + 4, p.next() < 0.95 ? 0 : p.int(0, 0xffffffff), true);
      mem.setUint32(d + 8, p.next() < 0.7 ? p.int(0, 2048) : p.int(0, 0xffffffff) >>> 0, true);
      const flags = p.next() < 0.5 ? (r === RX ? 2 : 0) : p.int(0, 7);
      mem.setUint16(d + 12, flags, true);
      mem.setUint16(d + 14, p.next() < 0.8 ? p.int(0, Q - 1) : p.int(0, 0xffff), true);
      mem.setUint16(r.avail + 4 + 2 * i, p.next() < 0.9 ? p.int(0, Q - 1) : p.int(0, 0xffff), true);
    }
    mem.setUint16(r.avail + 2, p.next() < 0.8 ? p.int(0, Q) : p.int(0, 0xffff), true);
    mem.setUint16(r.avail, p.int(0, 1), true);
  }
  // Some indirect tables in the data area, with random entries.
  for (let t = 0; t < 4; t++) {
    const at = 0x8000 + t * 0x100;
    for (let i = 0; i < 16; i++) {
      mem.setUint32(at + 16 * i, addr(), true);
      mem.setUint32(at + 16 * i + 4, 0, true);
      mem.setUint32(at + 16 * i + 8, p.int(0, 512), true);
      mem.setUint16(at + 16 * i + 12, p.int(0, 7), true);
      mem.setUint16(at + 16 * i + 14, p.int(0, 20), true);
    }
  }
}

/** Byte ranges the device may write: used rings, RX WRITE descriptors (and their indirect tables' WRITE entries). */
function allowed(mem: DataView): [number, number][] {
  const out: [number, number][] = [[RX.used, RX.used + USED_BYTES], [TX.used, TX.used + USED_BYTES]];
  const add = (table: number, n: number, depth: number): void => {
    for (let i = 0; i < n; i++) {
      const d = table + 16 * i;
      if (d + 16 > MEM) return;
      const a = mem.getUint32(d, true) + mem.getUint32(d + 4, true) * 2 ** 32;
      const len = mem.getUint32(d + 8, true);
      const flags = mem.getUint16(d + 12, true);
      if (flags & 4) {
        if (depth === 0 && len % 16 === 0 && a + len <= MEM) add(a, len / 16, 1);
      } else if (flags & 2) out.push([a, a + len]);
    }
  };
  add(RX.desc, Q, 0);
  return out;
}

describe.each(['fast', 'virtio-ring'] as const)('guest-input fuzz of the %s data path', (dataPath) => {
  it('3,000 random rings: always returns, writes only used rings and device-writable RX buffers', () => {
    const p = new Prng(2020_10724);
    let broken = 0;
    let delivered = 0;
    for (let iter = 0; iter < 3000; iter++) {
      const ctx = createSimContext({ seed: iter });
      const buffer = new ArrayBuffer(MEM);
      const dv = new DataView(buffer);
      const host = new InProcessHost(ctx.scheduler, { actor: ctx.scheduler.actor({ name: 'be', kind: 'backend' }) });
      const net = new VhostUserNetBackend<InProcessFd>(host, { handler: macswapHandler(), dataPath, poll: true, defer: () => undefined });
      const fe = new VhostUserFrontend<InProcessFd>(new InProcessVhostUserLink(net.protocol), { protocolFeatures: 0n });
      fe.init(0, []);
      const features = p.next() < 0.5 ? bit(32) | bit(15) | bit(28) : bit(32) | bit(28) | bit(29);
      fe.start({
        features,
        regions: [{ region: { guestPhysAddr: 0, memorySize: MEM, userspaceAddr: 0x10000000, mmapOffset: 0 }, fd: InProcessFd.memory(buffer) }],
        rings: [RX, TX].map((r) => ({ num: Q, base: 0, desc: 0x10000000 + r.desc, avail: 0x10000000 + r.avail, used: 0x10000000 + r.used, kick: InProcessFd.eventfd(new EventFd(ctx.scheduler)), call: InProcessFd.eventfd(new EventFd(ctx.scheduler)) })),
      });
      fe.setVringEnable(2, true);
      if (!net.running) throw new Error('device did not start');
      rand(p, dv);
      const before = new Uint8Array(buffer.slice(0));
      const ok = allowed(dv);
      for (let k = 0; k < 3; k++) net.pollOnce();
      const after = new Uint8Array(buffer);
      for (let i = 0; i < MEM; i++) {
        if (before[i] !== after[i] && !ok.some(([a, b]) => i >= a && i < b)) {
          throw new Error(`iteration ${iter}: byte 0x${i.toString(16)} changed outside every device-writable range`);
        }
      }
      broken += net.counters.ringErrors + net.fastQueues().filter((q) => q?.broken).length;
      delivered += net.counters.rxFrames;
    }
    // The generator reaches both outcomes: bad rings refused, good chains delivered.
    expect(broken).toBeGreaterThan(100);
    expect(delivered).toBeGreaterThan(100);
  }, 60_000);
});
