/**
 * Back-end data-path cost per frame, in process (no socket, no second core): a TX ring kept
 * full of 64-byte frames (+12-byte virtio_net_hdr, one descriptor each, as DPDK virtio-user
 * sends them) is drained by the vhost-user-net back end in passes of 256, for the P3 shapes:
 * txonly (frames dropped: no RX buffers, as when the front end never refills) and rt
 * (macswap back into an RX ring that is refilled every pass). Prints Mpps medians of 5 runs.
 *   cd packages/vhost-user && npm run bench
 */
import { EventFd, GuestMemory, createSimContext } from '@virq/core';
import { splitRingLayout } from '@virq/virtio-ring';
import { InProcessFd, InProcessHost, InProcessVhostUserLink, QEMU_PROTOCOL_FEATURES, VhostUserFrontend, VhostUserNetBackend, bit, counterHandler, macswapHandler, type PacketHandler } from '../src/index.js';

const Q = 256;
const MEM = 8 << 20;

function setup(handler: PacketHandler, dataPath: 'fast' | 'virtio-ring') {
  const ctx = createSimContext({ seed: 1 });
  const buffer = new ArrayBuffer(MEM);
  const mem = new GuestMemory([{ gpa: 0, size: MEM, buffer }]);
  const host = new InProcessHost(ctx.scheduler, { actor: ctx.scheduler.actor({ name: 'be', kind: 'backend' }) });
  const net = new VhostUserNetBackend<InProcessFd>(host, { handler, poll: true, dataPath, defer: () => undefined });
  const fe = new VhostUserFrontend<InProcessFd>(new InProcessVhostUserLink(net.protocol), { protocolFeatures: QEMU_PROTOCOL_FEATURES });
  const lay = [splitRingLayout(Q, 0x10000), splitRingLayout(Q, 0x20000)];
  fe.init(2, []);
  fe.setVringEnable(2, true);
  const ev = () => InProcessFd.eventfd(new EventFd(ctx.scheduler));
  fe.start({
    features: bit(32) | bit(15),
    regions: [{ region: { guestPhysAddr: 0, memorySize: MEM, userspaceAddr: 0, mmapOffset: 0 }, fd: InProcessFd.memory(buffer) }],
    rings: lay.map((l) => ({ num: Q, base: 0, desc: l.desc, avail: l.driver, used: l.device, kick: ev(), call: ev() })),
  });
  // Descriptor i: 76 bytes at 1 MiB + i·2 KiB (TX); RX descriptor i: 2 KiB writable at 4 MiB + i·2 KiB.
  for (let i = 0; i < Q; i++) {
    const t = lay[1]!.desc + 16 * i;
    mem.write64(t, 0x100000 + i * 2048);
    mem.write32(t + 8, 76);
    mem.write16(t + 12, 0);
    mem.write16(lay[1]!.driver + 4 + 2 * i, i);
    const r = lay[0]!.desc + 16 * i;
    mem.write64(r, 0x400000 + i * 2048);
    mem.write32(r + 8, 2048);
    mem.write16(r + 12, 2);
    mem.write16(lay[0]!.driver + 4 + 2 * i, i);
  }
  return { net, mem, lay };
}

function run(shape: 'txonly' | 'rt', dataPath: 'fast' | 'virtio-ring', ms: number): number {
  const { net, mem, lay } = setup(shape === 'txonly' ? counterHandler() : macswapHandler(), dataPath);
  let txAvail = 0;
  let rxAvail = 0;
  let frames = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let k = 0; k < 64; k++) {
      txAvail = (txAvail + Q) & 0xffff;
      mem.store16(lay[1]!.driver + 2, txAvail);
      if (shape === 'rt') {
        rxAvail = (rxAvail + Q) & 0xffff;
        mem.store16(lay[0]!.driver + 2, rxAvail);
      }
      frames += net.pollOnce();
    }
    now = performance.now();
  }
  return frames / ((now - t0) / 1000) / 1e6;
}

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
for (const shape of ['txonly', 'rt'] as const) {
  for (const path of ['fast', 'virtio-ring'] as const) run(shape, path, 200);
  const r: Record<string, number[]> = { fast: [], 'virtio-ring': [] };
  // Alternate the two data paths run by run (noisy shared host).
  for (let i = 0; i < 5; i++) for (const path of ['fast', 'virtio-ring'] as const) r[path]!.push(run(shape, path, 300));
  for (const path of ['fast', 'virtio-ring'] as const) {
    const a = r[path]!;
    process.stdout.write(`${shape.padEnd(7)} ${path.padEnd(11)} ${median(a).toFixed(2)} Mpps (min ${Math.min(...a).toFixed(2)}, max ${Math.max(...a).toFixed(2)}) in-process, one thread\n`);
  }
}
