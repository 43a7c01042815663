// LPIs per wall-clock second through the model's hot path, three ways:
//  A. hardware GICv3: GITS_TRANSLATER → ITS translation (cache) → redistributor pending
//     table → CPU interface ICC_IAR1 / ICC_EOIR1;
//  B. GICv4.1 direct: host ITS → virtual ITE → resident vPE's VPT → virtual CPU interface
//     ICV_IAR1 / ICV_EOIR1 (no hypervisor);
//  C. KVM's GICv3 vGIC: vITS → vgic_queue_irq_unlock → flush (populate LR) → ICV_IAR1/EOIR1 → fold.
// Each with 1 and 256 PEs / vPEs / vCPUs and 64K mapped events (64 devices × 1024 EventIDs).
// Alternating 1/256 runs (the host is noisy): medians and per-pair ratios.
//
//   cd packages/arm-gic && npm run bench
import { GuestMemory, Histogram, TraceRecorder, createSimContext } from '@virq/core';
import { assignedDevice } from '../test/helpers.js';
import {
  ArmHost, ArmVm, GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GICR_VLPI_FRAME, GICR_VPENDBASER, GICR_VPENDBASER_4_1_VGRP1EN,
  GICR_VPENDBASER_VALID, Gicv3, GuestGicDriver, ItsCommand, ItsDriver, Its, VirtualCpuInterface,
} from '@virq/arm-gic';

const DEVICES = 64;
const EVENTS_PER_DEVICE = 1024; // 64 × 1024 = 65,536 mapped events
const LPIS_PER_RUN = 200_000;
const PAIRS = 5;

interface Harness {
  /** Delivers and handles LPI number k (k-th pseudo-random (DeviceID, EventID)). */
  one(dev: number, ev: number): void;
  check(): number;
}

function hardware(pes: number, traced = false): Harness {
  const ctx = createSimContext();
  const mem = GuestMemory.ofSize(0x100000 * 4 + pes * 0x20000 + DEVICES * EVENTS_PER_DEVICE * 8 + 0x100000);
  const gic = new Gicv3(ctx, { numCpus: pes, memory: mem, lpiIdBits: 17, defaultGroup: 1 });
  const PROP = 0x100000;
  const PEND = 0x200000;
  mem.fill(PROP, 0x20000, 0xa3);
  for (let pe = 0; pe < pes; pe++) {
    const rd = gic.redistributors[pe];
    rd.write64(GICR_PROPBASER, BigInt(PROP) | 16n);
    rd.write64(GICR_PENDBASER, BigInt(PEND + pe * 0x10000) | (1n << 62n));
    rd.write32(GICR_CTLR, 1);
    gic.cpuInterfaces[pe].writeSysreg('ICC_PMR_EL1', 0xf0);
    gic.cpuInterfaces[pe].writeSysreg('ICC_IGRPEN1_EL1', 1);
  }
  const base = PEND + pes * 0x10000;
  const its = new Its(gic, mem, { flavor: 'hardware' });
  const drv = new ItsDriver(its, mem, { cmdq: base, deviceTable: base + 0x10000, collectionTable: base + 0x20000, ittBase: base + 0x30000 });
  drv.init();
  for (let pe = 0; pe < pes; pe++) drv.mapCollection(pe, pe);
  let lpi = 8192;
  for (let d = 0; d < DEVICES; d++) {
    drv.mapDevice(d, 10);
    for (let e = 0; e < EVENTS_PER_DEVICE; e++) drv.mapEvent(d, e, lpi++, (d * EVENTS_PER_DEVICE + e) % pes);
  }
  if (traced) new TraceRecorder(ctx.trace.events$);
  let handled = 0;
  return {
    one(dev, ev) {
      its.translate(dev, ev);
      const ite = its.devices.get(dev)!.ites.get(ev)!;
      const c = gic.cpuInterfaces[its.collections.get(ite.icid)!];
      const intid = c.iar1();
      c.eoir1(intid);
      if (intid !== 1023) handled++;
    },
    check: () => handled,
  };
}

