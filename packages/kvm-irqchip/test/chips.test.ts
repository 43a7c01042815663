import fc from 'fast-check';
import { EventFd, msiMessage, VirqError } from '@virq/core';
import { APIC, IOAPIC_DEFAULT_BASE_ADDRESS, MP_STATE, RTC_GSI, type KvmIrqfdView } from '@virq/kvm-irqchip';
import { enableLapics, makeVm, patchLapic, setRedir } from './helpers.js';

const IOREGSEL = IOAPIC_DEFAULT_BASE_ADDRESS;
const IOWIN = IOAPIC_DEFAULT_BASE_ADDRESS + 0x10;

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof VirqError) return e.errno;
    throw e;
  }
  return undefined;
}

describe('8259 pair (FACTS §7.1)', () => {
  test('ICW1–ICW4 programming, then an INTA returns irq_base + irq and moves IRR to ISR', () => {
    const { vm } = makeVm();
    for (const [port, v] of [[0x20, 0x11], [0x21, 0x30], [0x21, 0x04], [0x21, 0x01]] as const) vm.guestAccess(0, 'out', port, v);
    const m = vm.pic!.pics[0];
    expect([m.irq_base, m.init_state, m.init4, m.imr]).toEqual([0x30, 0, 1, 0]);
    expect(vm.irqLine(1, true)).toBe(1); // IOAPIC pin 1 is masked: only the PIC counts
    expect(vm.pic!.readIrq()).toBe(0x31);
    expect([m.irr, m.isr]).toEqual([0, 0x02]);
  });

  test('OCW3 selects ISR for reads of the command port; specific EOI clears one ISR bit', () => {
    const { vm } = makeVm();
    vm.setIrqchipPic(0, { isr: 0x28 });
    vm.guestAccess(0, 'out', 0x20, 0x0b);
    expect(vm.guestAccess(0, 'in', 0x20, 0).value).toBe(0x28);
    vm.guestAccess(0, 'out', 0x20, 0x63); // specific EOI, IRQ 3
    expect(vm.guestAccess(0, 'in', 0x20, 0).value).toBe(0x20);
  });

  test('rotate on non-specific EOI sets priority_add to irq + 1', () => {
    const { vm } = makeVm();
    vm.setIrqchipPic(0, { isr: 0x10 });
    vm.guestAccess(0, 'out', 0x20, 0xa0);
    expect(vm.pic!.pics[0].priority_add).toBe(5);
    expect(vm.pic!.pics[0].isr).toBe(0);
  });

  test('ELCR port writes are masked by elcr_mask (0xF8 master, 0xDE slave)', () => {
    const { vm } = makeVm();
    vm.guestAccess(0, 'out', 0x4d0, 0xff);
    vm.guestAccess(0, 'out', 0x4d1, 0xff);
    expect([vm.guestAccess(0, 'in', 0x4d0, 0).value, vm.guestAccess(0, 'in', 0x4d1, 0).value]).toEqual([0xf8, 0xde]);
  });

  test('a slave interrupt cascades through master IR2: INTA gives the slave vector, ISR bit 2 on the master', () => {
    const { vm } = makeVm();
    vm.setIrqchipPic(1, { irq_base: 0x70 });
    vm.setIrqchipPic(0, { irq_base: 0x08 });
    vm.irqLine(12, true);
    expect(vm.pic!.hasInterrupt()).toBe(true);
    expect(vm.pic!.readIrq()).toBe(0x74);
    expect(vm.pic!.pics[0].isr).toBe(0x04);
    expect(vm.pic!.pics[1].isr).toBe(0x10);
  });

  test('raising a PIC line wakes the first vCPU whose LAPIC accepts ExtINT (the BSP, LVT0 = ExtINT)', () => {
    const { vm } = makeVm();
    vm.irqLine(3, true);
    expect(vm.vcpu(0)!.kicks).toBe(1);
    expect(vm.vcpu(1)!.kicks).toBe(0);
    expect(vm.vcpu(0)!.hasPendingInterrupt()).toBe(true);
  });
});

