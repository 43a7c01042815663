// Benchmarks of @virq/virtio-pci: guest-driven virtio-net transmit (F3) and virtio-blk I/O
// (F1) through registers and rings, on the synchronous notify path (no ioeventfd: every
// kick exits to QEMU) and the ioeventfd path (kicks wake QEMU's main loop), with tracing
// off and on. A/B runs alternate; medians and per-pair ratios are printed.
// Run: cd packages/virtio-pci && npm run bench
import { type EventFd, GuestMemory, type IoeventfdRequest, type MsiMessage, type MsiSink, TraceRecorder, type VmInterruptApi, createSimContext } from '@virq/core';
import { type PciAccess, PciBus, pciBdf } from '@virq/pci';
import { BlkIoWorkload, GuestPageAllocator, GuestVirtioBlk, GuestVirtioNet, GuestVirtioPci, NetTxWorkload, VirtioBlkDevice, VirtioNet, VirtioPciProxy, assignBars } from '@virq/virtio-pci';

/** The smallest VM: ioeventfds matched on guest writes, MSIs straight to the guest driver. */
class BenchVm implements VmInterruptApi {
  readonly irqfdCapable = false;
  readonly ioeventfdCapable = true;
  private readonly io = new Map<number, EventFd>();
  setGsiRouting(): void {}
  irqfd(): void {}
  ioeventfd(r: IoeventfdRequest): void {
    if (r.deassign) this.io.delete(r.addr);
    else this.io.set(r.addr, r.fd);
  }
  signalMsi(): number {
    return 1;
  }
  irqLine(): number {
    return 1;
  }
  match(addr: number): EventFd | undefined {
    return this.io.get(addr);
  }
}

class Access implements PciAccess {
  constructor(readonly bus: PciBus, readonly vm: BenchVm | undefined) {}
  configRead(b: number, o: number, s: number): number { return this.bus.configRead(b, o, s); }
  configWrite(b: number, o: number, s: number, v: number): void { this.bus.configWrite(b, o, s, v); }
  mmioRead(a: number, s: 1 | 2 | 4 | 8): number { return this.bus.mmioRead(a, s); }
  mmioWrite(a: number, s: 1 | 2 | 4 | 8, v: number): void {
    const fd = this.vm?.match(a);
    if (fd !== undefined) fd.write(1);
    else this.bus.mmioWrite(a, s, v);
  }
  pioRead(p: number, s: 1 | 2 | 4): number { return this.bus.pioRead(p, s); }
  pioWrite(p: number, s: 1 | 2 | 4, v: number): void { this.bus.pioWrite(p, s, v); }
}

function machine(ioeventfd: boolean, trace: boolean) {
  const ctx = createSimContext({ seed: 1 });
  const mem = new GuestMemory([{ gpa: 0, size: 64 << 20 }]);
  const vm = ioeventfd ? new BenchVm() : undefined;
  const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
  let pci: GuestVirtioPci | undefined;
  const sink: MsiSink = {
    deliverMsi: (m: MsiMessage) => {
      const e = pci!.entryForMessage(m)!;
      ctx.scheduler.after(60, vcpu, () => pci!.msixInterrupt(e));
      return 1;
    },
  };
  const bus = new PciBus(0);
  const access = new Access(bus, vm);
  const alloc = new GuestPageAllocator(mem, 1 << 20, 64 << 20);
  const rec = trace ? new TraceRecorder(ctx.trace.events$) : undefined;
  const attach = (proxy: VirtioPciProxy, slot: number) => {
    const bdf = pciBdf(0, slot);
    bus.attach(proxy.pci, bdf & 0xff);
    assignBars(access, bdf, { mmio: 0xf000_0000 + slot * 0x10_0000, pio: 0xc000 + slot * 0x100 });
    pci = new GuestVirtioPci(ctx, { access, bdf, mem, alloc });
    return pci;
  };
  return { ctx, mem, vm, vcpu, sink, alloc, attach, rec };
}