function gicv4Direct(vpes: number): Harness {
  const ctx = createSimContext();
  const host = new ArmHost(ctx, { numCpus: vpes, version: 'v4.1' });
  const d = host.driver;
  const cpuifs: VirtualCpuInterface[] = [];
  for (let v = 0; v < vpes; v++) {
    const vpt = host.allocPages(1);
    d.send('its_send_vmapp', ItsCommand.vmapp(v, v, vpt, 16, true, 1023));
    const vpe = host.gic.vpes.get(v)!;
    const cpuif = new VirtualCpuInterface(4);
    cpuif.vpmr = 0xf0;
    cpuif.veng1 = true;
    cpuif.vpe = vpe;
    cpuifs.push(cpuif);
    host.gic.redistributors[v].write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_VALID | GICR_VPENDBASER_4_1_VGRP1EN | BigInt(v));
  }
  let vintid = 8192;
  for (let dev = 0; dev < DEVICES; dev++) {
    d.mapDevice(dev, 10);
    const cmds: Uint8Array[] = [];
    for (let e = 0; e < EVENTS_PER_DEVICE; e++) {
      cmds.push(ItsCommand.vmapti(dev, e, (dev * EVENTS_PER_DEVICE + e) % vpes, 8192 + ((vintid++ - 8192) % 57000), 1023));
      if (cmds.length === 100) d.send('its_send_vmapti', ...cmds.splice(0));
    }
    if (cmds.length > 0) d.send('its_send_vmapti', ...cmds);
  }
  let handled = 0;
  return {
    one(dev, ev) {
      host.its.translate(dev, ev);
      const ite = host.its.devices.get(dev)!.ites.get(ev)!;
      const c = cpuifs[ite.vpeId];
      const intid = c.iar1();
      c.eoir1(intid);
      if (intid !== 1023) handled++;
    },
    check: () => handled,
  };
}

function kvmVgic(vcpus: number): Harness {
  const ctx = createSimContext();
  const mem = GuestMemory.ofSize(GuestGicDriver.tablesSize(vcpus) + DEVICES * EVENTS_PER_DEVICE * 8 + 0x100000);
  const vm = new ArmVm(ctx, { numVcpus: vcpus, memory: mem, gic: 'v3', host: new ArmHost(ctx, { numCpus: 1 }), vcpuCpus: new Array<number>(vcpus).fill(0) });
  vm.guestDriver.boot(); // vCPUs are not run: the bench drives flush/IAR/EOI/fold directly
  const targets: number[][] = [];
  for (let dev = 0; dev < DEVICES; dev++) {
    vm.guestDriver.its.mapDevice(dev, 10);
    targets.push([]);
  }
  // map through the guest driver with LPIs enabled in its property table
  let lpi = 8192;
  const prop = vm.guestDriver.tablesGpa;
  for (let dev = 0; dev < DEVICES; dev++) {
    const cmds: Uint8Array[] = [];
    for (let e = 0; e < EVENTS_PER_DEVICE; e++) {
      const v = (dev * EVENTS_PER_DEVICE + e) % vcpus;
      const intid = 8192 + ((lpi++ - 8192) % 57000);
      mem.write8(prop + intid - 8192, 0xa3);
      cmds.push(ItsCommand.mapti(dev, e, intid, v));
      targets[dev].push(v);
      if (cmds.length === 100) vm.guestDriver.its.send('its_send_mapti', ...cmds.splice(0));
    }
    if (cmds.length > 0) vm.guestDriver.its.send('its_send_mapti', ...cmds);
  }
  vm.vgic.kick = () => undefined; // nobody runs: the kick would be an IPI
  let handled = 0;
  return {
    one(dev, ev) {
      vm.its.translate(dev, ev);
      const v = targets[dev][ev];
      vm.vgic.flush(v);
      const c = vm.vgic.cpus[v].cpuif;
      const intid = c.iar1();
      c.eoir1(intid);
      vm.vgic.sync(v);
      if (intid !== 1023) handled++;
    },
    check: () => handled,
  };
}

