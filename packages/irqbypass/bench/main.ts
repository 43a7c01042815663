// Posted vs remapped delivery of an assigned device's MSI-X interrupt to a running vCPU, in
// the model: simulated deliveries per wall-clock second (the model's own cost), and what each
// delivery costs in virtual time and VM exits. Alternating A/B pairs (the host is noisy),
// medians and per-pair ratios.
//
//   cd packages/irqbypass && npm run bench
import { KvmRig } from '../test/support/kvm-rig.js';
import { Rig } from '../test/support/rig.js';

const DELIVERIES = 20_000;
const PAIRS = 7;

type Mode = 'posted' | 'remapped-apicv' | 'remapped-legacy';

interface Result {
  perSec: number;
  virtualNsPerDelivery: number;
  exitsPerDelivery: number;
  injectionsPerDelivery: number;
}

function run(mode: Mode): Result {
  const rig = new Rig({ vcpus: 2, msixVectors: 1, apicv: mode !== 'remapped-legacy', devicePosting: mode === 'posted' });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId + 2);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 1, vector: 0x70 }]));
  rig.recorder.stop();
  const dev = rig.vfio.device;
  const v1 = rig.kvm.vcpu(1)!;
  const s = rig.ctx.scheduler;
  const exits0 = rig.kvm.exits.length;
  const inj0 = rig.kvm.injections;
  let latency = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < DELIVERIES; i++) {
    const start = s.now;
    const before = rig.kvm.deliveries.length;
    s.after(0, dev.actor, () => dev.fireMsix(0));
    s.runUntilIdle();
    if (rig.kvm.deliveries.length !== before + 1) throw new Error(`${mode}: delivery ${i} was not delivered exactly once`);
    latency += rig.kvm.deliveries[before]!.time - start;
    v1.isr.clear();
    rig.kvm.deliveries.length = 0;
    s.runUntil(s.now + 10_000);
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    perSec: DELIVERIES / dt,
    virtualNsPerDelivery: latency / DELIVERIES,
    exitsPerDelivery: (rig.kvm.exits.length - exits0) / DELIVERIES,
    injectionsPerDelivery: (rig.kvm.injections - inj0) / DELIVERIES,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const modes: Mode[] = ['posted', 'remapped-apicv', 'remapped-legacy'];
for (const m of modes) run(m); // warm-up
const perSec: Record<Mode, number[]> = { posted: [], 'remapped-apicv': [], 'remapped-legacy': [] };
const ratios: number[] = [];
let last: Record<Mode, Result> | undefined;
for (let p = 0; p < PAIRS; p++) {
  const order = p % 2 === 0 ? modes : [...modes].reverse();
  const r = {} as Record<Mode, Result>;
  for (const m of order) r[m] = run(m);
  for (const m of modes) perSec[m].push(r[m].perSec);
  ratios.push(r.posted.perSec / r['remapped-legacy'].perSec);
  last = r;
}
console.log(`assigned-device MSI-X → running vCPU, ${DELIVERIES} deliveries per run, ${PAIRS} alternating runs`);
for (const m of modes) {
  const r = last![m];
  console.log(
    `${m.padEnd(16)} model ${Math.round(median(perSec[m])).toLocaleString('en-US').padStart(9)} deliveries/s | virtual ${r.virtualNsPerDelivery.toFixed(0).padStart(5)} ns/delivery | ${r.exitsPerDelivery.toFixed(2)} exits, ${r.injectionsPerDelivery.toFixed(2)} injections per delivery`,
  );
}
console.log(`posted / remapped-legacy model throughput, per pair: ${ratios.map((x) => x.toFixed(2)).join(' ')} (median ${median(ratios).toFixed(2)})`);

// --- The same comparison with the real @virq/kvm-irqchip vCPU loop (guest computing, handler + EOI).
const KVM_DELIVERIES = 2_000;

/** Undefined when the vCPU loop stops taking interrupts (a delivery was lost). */
function runKvm(mode: Mode): Result | undefined {
  const rig = new KvmRig({ vcpus: 2, vectors: 1, apicv: mode !== 'remapped-legacy', devicePosting: mode === 'posted' });
  rig.enableMsix(0, [{ apicId: 1, vector: 0x70 }]);
  rig.recorder.stop();
  const v1 = rig.vm.vcpu(1)!;
  const exits0 = [...v1.exits.values()].reduce((a, b) => a + b, 0);
  const inj0 = v1.injected;
  let latency = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < KVM_DELIVERIES; i++) {
    const start = rig.ctx.scheduler.now;
    const before = rig.guest.taken.length;
    rig.fire(0);
    for (let n = 0; rig.guest.taken.length === before; n++) {
      if (n > 1000) return undefined;
      rig.advance(1_000);
    }
    latency += rig.guest.taken[before]!.time - start;
    rig.advance(20_000);
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  const exits = [...v1.exits.values()].reduce((a, b) => a + b, 0) - exits0;
  return { perSec: KVM_DELIVERIES / dt, virtualNsPerDelivery: latency / KVM_DELIVERIES, exitsPerDelivery: exits / KVM_DELIVERIES, injectionsPerDelivery: (v1.injected - inj0) / KVM_DELIVERIES };
}

console.log(`\nwith @virq/kvm-irqchip's vCPU loop (guest computing; exits counted on the target vCPU, handler EOI included), ${KVM_DELIVERIES} deliveries per run, 3 alternating runs`);
const kPerSec: Record<Mode, number[]> = { posted: [], 'remapped-apicv': [], 'remapped-legacy': [] };
const kLast: Partial<Record<Mode, Result>> = {};
const stalled = new Set<Mode>();
for (let p = 0; p < 3; p++) {
  const order = p % 2 === 0 ? modes : [...modes].reverse();
  for (const m of order) {
    if (stalled.has(m)) continue;
    const r = runKvm(m);
    if (r === undefined) stalled.add(m);
    else {
      kPerSec[m].push(r.perSec);
      kLast[m] = r;
    }
  }
}
for (const m of modes) {
  const r = kLast[m];
  if (r === undefined || stalled.has(m)) {
    console.log(`${m.padEnd(16)} stalled: the vCPU stopped taking interrupts (a lost delivery)`);
    continue;
  }
  console.log(
    `${m.padEnd(16)} model ${Math.round(median(kPerSec[m])).toLocaleString('en-US').padStart(9)} deliveries/s | virtual ${r.virtualNsPerDelivery.toFixed(0).padStart(5)} ns fire→guest handler | ${r.exitsPerDelivery.toFixed(2)} exits on the target vCPU per delivery (KvmVcpu.injected counts virtual delivery too: ${r.injectionsPerDelivery.toFixed(2)})`,
  );
}
if (kPerSec.posted.length > 0 && kPerSec['remapped-legacy'].length > 0) {
  const pairs = kPerSec.posted.map((x, i) => x / kPerSec['remapped-legacy'][i]!);
  console.log(`posted / remapped-legacy model throughput, per pair: ${pairs.map((x) => x.toFixed(2)).join(' ')} (median ${median(pairs).toFixed(2)})`);
}
