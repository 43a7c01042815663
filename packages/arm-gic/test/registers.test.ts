import { GuestMemory, createSimContext } from '@virq/core';
import {
  GICD_CTLR, GICD_ICACTIVER, GICD_ICENABLER, GICD_ICFGR, GICD_ICPENDR, GICD_IGROUPR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISACTIVER,
  GICD_ISENABLER, GICD_ISPENDR, GICD_PIDR2, GICD_SETSPI_NSR, GICD_TYPER, GICD_TYPER2, GICR_CTLR, GICR_ICFGR0, GICR_ISENABLER0,
  GICR_PENDBASER, GICR_PROPBASER, GICR_SETLPIR, GICR_SGI_FRAME, GICR_TYPER, GICR_WAKER, Gicv3, IccSysreg, type GicVersion,
} from '@virq/arm-gic';

function gic(o: { numCpus?: number; version?: GicVersion; numSpis?: number } = {}) {
  const ctx = createSimContext();
  const mem = GuestMemory.ofSize(0x100000);
  const g = new Gicv3(ctx, { numCpus: o.numCpus ?? 4, version: o.version, numSpis: o.numSpis ?? 64, memory: mem });
  return { g, mem, d: g.distributor };
}

/** A CPU interface set up as Linux's gic_cpu_sys_reg_init does: PMR 0xf0, Group 1 enabled. */
function cpuReady(g: Gicv3, pe: number) {
  const c = g.cpuInterfaces[pe];
  c.writeSysreg('ICC_PMR_EL1', 0xf0);
  c.writeSysreg('ICC_IGRPEN1_EL1', 1);
  return c;
}

function enableSpi(g: Gicv3, intid: number, o: { prio?: number; edge?: boolean; pe?: number } = {}) {
  const d = g.distributor;
  d.write32(GICD_IGROUPR + 4 * (intid >> 5), d.read32(GICD_IGROUPR + 4 * (intid >> 5)) | (1 << (intid & 31)));
  const po = GICD_IPRIORITYR + (intid & ~3);
  d.write32(po, (d.read32(po) & ~(0xff << ((intid & 3) * 8))) | ((o.prio ?? 0xa0) << ((intid & 3) * 8)));
  const co = GICD_ICFGR + 4 * (intid >> 4);
  const sh = (intid & 15) * 2;
  d.write32(co, o.edge === true ? d.read32(co) | (2 << sh) : d.read32(co) & ~(2 << sh));
  d.write64(GICD_IROUTER + 8 * intid, BigInt(o.pe ?? 0));
  d.write32(GICD_ISENABLER + 4 * (intid >> 5), 1 << (intid & 31));
}

