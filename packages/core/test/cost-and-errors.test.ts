import { CostModel, DEFAULT_COSTS, Histogram, KvmRoutingTable, VirqError, checkSnapshot, createSimContext, msiAddress, msiMessage, type GsiRoute, type VmInterruptApi } from '@virq/core';

describe('CostModel', () => {
  it('defaults follow the published figures cited in cost.ts (FACTS §15)', () => {
    const c = new CostModel();
    // KVM_RUN trivial round trip ≈ 2,528–2,576 cycles at 3 GHz ≈ 843–859 ns.
    expect(c.ns.vmExit + c.ns.vmEntry).toBeGreaterThanOrEqual(843);
    expect(c.ns.vmExit + c.ns.vmEntry).toBeLessThanOrEqual(859);
    // inl_from_qemu ≈ 5,765–5,826 cycles ≈ 1,922–1,942 ns for exit + userspace + entry.
    const userspace = c.ns.vmExit + c.ns.vmEntry + c.ns.exitToUserspace;
    expect(userspace).toBeGreaterThanOrEqual(1922);
    expect(userspace).toBeLessThanOrEqual(1942);
    expect(c.get('eventfdSignal')).toBe(200);
  });

  it('overrides are validated', () => {
    expect(new CostModel({ vmExit: 1000 }).ns.vmExit).toBe(1000);
    expect(() => new CostModel({ vmexit: 1 })).toThrow(expect.objectContaining({ code: 'cost.unknown' }));
    expect(() => new CostModel({ vmExit: -1 })).toThrow(expect.objectContaining({ code: 'cost.invalid' }));
    expect(Object.keys(new CostModel().with({ hostIpi: 5 }).ns)).toEqual(Object.keys(DEFAULT_COSTS));
  });
});

describe('VirqError', () => {
  it('carries code, errno and details', () => {
    const e = new VirqError('kvm.routing-invalid', 'bad', { errno: 'EINVAL', details: { gsi: 5 } });
    expect(e).toBeInstanceOf(Error);
    expect(VirqError.is(e, 'kvm.routing-invalid')).toBe(true);
    expect(VirqError.is(e, 'other')).toBe(false);
    expect(e.errno).toBe('EINVAL');
    expect(e.details).toEqual({ gsi: 5 });
  });
});

describe('MSI messages', () => {
  it('split 64-bit addresses into lo/hi like struct kvm_msi', () => {
    const m = msiMessage(0x1_fee0_1000n, 0x4031, 0x0010);
    expect(m).toEqual({ addressLo: 0xfee01000, addressHi: 1, data: 0x4031, requesterId: 0x10 });
    expect(msiAddress(m)).toBe(0x1_fee0_1000n);
    expect(() => msiMessage(-1, 0)).toThrow(VirqError);
    expect(() => msiMessage(0xfee00000, 2 ** 32)).toThrow(VirqError);
  });
});

describe('snapshots', () => {
  it('refuse the wrong type or version', () => {
    expect(checkSnapshot({ type: 'ring', version: 1, state: { a: 1 } }, 'ring', 1)).toEqual({ a: 1 });
    expect(() => checkSnapshot({ type: 'ring', version: 2, state: {} }, 'ring', 1)).toThrow(expect.objectContaining({ code: 'snapshot.version' }));
    expect(() => checkSnapshot({ type: 'lapic', version: 1, state: {} }, 'ring', 1)).toThrow(VirqError);
  });
});

describe('Histogram', () => {
  it('nearest-rank percentiles', () => {
    const h = new Histogram();
    for (const v of [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]) h.record(v);
    expect(h.percentile(50)).toBe(5);
    expect(h.percentile(99)).toBe(10);
    expect(h.percentile(10)).toBe(1);
    expect(h.buckets(5)).toEqual([4, 5, 1]);
    expect(new Histogram().percentile(50)).toBeNaN();
  });
});

describe('KvmRoutingTable (QEMU kvm_irqchip_* route bookkeeping)', () => {
  function api(irqfdCapable = true) {
    const tables: GsiRoute[][] = [];
    const vm: VmInterruptApi = {
      irqfdCapable,
      ioeventfdCapable: true,
      setGsiRouting: (e) => void tables.push([...e]),
      irqfd: () => undefined,
      ioeventfd: () => undefined,
      signalMsi: () => 1,
      irqLine: () => 1,
    };
    return { vm, tables };
  }

  it('allocates virqs above the irqchip pins and commits the whole table at once', () => {
    const { vm, tables } = api();
    const t = new KvmRoutingTable(vm, 24);
    for (let pin = 0; pin < 24; pin++) t.addIrqchipRoute(pin, 2, pin);
    const v1 = t.addMsiRoute(msiMessage(0xfee00000, 0x31));
    const v2 = t.addMsiRoute(msiMessage(0xfee01000, 0x32));
    expect([v1, v2]).toEqual([24, 25]);
    expect(tables).toHaveLength(0);
    t.commit();
    expect(tables[0]).toHaveLength(26);
    t.updateMsiRoute(v1, msiMessage(0xfee02000, 0x33));
    t.releaseVirq(v2);
    expect(t.addMsiRoute(msiMessage(0xfee00000, 0x40))).toBe(25);
    t.commit();
    expect(tables[1]!.find((e) => e.gsi === 24)).toMatchObject({ type: 'msi', msi: { addressLo: 0xfee02000, data: 0x33 } });
    expect(t.commits).toBe(2);
    expect(() => t.updateMsiRoute(3, msiMessage(0xfee00000, 1))).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
  });

  it('refuses MSI routes without an irqfd-capable in-kernel irqchip', () => {
    const t = new KvmRoutingTable(api(false).vm, 24);
    expect(() => t.addMsiRoute(msiMessage(0xfee00000, 0x31))).toThrow(expect.objectContaining({ errno: 'ENOSYS' }));
  });
});

describe('createSimContext', () => {
  it('bundles a seeded scheduler, costs and a trace bus', () => {
    const ctx = createSimContext({ seed: 9, costs: { hostIpi: 1234 } });
    expect(ctx.scheduler.seed).toBe(9);
    expect(ctx.costs.ns.hostIpi).toBe(1234);
    expect(ctx.trace.scheduler).toBe(ctx.scheduler);
  });
});
