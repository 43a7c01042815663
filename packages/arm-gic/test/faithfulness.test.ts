import { EventFd, GuestMemory, TraceRecorder, createSimContext } from '@virq/core';
import {
  GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER, GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_TYPER, Gicv3,
  ICH_HCR_EN, ICH_HCR_LRENPIE, ICH_HCR_NPIE, ICH_HCR_UIE, Its, ItsCommand, LR_ACTIVE, LR_PENDING, Vgic,
} from '@virq/arm-gic';
import { armMachine, assignedDevice, fnsOf } from './helpers.js';

/**
 * Behaviour checked against the Linux sources named in each test (README "Faithfulness
 * review"); the expected values come from those functions, not from this model's output.
 */

function vgicRig(nrLr: number) {
  const ctx = createSimContext();
  const gic = new Gicv3(ctx, { numCpus: 1, defaultGroup: 1 });
  const vgic = new Vgic(ctx, gic, nrLr);
  gic.distributor.write32(0, 0b11); // GICD_CTLR: both groups enabled
  vgic.cpus[0].cpuif.veng1 = true;
  vgic.cpus[0].cpuif.vpmr = 0xff;
  const spi = (intid: number, o: { active?: boolean; pending?: boolean; priority?: number }) => {
    const irq = gic.irqFor(intid, 0)!;
    irq.enabled = true;
    irq.trigger = 'edge';
    irq.targetPe = 0;
    irq.priority = o.priority ?? 0xa0;
    irq.active = o.active === true;
    irq.pendingLatch = o.pending === true;
    vgic.queue(irq);
    return irq;
  };
  return { ctx, gic, vgic, spi };
}

describe('vgic_flush_lr_state / vgic_v3_configure_hcr (2025 vgic.c, vgic-v3.c)', () => {
  test('HCR: NPIE only when the *pending* interrupts alone exceed the LRs; LRENPIE when actives exist and something overflows; UIE when anything overflows', () => {
    const { vgic, spi } = vgicRig(2);
    spi(40, { active: true });
    spi(41, { active: true });
    spi(42, { pending: true });
    vgic.flush(0);
    // nr_pend = 1 ≤ 2 LRs → no NPIE; nr_act = 2 and 3 > 2 → LRENPIE and UIE
    expect(vgic.cpus[0].cpuif.hcr).toBe(ICH_HCR_EN | ICH_HCR_LRENPIE | ICH_HCR_UIE);
    // vgic_irq_cmp: pending && !active sorts first, so the pending one gets an LR
    expect(vgic.cpus[0].cpuif.lrs[0].vintid).toBe(42);
  });

  test('HCR: three pending on two LRs → NPIE | UIE, no LRENPIE', () => {
    const { vgic, spi } = vgicRig(2);
    for (const i of [40, 41, 42]) spi(i, { pending: true });
    vgic.flush(0);
    expect(vgic.cpus[0].cpuif.hcr).toBe(ICH_HCR_EN | ICH_HCR_NPIE | ICH_HCR_UIE);
  });

  test('an active interrupt left out of the LRs is deactivated from EOIcount on exit (the overflow list)', () => {
    const { vgic, spi } = vgicRig(1);
    const a = spi(40, { active: true, priority: 0x80 });
    spi(41, { pending: true, priority: 0xa0 });
    vgic.flush(0);
    const cpuif = vgic.cpus[0].cpuif;
    expect(cpuif.lrs[0].vintid).toBe(41); // the pending one took the only LR
    cpuif.eoir1(40); // the guest EOIs 40, found in no LR: EOIcount++
    expect(cpuif.eoiCount).toBe(1);
    vgic.sync(0);
    expect(a.active).toBe(false);
    expect(a.vcpu).toBe(-1); // pruned off the ap_list
    expect(cpuif.eoiCount).toBe(0);
  });

  test('an empty ap_list skips vgic_flush_lr_state (kvm_vgic_flush_hwstate returns early)', () => {
    const { ctx, vgic } = vgicRig(4);
    const rec = new TraceRecorder(ctx.trace.channel('kvm-vgic').events$);
    expect(vgic.flush(0)).toBe(0);
    expect(fnsOf(rec.events)).not.toContain('vgic_flush_lr_state');
  });
});

describe('vgic_v3_fold_lr_state', () => {
  test('a level interrupt acknowledged but still active keeps its soft pending latch until the LR is invalid', () => {
    const { vgic, gic } = vgicRig(4);
    const irq = gic.irqFor(45, 0)!;
    irq.enabled = true;
    irq.trigger = 'level';
    irq.targetPe = 0;
    irq.priority = 0xa0;
    irq.pendingLatch = true; // GICD_ISPENDR on a level interrupt
    vgic.queue(irq);
    vgic.flush(0);
    const cpuif = vgic.cpus[0].cpuif;
    expect(cpuif.lrs[0].state).toBe(LR_PENDING);
    expect(cpuif.lrs[0].eoi).toBe(true); // SW level: EOI maintenance requested
    expect(cpuif.iar1()).toBe(45);
    vgic.sync(0); // LR state = active only
    expect(irq.active).toBe(true);
    expect(irq.pendingLatch).toBe(true);
    vgic.flush(0);
    expect(cpuif.lrs[0].state).toBe(LR_ACTIVE); // level + active: no P+A
    cpuif.eoir1(45);
    vgic.sync(0); // LR invalid
    expect(irq.pendingLatch).toBe(false);
    expect(irq.active).toBe(false);
  });
});