describe('IOAPIC (FACTS §7.2)', () => {
  test('IOREGSEL/IOWIN writes a redirection entry; Remote IRR and delivery status are read-only', () => {
    const { vm } = makeVm();
    vm.guestAccess(0, 'mmio_write', IOREGSEL, 0x10 + 2 * 5);
    vm.guestAccess(0, 'mmio_write', IOWIN, 0x8035 | (1 << 13) | (1 << 14) | (1 << 12));
    vm.guestAccess(0, 'mmio_write', IOREGSEL, 0x11 + 2 * 5);
    vm.guestAccess(0, 'mmio_write', IOWIN, 0x03000000);
    const e = vm.ioapic!.toJson().redirtbl[5]!;
    expect([e.vector, e.trigger, e.polarity, e.remote_irr, e.delivery_status, e.dest, e.mask]).toEqual([0x35, 1, 1, 0, 0, 3, 0]);
  });

  test('unmasking a level pin whose line is high delivers at once and sets Remote IRR', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    setRedir(vm, { 20: { vector: 0x50, trigger: 1, mask: 1, dest: 2 } });
    expect(vm.irqLine(20, true)).toBe(-1);
    vm.guestAccess(0, 'mmio_write', IOREGSEL, 0x10 + 2 * 20);
    vm.guestAccess(0, 'mmio_write', IOWIN, 0x8050);
    expect(vm.vcpu(2)!.lapic.toJson().irr).toEqual([0x50]);
    expect(vm.ioapic!.toJson().redirtbl[20]!.remote_irr).toBe(1);
  });

  test('EOI of a level vector re-delivers while the line is high; after 10000 in a row KVM waits HZ/100', () => {
    const { ctx, vm } = makeVm();
    enableLapics(vm);
    setRedir(vm, { 19: { vector: 0x43, trigger: 1, dest: 0 } });
    vm.irqLine(19, true);
    const l = vm.vcpu(0)!.lapic;
    const ackEoi = (): void => {
      l.ackInterrupt(0x43);
      l.setEoi();
    };
    for (let i = 0; i < 9999; i++) ackEoi();
    expect(l.toJson().irr).toEqual([0x43]);
    ackEoi(); // the 10000th successive EOI: re-injection deferred
    expect(l.toJson().irr).toEqual([]);
    expect(vm.ioapic!.toJson().redirtbl[19]!.remote_irr).toBe(0);
    ctx.scheduler.runUntil(ctx.scheduler.now + 9_999_999);
    expect(l.toJson().irr).toEqual([]);
    ctx.scheduler.runUntil(ctx.scheduler.now + 1);
    expect(l.toJson().irr).toEqual([0x43]);
  });

  test('RTC (GSI 8) with KVM_IRQ_LINE_STATUS is coalesced until the destination EOIs', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    vm.setIrqchipPic(1, { imr: 1 });
    setRedir(vm, { [RTC_GSI]: { vector: 0x48, dest: 0 } });
    expect(vm.irqLine(8, true)).toBe(1);
    vm.irqLine(8, false);
    expect(vm.irqLine(8, true)).toBe(0);
    vm.irqLine(8, false);
    const l = vm.vcpu(0)!.lapic;
    l.ackInterrupt(0x48);
    l.setEoi();
    expect(vm.irqLine(8, true)).toBe(1);
  });

  test('line state is the OR of irq sources (KVM irq_states): property', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.boolean()), { maxLength: 30 }), (ops) => {
        const { vm } = makeVm({ nvcpus: 1 });
        const levels = new Map<number, boolean>();
        for (const [src, lvl] of ops) {
          vm.setIrq(17, lvl, src);
          levels.set(src, lvl);
        }
        const any = [...levels.values()].some((x) => x);
        return ((vm.ioapic!.irr >> 17) & 1) === (any ? 1 : 0);
      }),
    );
  });
});