describe('distributor (GICD, FACTS §12.3)', () => {
  test('TYPER: ITLinesNumber = SPIs/32, LPIS bit 17, IDbits 23:19 = 15; PIDR2 ArchRev 3 or 4; TYPER2.nASSGIcap only on v4.1', () => {
    const { d } = gic({ numSpis: 96 });
    const t = d.read32(GICD_TYPER);
    expect(t & 0x1f).toBe(3); // 32·(3+1) = 128 INTIDs = 32 private + 96 SPIs
    expect((t >> 17) & 1).toBe(1);
    expect((t >> 19) & 0x1f).toBe(15);
    expect((d.read32(GICD_PIDR2) >> 4) & 0xf).toBe(3);
    expect((gic({ version: 'v4' }).d.read32(GICD_PIDR2) >> 4) & 0xf).toBe(4);
    expect(d.read32(GICD_TYPER2) & (1 << 8)).toBe(0);
    expect(gic({ version: 'v4.1' }).d.read32(GICD_TYPER2) & (1 << 8)).toBe(1 << 8);
  });

  test('CTLR: EnableGrp0 bit 0, EnableGrp1 bit 1, ARE (bit 4) and DS (bit 6) read as one', () => {
    const { d } = gic();
    d.write32(GICD_CTLR, 0xffffffff);
    expect(d.read32(GICD_CTLR)).toBe(0b1010011);
    d.write32(GICD_CTLR, 0);
    expect(d.read32(GICD_CTLR)).toBe(0b1010000);
  });

  test('set/clear enable, pending, active: register n bit i is INTID 32n + i; INTIDs < 32 are RES0', () => {
    const { d, g } = gic();
    d.write32(GICD_ISENABLER + 4, 1 << 5); // INTID 37
    expect(g.spis[5].enabled).toBe(true);
    expect(d.read32(GICD_ICENABLER + 4)).toBe(1 << 5); // both views read the enable state
    d.write32(GICD_ICENABLER + 4, 1 << 5);
    expect(g.spis[5].enabled).toBe(false);
    d.write32(GICD_ISPENDR + 8, 1 << 0); // INTID 64
    expect(g.spis[32].state).toBe('pending');
    d.write32(GICD_ISACTIVER + 8, 1);
    expect(g.spis[32].state).toBe('active+pending');
    d.write32(GICD_ICPENDR + 8, 1);
    d.write32(GICD_ICACTIVER + 8, 1);
    expect(g.spis[32].state).toBe('inactive');
    d.write32(GICD_ISENABLER, 0xffffffff); // SGIs/PPIs live in the redistributors with ARE = 1
    expect(d.read32(GICD_ISENABLER)).toBe(0);
    expect(g.redistributors[0].privateIrqs.some((i) => i.enabled)).toBe(false);
  });

  test('IPRIORITYR keeps the 5 implemented bits; ICFGR upper bit of a pair = edge', () => {
    const { d, g } = gic();
    d.write32(GICD_IPRIORITYR + 32, 0x12345678);
    expect(d.read32(GICD_IPRIORITYR + 32)).toBe(0x10305078);
    expect(g.spis[0].priority).toBe(0x78);
    d.write32(GICD_ICFGR + 8, 0b10 << 2); // INTID 33 edge
    expect(g.spis[1].trigger).toBe('edge');
    expect(g.spis[0].trigger).toBe('level');
  });

  test('IROUTER: Aff0 7:0, Aff1 15:8, IRM bit 31 (1 of N among participating PEs); other bits RES0', () => {
    const { d, g } = gic({ numCpus: 20 });
    d.write64(GICD_IROUTER + 8 * 40, (1n << 8n) | 2n); // Aff1 = 1, Aff0 = 2 → PE 18 (KVM MPIDR: Aff0 holds 4 bits)
    expect(g.spis[8].targetPe).toBe(18);
    d.write64(GICD_IROUTER + 8 * 40, 0xffff_ffff_0000_0003n);
    expect(d.read64(GICD_IROUTER + 8 * 40)).toBe(0xff_0000_0003n); // Aff3 kept, bits 63:40 RES0
    expect(g.spis[8].targetPe).toBe(-1); // Aff3 = 0xff names no PE
    // 1 of N: only PEs whose redistributor is awake and whose CPU interface has Group 1 enabled
    for (const pe of [3, 7]) {
      g.redistributors[pe].write32(GICR_WAKER, 0);
      cpuReady(g, pe);
    }
    const chosen = new Set<number>();
    for (let i = 0; i < 4; i++) {
      d.write64(GICD_IROUTER + 8 * 41, 1n << 31n);
      chosen.add(g.spis[9].targetPe);
    }
    expect([...chosen].sort()).toEqual([3, 7]);
  });

  test('SETSPI_NSR makes an SPI pending', () => {
    const { d, g } = gic();
    d.write32(GICD_SETSPI_NSR, 50);
    expect(g.spis[18].pending).toBe(true);
  });
});

