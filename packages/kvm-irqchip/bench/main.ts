// Deliveries per second (wall clock) of the whole irqfd → MSI → LAPIC → inject → EOI path,
// for 1, 64 and 1,024 vCPUs and 16 vs 4,096 MSI routes. Tracing is off (nobody subscribes).
// Configurations are run alternately, several rounds; medians are printed, and the per-pair
// ratio 4096/16 routes for each vCPU count (the cost per delivery should not grow).
import { createSimContext, EventFd, type MsiMessage } from '@virq/core';
import { IdleGuest, KvmVm } from '@virq/kvm-irqchip';

interface Config {
  vcpus: number;
  routes: number;
}

function msiFor(dest: number, vector: number): MsiMessage {
  return { addressLo: (0xfee00000 | ((dest & 0xff) << 12)) >>> 0, addressHi: (dest >> 8) << 8, data: vector };
}

function runOnce(cfg: Config, deliveries: number): { nsPerDelivery: number; delivered: number; exits: number } {
  const ctx = createSimContext({ seed: 1 });
  const big = cfg.vcpus > 255;
  const vm = new KvmVm(ctx, { nvcpus: cfg.vcpus, x2apicApi: true, cpuid: { x2apic: true } });
  const guests: IdleGuest[] = [];
  for (const v of vm.vcpus()) {
    if (big) v.setMsr(0x1b, BigInt(0xfee00000 + 0x800 + 0x400 + (v.vcpuId === 0 ? 0x100 : 0)));
    const page = vm.getLapic(v.vcpuId);
    page[0xf0 >> 2] = 0x1ff;
    vm.setLapic(v.vcpuId, page);
    const g = new IdleGuest(ctx.costs.ns.guestHandler);
    guests.push(g);
    v.setGuest(g);
    v.run();
  }
  ctx.scheduler.runUntilIdle();
  const routes = [];
  for (let i = 0; i < cfg.routes; i++) routes.push({ gsi: i, type: 'msi' as const, msi: msiFor(i % cfg.vcpus, 0x40 + (i % 0x80)) });
  vm.setGsiRouting(routes);
  const fds: EventFd[] = [];
  for (let i = 0; i < cfg.routes; i++) {
    const fd = new EventFd(ctx.scheduler, { name: `call${i}` });
    vm.irqfd({ fd, gsi: i });
    fds.push(fd);
  }
  const writer = ctx.scheduler.actor({ name: 'vhost-1', kind: 'vhost-worker', cpu: 0 });
  // one write every 20 µs of virtual time, round-robin over the routes; each write schedules
  // the next, so the event queue stays small (as in a real backend loop)
  let sent = 0;
  const writeNext = (): void => {
    fds[sent % fds.length]!.write(1);
    if (++sent < deliveries) ctx.scheduler.after(20_000, writer, writeNext);
  };
  ctx.scheduler.after(1, writer, writeNext);
  const t0 = process.hrtime.bigint();
  ctx.scheduler.runUntilIdle();
  const dt = Number(process.hrtime.bigint() - t0);
  let delivered = 0;
  for (const g of guests) for (const n of g.taken.values()) delivered += n;
  let exits = 0;
  for (const n of vm.exitsByReason().values()) exits += n;
  return { nsPerDelivery: dt / delivered, delivered, exits };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const configs: Config[] = [];
for (const vcpus of [1, 64, 1024]) for (const routes of [16, 4096]) configs.push({ vcpus, routes });
const rounds = Number(process.env['ROUNDS'] ?? 3);
const N = Number(process.env['DELIVERIES'] ?? 20_000);
const results = new Map<string, number[]>();
runOnce({ vcpus: 4, routes: 16 }, 2000); // warm-up
for (let r = 0; r < rounds; r++) {
  for (const c of r % 2 === 0 ? configs : [...configs].reverse()) {
    const res = runOnce(c, N);
    if (res.delivered !== N) throw new Error(`lost deliveries: ${res.delivered}/${N}`);
    const k = `${c.vcpus}/${c.routes}`;
    results.set(k, [...(results.get(k) ?? []), res.nsPerDelivery]);
  }
}
console.log(`irqfd → MSI → LAPIC → inject → EOI, ${N} deliveries per run, ${rounds} rounds (median wall-clock)`);
console.log('vCPUs  routes  ns/delivery  deliveries/s');
for (const c of configs) {
  const m = median(results.get(`${c.vcpus}/${c.routes}`)!);
  console.log(`${String(c.vcpus).padStart(5)}  ${String(c.routes).padStart(6)}  ${m.toFixed(0).padStart(11)}  ${(1e9 / m).toFixed(0).padStart(12)}`);
}
for (const vcpus of [1, 64, 1024]) {
  const a = results.get(`${vcpus}/16`)!;
  const b = results.get(`${vcpus}/4096`)!;
  const ratios = a.map((x, i) => b[i]! / x);
  console.log(`ratio 4096/16 routes at ${vcpus} vCPUs: median ${median(ratios).toFixed(2)} (per pair: ${ratios.map((x) => x.toFixed(2)).join(', ')})`);
}