describe('LAPIC (FACTS §7.3)', () => {
  test('INIT IPI latches INIT; KVM_GET_MP_STATE processes it: AP → INIT_RECEIVED with a reset LAPIC; SIPI then makes it RUNNABLE', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    vm.signalMsi(msiMessage(0xfee01000, 0x41));
    vm.guestAccess(0, 'mmio_write', 0xfee00310, 1 << 24);
    vm.guestAccess(0, 'mmio_write', 0xfee00300, 0x4500);
    const v1 = vm.vcpu(1)!;
    expect(v1.getEvents().latched_init).toBe(1);
    expect(v1.getMpState()).toBe(MP_STATE.INIT_RECEIVED);
    const j = v1.lapic.toJson();
    expect([j.spiv, j.irr, j.ldr, j.id]).toEqual([0xff, [], 0, 1]);
    vm.guestAccess(0, 'mmio_write', 0xfee00300, 0x4610);
    expect(v1.getMpState()).toBe(MP_STATE.RUNNABLE);
  });

  test('clearing SPIV bit 8 masks every LVT; LVT writes while disabled stay masked', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    vm.guestAccess(0, 'mmio_write', 0xfee00360, 0x400);
    expect(vm.vcpu(0)!.lapic.toJson().lvt1).toBe(0x400);
    vm.guestAccess(0, 'mmio_write', 0xfee000f0, 0xff);
    vm.guestAccess(0, 'mmio_write', 0xfee00370, 0x33);
    vm.guestAccess(0, 'mmio_write', 0xfee000f0, 0x1ff);
    const j = vm.vcpu(0)!.lapic.toJson();
    expect([j.lvt1, j.lvterr, j.lvt0 & 0x10000]).toEqual([0x10400, 0x10033, 0x10000]);
  });

  test('LDR keeps bits 31:24, DFR keeps its low 28 bits set, SPIV is masked to 0x3FF', () => {
    const { vm } = makeVm();
    vm.guestAccess(0, 'mmio_write', 0xfee000d0, 0x12345678);
    vm.guestAccess(0, 'mmio_write', 0xfee000e0, 0);
    vm.guestAccess(0, 'mmio_write', 0xfee000f0, 0xffffffff);
    const j = vm.vcpu(0)!.lapic.toJson();
    expect([j.ldr, j.dfr, j.spiv]).toEqual([0x12000000, 0x0fffffff, 0x3ff]);
  });

  test('PPR = max(TPR, ISR class); an IRR vector is deliverable only above PPR', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    const l = vm.vcpu(0)!.lapic;
    vm.guestAccess(0, 'mmio_write', 0xfee00080, 0x50);
    vm.signalMsi(msiMessage(0xfee00000, 0x55));
    expect(l.hasInterrupt()).toBe(-1);
    vm.signalMsi(msiMessage(0xfee00000, 0x61));
    expect(l.hasInterrupt()).toBe(0x61);
    l.ackInterrupt(0x61);
    expect(vm.guestAccess(0, 'mmio_read', 0xfee000a0, 0).value).toBe(0x60);
  });

  test('APICv: __apic_accept_irq posts through the installed vmx_deliver_posted_interrupt instead of IRR + kick', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    const posted: [number, number][] = [];
    vm.setApicv(true);
    vm.setPostedInterruptDelivery((vcpu, vector) => (posted.push([vcpu, vector]), true));
    expect(vm.signalMsi(msiMessage(0xfee02000, 0x71))).toBe(1);
    expect(posted).toEqual([[2, 0x71]]);
    expect(vm.vcpu(2)!.lapic.toJson().irr).toEqual([]);
    expect(vm.vcpu(2)!.kicks).toBe(0);
    vm.vcpu(2)!.syncPirToIrr([0x71]);
    expect(vm.vcpu(2)!.lapic.toJson().irr).toEqual([0x71]);
  });
});

