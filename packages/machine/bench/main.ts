// P1: simulated end-to-end deliveries per wall-clock second on one core — virtio-net rx used
// ring → should_notify → call eventfd → irqfd → MSI route → LAPIC → injection → guest
// handler (vring_interrupt, get_buf, refill) → EOI — built from the real packages
// (@virq/virtio-ring, @virq/kvm-irqchip, @virq/core). Three tracing states: nobody
// subscribed; one idle subscriber (to a channel nothing on this path emits); one subscriber
// to every event. 1, 64 and 1,024 vCPUs (the device's vector targets the last vCPU).
// Configurations alternate; medians and per-pair ratios are printed.
import { EventFd, GuestMemory, createSimContext, type TraceEvent } from '@virq/core';
import { APIC, KvmVm, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { DescriptorChain, SplitVirtqueueDevice, SplitVirtqueueDriver, VIRTIO_F_VERSION_1, splitRingLayout } from '@virq/virtio-ring';

type Trace = 'off' | 'idle' | 'on';

function runOnce(vcpus: number, trace: Trace, deliveries: number): { nsPerDelivery: number; handled: number; events: number; queued: number } {
  const ctx = createSimContext({ seed: 1 });
  let seen = 0;
  if (trace === 'on') ctx.trace.events$.subscribe(() => void seen++);
  if (trace === 'idle') ctx.trace.channel<TraceEvent>('virq-bench-idle').events$.subscribe(() => void seen++);
  const big = vcpus > 255;
  const vm = new KvmVm(ctx, { nvcpus: vcpus, x2apicApi: big, ...(big ? { cpuid: { x2apic: true } } : {}) });
  vm.setApicv(false);
  const target = vcpus - 1;
  const mem = GuestMemory.ofSize(4 << 20);
  const size = 256;
  const lay = splitRingLayout(size, 0x10000);
  const features = 1n << BigInt(VIRTIO_F_VERSION_1);
  const call = new EventFd(ctx.scheduler, { name: 'rx-call' });
  const vhost = ctx.scheduler.actor({ name: 'vhost-4242', kind: 'vhost-worker', cpu: 0 });
  const dev = new SplitVirtqueueDevice(mem, { ...lay, features, call: () => void call.write(1) });
  const drv = new SplitVirtqueueDriver<number>(mem, { ...lay, features, notify: () => undefined });
  for (let i = 0; i < size; i++) drv.addInbuf(0x100000 + i * 2048, 2048, i);
  dev.disableNotification(); // the back end polls rx avail when it has a packet (no kicks)
  let handled = 0;
  const free: number[] = [];
  // The guest's code is fixed, so its operations are built once (a model that allocated per
  // interrupt would measure the garbage collector, not the delivery).
  const HLT: GuestOp = { op: 'hlt' };
  const HANDLER_TAIL: readonly GuestOp[] = [{ op: 'compute', ns: 300 }, { op: 'eoi' }];
  const guest: GuestModel = {
    next: (): GuestOp => HLT,
    interrupt: (): readonly GuestOp[] => {
      // vring_interrupt → virtnet_poll → virtnet_receive: reclaim the used buffers; refill
      // (try_fill_recv) once more than min(budget 64, size)/2 descriptors are free.
      drv.interrupt();
      for (let id = drv.getBuf(); id !== undefined; id = drv.getBuf()) {
        handled++;
        free.push(id);
      }
      if (drv.numFree > 32) {
        for (let id = free.pop(); id !== undefined; id = free.pop()) drv.addInbuf(0x100000 + id * 2048, 2048, id);
        drv.kickPrepare(); // the back end polls: VRING_USED_F_NO_NOTIFY suppresses the kick
      }
      return HANDLER_TAIL;
    },
  };
  for (const v of vm.vcpus()) {
    if (big) v.setMsr(0x1b, BigInt(0xfee00000 + 0x800 + 0x400 + (v.vcpuId === 0 ? 0x100 : 0)));
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    if (v.vcpuId === target) {
      v.setGuest(guest);
      v.run();
    }
  }
  vm.setGsiRouting([{ gsi: 24, type: 'msi', msi: { addressLo: (0xfee00000 | ((target & 0xff) << 12)) >>> 0, addressHi: big ? (target >> 8) << 8 : 0, data: 0x41 } }]);
  vm.irqfd({ fd: call, gsi: 24 });
  const chain = new DescriptorChain();
  let sent = 0;
  const packet = (): void => {
    const c = dev.pop(chain);
    if (c !== null) {
      dev.push(c, 64);
      dev.notify(); // virtio_should_notify → call eventfd
    }
    if (++sent < deliveries) ctx.scheduler.post(20_000, vhost, packet);
  };
  ctx.scheduler.runUntilIdle();
  ctx.scheduler.after(1000, vhost, packet);
  // The setup's garbage (1,024 vCPUs rebuild the APIC map as each enables its LAPIC) is
  // collected before the clock starts, when the bench runs with --expose-gc (npm run bench).
  (globalThis as { gc?: () => void }).gc?.();
  const t0 = process.hrtime.bigint();
  ctx.scheduler.runUntilIdle();
  const dt = Number(process.hrtime.bigint() - t0);
  if (trace === 'on' && seen === 0) throw new Error('the subscriber saw nothing');
  return { nsPerDelivery: dt / Math.max(1, handled), handled, events: ctx.scheduler.executed, queued: ctx.scheduler.executed - ctx.scheduler.continuedInPlace };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const N = Number(process.env['DELIVERIES'] ?? 50_000);
const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const cfgs: Array<{ vcpus: number; trace: Trace }> = [];
for (const vcpus of [1, 64, 1024]) for (const trace of ['off', 'idle', 'on'] as const) cfgs.push({ vcpus, trace });
const only = process.env['ONLY']; // e.g. ONLY=1/off (profiling one configuration) or ONLY=1/off,1/idle
if (only !== undefined) {
  const keep = new Set(only.split(','));
  cfgs.splice(0, cfgs.length, ...cfgs.filter((c) => keep.has(`${c.vcpus}/${c.trace}`)));
}
const res = new Map<string, number[]>();
const evs = new Map<string, number>();
const qevs = new Map<string, number>();
runOnce(2, 'off', 5000);
runOnce(2, 'on', 2000);
for (let r = 0; r < ROUNDS; r++) {
  for (const c of r % 2 === 0 ? cfgs : [...cfgs].reverse()) {
    const x = runOnce(c.vcpus, c.trace, N);
    if (x.handled !== N) throw new Error(`vcpus=${c.vcpus} trace=${c.trace}: ${x.handled} of ${N} packets reached the guest`);
    const k = `${c.vcpus}/${c.trace}`;
    res.set(k, [...(res.get(k) ?? []), x.nsPerDelivery]);
    evs.set(k, x.events / N);
    qevs.set(k, x.queued / N);
  }
}
console.log(`P1: virtio-net rx used ring → call → irqfd → MSI → LAPIC → inject → guest handler → EOI; ${N} deliveries per run, ${ROUNDS} rounds, medians (wall clock, one core)`);
console.log('vCPUs  tracing          ns/delivery   deliveries/s   ratio to "off" (per-round median)   events/delivery (queued)');
for (const c of cfgs) {
  if (!res.has(`${c.vcpus}/off`)) res.set(`${c.vcpus}/off`, res.get(`${c.vcpus}/${c.trace}`)!);
  const xs = res.get(`${c.vcpus}/${c.trace}`)!;
  const off = res.get(`${c.vcpus}/off`)!;
  const ratio = median(xs.map((v, i) => off[i]! / v));
  console.log(`${String(c.vcpus).padStart(5)}  ${c.trace.padEnd(15)}  ${median(xs).toFixed(0).padStart(11)}   ${(1e9 / median(xs)).toFixed(0).padStart(12)}   ${ratio.toFixed(3).padStart(34)}   ${(evs.get(`${c.vcpus}/${c.trace}`) ?? 0).toFixed(1)} (${(qevs.get(`${c.vcpus}/${c.trace}`) ?? 0).toFixed(1)})`);
}
if (only === undefined) {
  const flat = median(res.get('1024/off')!) / median(res.get('1/off')!);
  console.log(`cost per delivery at 1,024 vCPUs / 1 vCPU (tracing off): ${flat.toFixed(2)}`);
  console.log(`target ≥ 2,000,000 deliveries/s unsubscribed: ${1e9 / median(res.get('1/off')!) >= 2e6 ? 'met' : 'NOT met'}`);
}