describe('vgic-its.c command and register semantics', () => {
  const CMDQ = 0x10000;
  const ITT = 0x40000;
  const PROP = 0x50000;
  function itsRig() {
    const ctx = createSimContext();
    const mem = GuestMemory.ofSize(0xa0000);
    const gic = new Gicv3(ctx, { numCpus: 2, memory: mem, defaultGroup: 1 });
    const its = new Its(gic, mem);
    mem.fill(PROP, 0x10000, 0xa3);
    for (let pe = 0; pe < 2; pe++) {
      gic.redistributors[pe].write64(GICR_PROPBASER, BigInt(PROP) | 15n);
      gic.redistributors[pe].write64(GICR_PENDBASER, BigInt(0x60000 + pe * 0x10000));
      gic.redistributors[pe].write32(GICR_CTLR, 1);
    }
    its.write64(GITS_BASER, BigInt(0x20000) | (1n << 63n));
    its.write64(GITS_BASER + 8, BigInt(0x30000) | (1n << 63n));
    its.write64(GITS_CBASER, BigInt(CMDQ) | (1n << 63n));
    its.write32(GITS_CTLR, 1);
    const post = (...cmds: Uint8Array[]) => {
      let w = Number(its.read64(GITS_CWRITER));
      for (const c of cmds) {
        mem.writeBytes(CMDQ + w, c);
        w = (w + 32) % its.queueSize;
      }
      its.write64(GITS_CWRITER, BigInt(w));
    };
    return { ctx, mem, gic, its, post };
  }

  test('GITS_TYPER as vgic_mmio_read_its_typer builds it: PLPIS, ITT entry 8 bytes, 16 EventID and 16 DeviceID bits, PTA = 0, no Virtual', () => {
    const { its } = itsRig();
    const t = its.read64(GITS_TYPER);
    expect(t & 1n).toBe(1n); // Physical
    expect((t >> 1n) & 1n).toBe(0n); // no Virtual: the guest sees a GICv3 ITS
    expect((t >> 4n) & 0xfn).toBe(7n); // ITT_entry_size − 1
    expect((t >> 8n) & 0x1fn).toBe(15n); // IDbits − 1
    expect((t >> 13n) & 0x1fn).toBe(15n); // Devbits − 1
    expect((t >> 19n) & 1n).toBe(0n); // PTA: RDbase is a vCPU number
  });

  test('GITS_CREADR is read-only to the guest (KVM: its_mmio_write_wi)', () => {
    const { its, post } = itsRig();
    post(ItsCommand.mapd(1, 4, ITT, true));
    its.write32(GITS_CTLR, 0);
    its.write64(GITS_CREADR, 0x80n);
    expect(its.read64(GITS_CREADR)).toBe(32n);
  });

  test('MAPC V=0 leaves its ITEs with a NULL collection: re-mapping the same ICID does not revive them (vgic_its_free_collection)', () => {
    const { its, post } = itsRig();
    post(ItsCommand.mapd(1, 4, ITT, true), ItsCommand.mapc(3, 0, true), ItsCommand.mapti(1, 0, 8192, 3));
    expect(its.translate(1, 0)).toBe('lpi');
    post(ItsCommand.mapc(3, 0, false), ItsCommand.mapc(3, 1, true));
    expect(its.translate(1, 0)).toBe('dropped');
    // a fresh MAPTI on another event of the same collection works
    post(ItsCommand.mapti(1, 1, 8193, 3));
    expect(its.translate(1, 1)).toBe('lpi');
  });
});

describe('vgic-irqfd.c: kvm_arch_set_irq_inatomic', () => {
  test('an IRQCHIP route injects only the rising edge in atomic context: a level SPI stays asserted without a resampler', () => {
    const { ctx, vm } = armMachine('v3', { numVcpus: 1 });
    const intid = 32 + 7;
    vm.guestDriver.enableSpi(intid, { trigger: 'level', vcpu: 0 });
    const fd = new EventFd(ctx.scheduler, { name: 'intx' });
    vm.interruptApi.irqfd({ fd, gsi: 7 });
    ctx.scheduler.runUntil(50_000);
    const irq = vm.vgic.gic.irqFor(intid, 0)!;
    const dev = ctx.scheduler.actor({ name: 'dev', kind: 'device', cpu: 1 });
    ctx.scheduler.at(60_000, dev, () => fd.write(1));
    ctx.scheduler.runUntil(61_000);
    expect(irq.lineLevel).toBe(true); // vgic_irqfd_set_irq(…, level = 1) and nothing lowers it
    const rejected = vm.vgic.stats.rejected;
    ctx.scheduler.at(70_000, dev, () => fd.write(1));
    ctx.scheduler.runUntil(71_000);
    expect(vm.vgic.stats.rejected).toBe(rejected + 1); // vgic_validate_injection: level unchanged
  });
});

describe('vgic-its.c INVALL on forwarded LPIs (vgic_its_cmd_handle_invall)', () => {
  test('per-LPI config updates without an INV each, then one its_invall_vpe (VINVALL) for the vCPU\'s vPE', () => {
    const r = armMachine('v4', { numVcpus: 1, hostCpus: 2 });
    const { vm, mem } = r;
    const dev = assignedDevice(r, 0x400, 1);
    vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0]);
    const vpe = vm.vcpus[0].vpe!;
    mem.write8(vm.guestDriver.tablesGpa + (dev.guestLpi - 8192), 0x40 | 0x2 | 0x1);
    const rec = new TraceRecorder(r.ctx.trace.events$);
    vm.guestDriver.its.send('its_send_invall', ItsCommand.invall(0)); // collection 0 → vCPU 0
    expect(vpe.priorityOf(dev.guestLpi)).toBe(0x40);
    const fns = fnsOf(rec.events);
    expect(fns).not.toContain('its_send_vinv');
    expect(rec.events.filter((e) => e.fn === 'its_send_vinvall' && e.caller === 'its_invall_vpe')).toHaveLength(1);
  });
});