describe('redistributor (GICR, FACTS §12.4)', () => {
  test('TYPER: PLPIS, VLPIS on GICv4, Processor_Number 23:8, Last on the last one, Affinity 63:32', () => {
    const { g } = gic({ numCpus: 20, version: 'v4' });
    const t = g.redistributors[18].read64(GICR_TYPER);
    expect(t & 1n).toBe(1n);
    expect((t >> 1n) & 1n).toBe(1n);
    expect((t >> 8n) & 0xffffn).toBe(18n);
    expect((t >> 4n) & 1n).toBe(0n);
    expect(t >> 32n).toBe(0x0102n); // Aff1 = 1, Aff0 = 2
    expect((g.redistributors[19].read64(GICR_TYPER) >> 4n) & 1n).toBe(1n);
    expect((gic().g.redistributors[0].read64(GICR_TYPER) >> 1n) & 1n).toBe(0n);
  });

  test('WAKER: ProcessorSleep bit 1 and ChildrenAsleep bit 2 start set; writing 0 wakes', () => {
    const { g } = gic();
    const rd = g.redistributors[1];
    expect(rd.read32(GICR_WAKER)).toBe(0b110);
    rd.write32(GICR_WAKER, 0);
    expect(rd.read32(GICR_WAKER)).toBe(0);
  });

  test('SGI_base bank: SGIs are edge and read-only in ICFGR0; PROPBASER/PENDBASER are frozen once LPIs are enabled', () => {
    const { g } = gic();
    const rd = g.redistributors[0];
    expect(rd.read32(GICR_SGI_FRAME + GICR_ICFGR0)).toBe(0xaaaaaaaa);
    rd.write32(GICR_SGI_FRAME + GICR_ICFGR0, 0);
    expect(rd.read32(GICR_SGI_FRAME + GICR_ICFGR0)).toBe(0xaaaaaaaa);
    rd.write32(GICR_SGI_FRAME + GICR_ISENABLER0, 1 << 27);
    expect(rd.privateIrqs[27].enabled).toBe(true);
    rd.write64(GICR_PROPBASER, 0x40000n | 15n);
    rd.write64(GICR_PENDBASER, 0x50000n);
    rd.write32(GICR_CTLR, 1);
    rd.write64(GICR_PROPBASER, 0x90000n | 15n);
    expect(rd.read64(GICR_PROPBASER)).toBe(0x40000n | 15n);
  });

  test('LPI tables in memory: config byte (priority 7:2, enable bit 0), pending bit at byte INTID/8, re-read on enable', () => {
    const { g, mem } = gic();
    const rd = g.redistributors[0];
    mem.write8(0x40000 + 5, 0x80 | 0x2 | 0x1); // LPI 8197: priority 0x80, enabled
    mem.write8(0x50000 + (8197 >> 3), 1 << (8197 & 7)); // already pending in the table
    rd.write64(GICR_PROPBASER, 0x40000n | 13n); // 14 ID bits
    rd.write64(GICR_PENDBASER, 0x50000n); // PTZ = 0: the table is scanned
    rd.write32(GICR_CTLR, 1);
    const lpi = g.lpis.get(8197)!;
    expect(lpi.pending).toBe(true);
    expect(lpi.priority).toBe(0x80);
    const c = cpuReady(g, 0);
    expect(c.hppir1()).toBe(8197);
    expect(c.iar1()).toBe(8197);
    expect(mem.read8(0x50000 + (8197 >> 3)) & (1 << (8197 & 7))).toBe(0);
    rd.write64(GICR_SETLPIR, 8197n); // DirectLPI
    expect(mem.read8(0x50000 + (8197 >> 3)) & (1 << (8197 & 7))).not.toBe(0);
    rd.write64(GICR_SETLPIR, BigInt(1 << 14)); // beyond PROPBASER.IDbits: dropped, reported
    expect(g.lastFault?.code).toBe('gic.lpi-dropped');
  });
});