function measure(h: Harness): number {
  let x = 12345;
  const before = h.check();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < LPIS_PER_RUN; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    h.one((x >>> 8) % DEVICES, (x >>> 16) % EVENTS_PER_DEVICE);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  if (h.check() - before !== LPIS_PER_RUN) throw new Error(`only ${h.check() - before} of ${LPIS_PER_RUN} LPIs were acknowledged`);
  return LPIS_PER_RUN / (ns / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function pairSeries(name: string, make: (n: number) => Harness, a = 1, b = 256): void {
  const ha = make(a);
  const hb = make(b);
  measure(ha); // warm-up
  measure(hb);
  const ra: number[] = [];
  const rb: number[] = [];
  const ratios: number[] = [];
  for (let p = 0; p < PAIRS; p++) {
    const x = measure(ha);
    const y = measure(hb);
    ra.push(x);
    rb.push(y);
    ratios.push(y / x);
  }
  const f = (v: number) => `${(v / 1e6).toFixed(2)} M LPIs/s`;
  console.log(`${name.padEnd(46)} ${String(a).padStart(3)}: ${f(median(ra))}   ${String(b).padStart(3)}: ${f(median(rb))}   ratio ${b}/${a} median ${median(ratios).toFixed(2)} (pairs: ${ratios.map((r) => r.toFixed(2)).join(' ')})`);
}

/** Virtual-time figures: the same assigned-device MSI load on GICv3 and GICv4 (busy or idle guest). */
function exitsSideBySide(): void {
  const N = 1000;
  const PERIOD = 20_000;
  console.log(`\nSame device MSI load (${N} MSIs, one every ${PERIOD / 1000} µs) to vCPU 0 — virtual time, from the simulation:`);
  console.log('GIC    host   guest  exits/irq  IRQ-exits  WFx-exits  host-irqs/irq  doorbells  mean MSI→ack (ns)  p99 (ns)');
  for (const guestIdle of [false, true]) {
    for (const [gic, vhe] of [['v3', true], ['v3', false], ['v4', true], ['v4.1', true]] as const) {
      const ctx = createSimContext({ seed: 7 });
      const host = new ArmHost(ctx, { numCpus: 2, version: gic });
      const vm = new ArmVm(ctx, { numVcpus: 1, gic, host, vhe, memory: GuestMemory.ofSize(GuestGicDriver.tablesSize(1) + 0x100000) });
      vm.start();
      const r = { ctx, vm, host, mem: vm.memory };
      const dev = assignedDevice(r, 0x100, 1);
      vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0]);
      vm.vcpus[0].guest.idleWithWfi = guestIdle;
      const sent: number[] = [];
      const lat = new Histogram();
      vm.vcpus[0].onInterrupt(dev.guestLpi, () => lat.record(ctx.scheduler.now - sent[lat.count]));
      ctx.scheduler.runUntil(50_000);
      const e0 = vm.exitCounts();
      const h0 = host.stats.hostIrqs;
      const nic = ctx.scheduler.actor({ name: 'nic', kind: 'device', cpu: 1 });
      for (let i = 0; i < N; i++) {
        ctx.scheduler.at(100_000 + i * PERIOD, nic, () => {
          sent.push(ctx.scheduler.now);
          host.deviceMsi(0x100, 0);
        });
      }
      ctx.scheduler.runUntil(100_000 + N * PERIOD + 100_000);
      const e = vm.exitCounts();
      if (lat.count !== N) throw new Error(`${gic}: ${lat.count} of ${N} interrupts reached the guest`);
      console.log(`${gic.padEnd(6)} ${(vhe ? 'VHE' : 'nVHE').padEnd(6)} ${(guestIdle ? 'idle' : 'busy').padEnd(6)} ${((e.total - e0.total) / N).toFixed(2).padStart(9)}  ${String(e.IRQ - e0.IRQ).padStart(9)}  ${String(e.WFx - e0.WFx).padStart(9)}  ${((host.stats.hostIrqs - h0) / N).toFixed(2).padStart(13)}  ${String(vm.v4?.stats.doorbells ?? 0).padStart(9)}  ${lat.mean().toFixed(0).padStart(17)}  ${String(lat.percentile(99)).padStart(8)}`);
    }
  }
}

console.log(`@virq/arm-gic bench — ${DEVICES * EVENTS_PER_DEVICE} mapped events, ${LPIS_PER_RUN} LPIs per run, ${PAIRS} alternating pairs, medians`);
pairSeries('A hardware ITS → GICR → ICC_IAR1/EOIR1 (PEs)', (n) => hardware(n));
pairSeries('B GICv4.1 direct vLPI → ICV_IAR1/EOIR1 (vPEs)', (n) => gicv4Direct(n));
pairSeries('C KVM vGIC vITS → LR → ICV → fold (vCPUs)', (n) => kvmVgic(n));
pairSeries('A, 1 PE: tracing on (1) vs off (0)', (n) => hardware(1, n === 1), 1, 0);
exitsSideBySide();