function netRun(ioeventfd: boolean, trace: boolean, n: number): { ms: number; simNs: number; events: number } {
  const m = machine(ioeventfd, trace);
  const net = new VirtioNet(m.ctx, { name: 'net0', mem: m.mem, peer: { send: () => undefined } });
  const proxy = new VirtioPciProxy(m.ctx, { device: net, ...(m.vm ? { vm: m.vm } : {}), msiSink: m.sink });
  const pci = m.attach(proxy, 3);
  let d: GuestVirtioNet | undefined;
  m.ctx.scheduler.after(0, m.vcpu, () => { d = new GuestVirtioNet(m.ctx, { pci, alloc: m.alloc }); });
  m.ctx.scheduler.runUntilIdle();
  const w = new NetTxWorkload(m.ctx, { driver: d!, vcpu: m.vcpu, packetsPerSecond: 1_000_000, count: n, frameSize: 64 });
  const t0 = process.hrtime.bigint();
  const e0 = m.ctx.scheduler.executed;
  const s0 = m.ctx.scheduler.now;
  w.start();
  m.ctx.scheduler.runUntilIdle();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (d!.txCompleted !== n) throw new Error(`only ${d!.txCompleted} of ${n} completed`);
  return { ms, simNs: m.ctx.scheduler.now - s0, events: m.ctx.scheduler.executed - e0 };
}

function blkRun(ioeventfd: boolean, n: number, depth: number): { ms: number; p50: number } {
  const m = machine(ioeventfd, false);
  const blk = new VirtioBlkDevice(m.ctx, { name: 'blk0', mem: m.mem, backing: new Uint8Array(16 << 20), ioLatencyNs: 50_000 });
  const proxy = new VirtioPciProxy(m.ctx, { device: blk, ...(m.vm ? { vm: m.vm } : {}), msiSink: m.sink });
  const pci = m.attach(proxy, 4);
  let d: GuestVirtioBlk | undefined;
  m.ctx.scheduler.after(0, m.vcpu, () => { d = new GuestVirtioBlk(m.ctx, { pci, alloc: m.alloc }); });
  m.ctx.scheduler.runUntilIdle();
  const w = new BlkIoWorkload(m.ctx, { driver: d!, vcpu: m.vcpu, iodepth: depth, blockSize: 4096, count: n, rw: 'randread' });
  const t0 = process.hrtime.bigint();
  w.start();
  m.ctx.scheduler.runUntilIdle();
  if (w.completed !== n) throw new Error(`only ${w.completed} of ${n} completed`);
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, p50: w.latency.percentile(50) };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const PAIRS = 5;

function pair(name: string, a: () => number, b: () => number, unit: string): void {
  const as: number[] = [];
  const bs: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const x = a();
    const y = b();
    as.push(x);
    bs.push(y);
    r.push(y / x);
  }
  console.log(`${name}: A ${median(as).toFixed(1)} ${unit}, B ${median(bs).toFixed(1)} ${unit}; B/A per pair ${r.map((x) => x.toFixed(2)).join(' ')} (median ${median(r).toFixed(2)})`);
}

const N = 20_000;
const kpps = (r: { ms: number }) => N / r.ms; // thousand simulated packets per wall second
pair('virtio-net tx, 64 B frames (A: sync notify_write, B: ioeventfd + main loop) [k pkts/s wall]', () => kpps(netRun(false, false, N)), () => kpps(netRun(true, false, N)), 'k/s');
pair('virtio-net tx via ioeventfd (A: trace off, B: trace on + recorder) [k pkts/s wall]', () => kpps(netRun(true, false, N)), () => kpps(netRun(true, true, N)), 'k/s');
const sim = netRun(true, false, N);
console.log(`  one ioeventfd run: ${N} packets, ${sim.events} scheduler events, ${(sim.simNs / 1e6).toFixed(2)} ms virtual time`);
pair('virtio-blk 4 KiB randread, iodepth 32, 50 µs backend (A: sync, B: ioeventfd) [k IOs/s wall]', () => N / blkRun(false, N, 32).ms, () => N / blkRun(true, N, 32).ms, 'k/s');
const b = blkRun(true, N, 32);
console.log(`  virtual p50 completion latency at depth 32: ${(b.p50 / 1000).toFixed(1)} µs`);