describe('CPU interface (ICC_*, FACTS §12.2, §12.5)', () => {
  test('system-register encodings are the architectural ones', () => {
    expect(IccSysreg.ICC_IAR1_EL1).toBe('S3_0_C12_C12_0');
    expect(IccSysreg.ICC_PMR_EL1).toBe('S3_0_C4_C6_0');
    expect(IccSysreg.ICC_SGI1R_EL1).toBe('S3_0_C12_C11_5');
    const { g } = gic();
    const c = g.cpuInterfaces[0];
    c.writeSysreg('S3_0_C4_C6_0', 0x80);
    expect(c.readSysreg('ICC_PMR_EL1')).toBe(0x80n);
    expect(Number(c.readSysreg('S3_0_C12_C11_3'))).toBe(0xff); // RPR idle
  });

  test('IAR1 returns the highest-priority pending interrupt above PMR; 1023 when none; ties go to the lower INTID', () => {
    const { g, d } = gic();
    d.write32(GICD_CTLR, 2);
    const c = cpuReady(g, 0);
    enableSpi(g, 40, { prio: 0xa0, edge: true });
    enableSpi(g, 41, { prio: 0x80, edge: true });
    enableSpi(g, 42, { prio: 0x80, edge: true });
    enableSpi(g, 43, { prio: 0xf0, edge: true }); // not below PMR 0xf0
    for (const i of [40, 41, 42, 43]) g.setSpiLevel(i, true);
    expect(c.irqAsserted).toBe(true);
    expect(c.iar1()).toBe(41);
    // running priority 0x80: an equal-priority interrupt does not preempt
    expect(c.iar1()).toBe(1023);
    expect(Number(c.readSysreg('ICC_RPR_EL1'))).toBe(0x80);
    c.eoir1(41);
    expect(c.iar1()).toBe(42);
    c.eoir1(42);
    expect(c.iar1()).toBe(40);
    c.eoir1(40);
    expect(c.iar1()).toBe(1023); // 43 masked by PMR
    c.writeSysreg('ICC_PMR_EL1', 0xff);
    expect(c.readSysreg('ICC_PMR_EL1')).toBe(0xf8n); // 5 implemented priority bits: the low 3 read as zero
    expect(c.iar1()).toBe(43);
  });

  test('preemption: a higher group priority preempts; BPR1 coarsens group priorities', () => {
    const { g, d } = gic();
    d.write32(GICD_CTLR, 2);
    const c = cpuReady(g, 0);
    enableSpi(g, 50, { prio: 0xa0, edge: true });
    enableSpi(g, 51, { prio: 0x90, edge: true });
    g.setSpiLevel(50, true);
    expect(c.iar1()).toBe(50);
    g.setSpiLevel(51, true);
    expect(c.iar1()).toBe(51); // 0x90 < 0xa0: nested
    expect(c.readSysreg('ICC_AP1R0_EL1')).toBe(BigInt((1 << (0xa0 >> 3)) | (1 << (0x90 >> 3))));
    c.eoir1(51);
    c.eoir1(50);
    // with BPR1 = 6, group priority is bits 7:6: 0x90 and 0xa0 both have group priority 0x80
    c.writeSysreg('ICC_BPR1_EL1', 6);
    g.setSpiLevel(50, false);
    g.setSpiLevel(51, false);
    g.setSpiLevel(50, true);
    expect(c.iar1()).toBe(50);
    g.setSpiLevel(51, true);
    expect(c.iar1()).toBe(1023);
  });

  test('edge vs level: a level interrupt acknowledged with its line high is active+pending; EOImode 1 splits drop and deactivate', () => {
    const { g, d } = gic();
    d.write32(GICD_CTLR, 2);
    const c = cpuReady(g, 0);
    enableSpi(g, 60, { prio: 0xa0 });
    enableSpi(g, 61, { prio: 0xa0, edge: true });
    g.setSpiLevel(60, true);
    expect(c.iar1()).toBe(60);
    expect(g.spis[28].state).toBe('active+pending');
    c.eoir1(60); // EOImode 0: drop + deactivate → pending again (line still high)
    expect(g.spis[28].state).toBe('pending');
    g.setSpiLevel(60, false);
    expect(g.spis[28].state).toBe('inactive');
    c.writeSysreg('ICC_CTLR_EL1', 2); // EOImode = 1
    expect(Number(c.readSysreg('ICC_CTLR_EL1')) & 2).toBe(2);
    g.setSpiLevel(61, true);
    expect(c.iar1()).toBe(61);
    expect(g.spis[29].state).toBe('active');
    c.eoir1(61);
    expect(Number(c.readSysreg('ICC_RPR_EL1'))).toBe(0xff); // priority dropped
    expect(g.spis[29].state).toBe('active'); // but still active
    g.setSpiLevel(61, false);
    g.setSpiLevel(61, true); // another edge while active
    expect(g.spis[29].state).toBe('active+pending');
    expect(c.iar1()).toBe(1023); // active+pending is not acknowledged until deactivated
    c.writeSysreg('ICC_DIR_EL1', 61);
    expect(g.spis[29].state).toBe('pending');
    expect(c.iar1()).toBe(61);
  });

  test('SGI1R: TargetList 15:0 with Aff1 23:16, INTID 27:24, RS 47:44, IRM bit 40 = all but self', () => {
    const { g } = gic({ numCpus: 20 });
    for (let pe = 0; pe < 20; pe++) g.redistributors[pe].write32(GICR_SGI_FRAME + GICR_ISENABLER0, 0xffff);
    const c = g.cpuInterfaces[0];
    c.writeSysreg('ICC_SGI1R_EL1', (3n << 24n) | (1n << 16n) | 0b101n); // SGI 3 to Aff1 = 1, Aff0 ∈ {0, 2} → PEs 16 and 18
    const pendingAt = (sgi: number) => g.redistributors.map((rd, i) => (rd.privateIrqs[sgi].pending ? i : -1)).filter((i) => i >= 0);
    expect(pendingAt(3)).toEqual([16, 18]);
    c.writeSysreg('ICC_SGI1R_EL1', (5n << 24n) | (1n << 40n));
    expect(pendingAt(5)).toEqual([...Array(20).keys()].filter((i) => i !== 0));
    g.cpuInterfaces[3].writeSysreg('ICC_SGI1R_EL1', (7n << 24n) | (1n << 44n) | 1n); // RS = 1: Aff0 = 16 → no PE (KVM MPIDRs use 4 Aff0 bits)
    expect(pendingAt(7)).toEqual([]);
  });

  test('Group-1 disabled at the distributor or the CPU interface: nothing is signalled', () => {
    const { g, d } = gic();
    const c = cpuReady(g, 0);
    enableSpi(g, 45, { edge: true });
    g.setSpiLevel(45, true);
    expect(c.irqAsserted).toBe(false); // GICD_CTLR.EnableGrp1 = 0
    d.write32(GICD_CTLR, 2);
    expect(c.irqAsserted).toBe(true);
    c.writeSysreg('ICC_IGRPEN1_EL1', 0);
    expect(c.irqAsserted).toBe(false);
  });
});