describe('LAPIC irr_pending shortcut', () => {
  test('property: whatever sets or clears IRR (accept, PIR sync, ack, KVM_SET_LAPIC, snapshot restore), the highest IRR vector is the one a full scan finds', () => {
    type Op = { k: 'msi'; v: number } | { k: 'pir'; v: number } | { k: 'ack' } | { k: 'eoi' } | { k: 'drain' } | { k: 'set-lapic'; v: number } | { k: 'restore' };
    const op = fc.oneof(
      fc.record({ k: fc.constant('msi' as const), v: fc.integer({ min: 0x10, max: 0xff }) }),
      fc.record({ k: fc.constant('pir' as const), v: fc.integer({ min: 0x10, max: 0xff }) }),
      fc.record({ k: fc.constant('ack' as const) }),
      fc.record({ k: fc.constant('eoi' as const) }),
      fc.record({ k: fc.constant('drain' as const) }),
      fc.record({ k: fc.constant('set-lapic' as const), v: fc.integer({ min: 0x10, max: 0xff }) }),
      fc.record({ k: fc.constant('restore' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops: Op[]) => {
        const { vm } = makeVm({ nvcpus: 1 });
        enableLapics(vm);
        const lapic = vm.vcpu(0)!.lapic;
        const scan = (): number => {
          for (let w = 7; w >= 0; w--) {
            const x = lapic.regs[(APIC.IRR >> 2) + (w << 2)]!;
            if (x !== 0) return (w << 5) + 31 - Math.clz32(x);
          }
          return -1;
        };
        let snap: ReturnType<typeof vm.snapshot> | undefined;
        for (const o of ops) {
          if (o.k === 'msi') vm.signalMsi(msiMessage(0xfee00000, o.v));
          else if (o.k === 'pir') lapic.setIrr(o.v);
          else if (o.k === 'ack') {
            const v = lapic.hasInterrupt();
            if (v !== -1) lapic.ackInterrupt(v);
          } else if (o.k === 'eoi') lapic.regWrite(APIC.EOI, 0);
          else if (o.k === 'drain') {
            // take and complete everything: IRR ends empty (and known to be)
            for (let v = lapic.hasInterrupt(); v !== -1; v = lapic.hasInterrupt()) lapic.ackInterrupt(v);
            while (lapic.findHighestIsr() !== -1) lapic.regWrite(APIC.EOI, 0);
          }
          else if (o.k === 'set-lapic') {
            const page = vm.getLapic(0);
            page[(APIC.IRR >> 2) + ((o.v >> 5) << 2)]! |= 1 << (o.v & 31);
            vm.setLapic(0, page);
          } else {
            if (snap === undefined) snap = vm.snapshot();
            else {
              vm.restore(snap);
              snap = undefined;
            }
          }
          expect(lapic.findHighestIrr()).toBe(scan());
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('KVM_SET_GSI_ROUTING validation (FACTS §5.3)', () => {
  test.each([
    ['irqchip 3', [{ gsi: 1, type: 'irqchip' as const, irqchip: 3, pin: 0 }]],
    ['PIC pin 8', [{ gsi: 1, type: 'irqchip' as const, irqchip: 0, pin: 8 }]],
    ['IOAPIC pin 24', [{ gsi: 1, type: 'irqchip' as const, irqchip: 2, pin: 24 }]],
    ['GSI 4096', [{ gsi: 4096, type: 'irqchip' as const, irqchip: 2, pin: 1 }]],
    ['flags on an irqchip entry', [{ gsi: 1, type: 'irqchip' as const, irqchip: 2, pin: 1, flags: 1 }]],
    ['two IOAPIC pins on one GSI', [{ gsi: 1, type: 'irqchip' as const, irqchip: 2, pin: 1 }, { gsi: 1, type: 'irqchip' as const, irqchip: 2, pin: 2 }]],
    ['MSI plus irqchip on one GSI', [{ gsi: 1, type: 'irqchip' as const, irqchip: 2, pin: 1 }, { gsi: 1, type: 'msi' as const, msi: msiMessage(0xfee00000, 0x30) }]],
  ])('%s → EINVAL, and the previous table stays', (_n, entries) => {
    const { vm } = makeVm();
    expect(errnoOf(() => vm.setGsiRouting(entries))).toBe('EINVAL');
    expect(vm.routesOf(4)).toHaveLength(2);
  });

  test('more than KVM_MAX_IRQ_ROUTES entries → EINVAL; table flags → EINVAL', () => {
    const { vm } = makeVm();
    const many = Array.from({ length: 4097 }, (_, i) => ({ gsi: i % 4096, type: 'msi' as const, msi: msiMessage(0xfee00000, 0x30) }));
    expect(errnoOf(() => vm.setGsiRouting(many))).toBe('EINVAL');
    expect(errnoOf(() => vm.setGsiRouting([], 1))).toBe('EINVAL');
  });

  test('PIC master + slave + IOAPIC on one GSI is accepted', () => {
    const { vm } = makeVm();
    vm.setGsiRouting([{ gsi: 5, type: 'irqchip', irqchip: 0, pin: 5 }, { gsi: 5, type: 'irqchip', irqchip: 1, pin: 5 }, { gsi: 5, type: 'irqchip', irqchip: 2, pin: 5 }]);
    expect(vm.routesOf(5)).toHaveLength(3);
  });
});

describe('irqfd (FACTS §6)', () => {
  test('resampling irqfd on a level IOAPIC pin: asserted on source 1; EOI de-asserts and signals the resamplefd', () => {
    const { ctx, vm } = makeVm();
    enableLapics(vm);
    setRedir(vm, { 20: { vector: 0x50, trigger: 1, dest: 0 } });
    const fd = new EventFd(ctx.scheduler, { name: 'intx' });
    const rfd = new EventFd(ctx.scheduler, { name: 'intx-resample' });
    vm.irqfd({ fd, gsi: 20, resampleFd: rfd });
    const w = ctx.scheduler.actor({ name: 'vfio', kind: 'kernel' });
    ctx.scheduler.after(0, w, () => fd.write(1));
    ctx.scheduler.runUntilIdle();
    expect(vm.ioapic!.lines[20]!.sourceLevel(1)).toBe(true);
    // a userspace lower does not drop the resample source (per-source OR)
    vm.irqLine(20, false);
    expect((vm.ioapic!.irr >> 20) & 1).toBe(1);
    const l = vm.vcpu(0)!.lapic;
    l.ackInterrupt(0x50);
    l.setEoi();
    expect(rfd.count).toBe(1n);
    expect((vm.ioapic!.irr >> 20) & 1).toBe(0);
  });

  test('deassign: no further injection; bypass hooks see assign, routing update and deassign', () => {
    const { ctx, vm } = makeVm();
    enableLapics(vm);
    const seen: string[] = [];
    vm.setIrqfdBypassHooks({
      irqfdAssigned: (i: KvmIrqfdView) => seen.push(`add ${i.gsi} ${i.route?.type}`),
      irqfdDeassigned: (i: KvmIrqfdView) => seen.push(`del ${i.gsi}`),
      irqfdRoutingUpdated: (i: KvmIrqfdView) => seen.push(`upd ${i.gsi} ${i.route?.type}`),
    });
    vm.setGsiRouting([{ gsi: 40, type: 'msi', msi: msiMessage(0xfee01000, 0x44) }]);
    const fd = new EventFd(ctx.scheduler, { name: 'call' });
    vm.irqfd({ fd, gsi: 40 });
    vm.setGsiRouting([{ gsi: 40, type: 'irqchip', irqchip: 2, pin: 3 }, { gsi: 40, type: 'irqchip', irqchip: 0, pin: 3 }]);
    vm.irqfd({ fd, gsi: 40, deassign: true });
    const w = ctx.scheduler.actor({ name: 'w', kind: 'kernel' });
    ctx.scheduler.after(0, w, () => fd.write(1));
    ctx.scheduler.runUntilIdle();
    expect(seen).toEqual(['add 40 msi', 'upd 40 undefined', 'del 40']);
    expect(fd.count).toBe(1n);
    expect(vm.vcpu(1)!.lapic.toJson().irr).toEqual([]);
  });
});

describe('KVM_IOEVENTFD validation (FACTS §6.6)', () => {
  test('length, overlap and deassign errors', () => {
    const { ctx, vm } = makeVm();
    const a = new EventFd(ctx.scheduler);
    const b = new EventFd(ctx.scheduler);
    expect(errnoOf(() => vm.kvmIoeventfd({ fd: a, addr: 0x100, len: 3, flags: 2 }))).toBe('EINVAL');
    expect(errnoOf(() => vm.kvmIoeventfd({ fd: a, addr: 0x100, len: 0, flags: 3 }))).toBe('EINVAL');
    vm.ioeventfd({ fd: a, addr: 0x100, len: 2, space: 'pio', datamatch: 1 });
    vm.ioeventfd({ fd: b, addr: 0x100, len: 2, space: 'pio', datamatch: 2 });
    expect(errnoOf(() => vm.ioeventfd({ fd: b, addr: 0x100, len: 2, space: 'pio' }))).toBe('EEXIST');
    expect(errnoOf(() => vm.ioeventfd({ fd: b, addr: 0x100, len: 0, space: 'pio' }))).toBe('EEXIST');
    vm.ioeventfd({ fd: b, addr: 0x100, len: 4, space: 'pio', datamatch: 2 });
    vm.ioeventfd({ fd: b, addr: 0x100, len: 2, space: 'mmio' });
    expect(errnoOf(() => vm.ioeventfd({ fd: a, addr: 0x100, len: 2, space: 'pio', datamatch: 7, deassign: true }))).toBe('ENOENT');
    vm.ioeventfd({ fd: a, addr: 0x100, len: 2, space: 'pio', datamatch: 1, deassign: true });
  });
});

test('a VM without the in-kernel irqchip refuses interrupt ioctls with KVM errnos', () => {
  const { ctx, vm } = makeVm({ irqchip: false });
  expect(errnoOf(() => vm.irqLine(4, true))).toBe('ENXIO');
  expect(errnoOf(() => vm.signalMsi(msiMessage(0xfee00000, 0x30)))).toBe('EINVAL');
  expect(errnoOf(() => vm.setGsiRouting([]))).toBe('EINVAL');
  expect(errnoOf(() => vm.irqfd({ fd: new EventFd(ctx.scheduler), gsi: 1 }))).toBe('EINVAL');
  expect(vm.irqfdCapable).toBe(false);
  expect(vm.vcpu(1)!.getMpState()).toBe(MP_STATE.RUNNABLE);
  expect(patchLapicErr(() => patchLapic(vm, 0, { [APIC.TASKPRI]: 1 }))).toBe('EINVAL');
});

function patchLapicErr(fn: () => void): string | undefined {
  return errnoOf(fn);
}

describe('snapshot / restore', () => {
  test('a restored VM carries on exactly like the original (level line, Remote IRR, ISR bookkeeping, routing)', () => {
    const build = (): ReturnType<typeof makeVm> => {
      const r = makeVm();
      enableLapics(r.vm);
      setRedir(r.vm, { 19: { vector: 0x43, trigger: 1, dest: 0 } });
      r.vm.setGsiRouting([{ gsi: 19, type: 'irqchip', irqchip: 2, pin: 19 }, { gsi: 30, type: 'msi', msi: msiMessage(0xfee02000, 0x61) }]);
      return r;
    };
    const a = build();
    a.vm.irqLine(19, true);
    a.vm.vcpu(0)!.lapic.ackInterrupt(0x43);
    const snap = JSON.parse(JSON.stringify(a.vm.snapshot())) as ReturnType<typeof a.vm.snapshot>;
    const b = makeVm();
    b.vm.restore(snap);
    expect(b.vm.getState()).toEqual(a.vm.getState());
    // same continuation on both: EOI re-delivers the still-asserted level line; GSI 30 is an MSI
    for (const { vm } of [a, b]) {
      vm.vcpu(0)!.lapic.setEoi();
      expect(vm.irqLine(30, true)).toBe(1);
    }
    expect(b.vm.getState()).toEqual(a.vm.getState());
    expect(b.vm.vcpu(0)!.lapic.toJson().irr).toEqual([0x43]);
    expect(() => makeVm({ nvcpus: 2 }).vm.restore(snap)).toThrow(/same shape/);
  });
});
