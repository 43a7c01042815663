import fc from 'fast-check';
import { createSimContext } from '@virq/core';
import { APIC_SV_ENABLE, CPU_INTERRUPT_HARD, CPU_INTERRUPT_POLL, KvmVm, QemuApic, QemuApicBus, QemuIoapic, QemuPcIrqchip, type QemuApicCpu } from '@virq/kvm-irqchip';

/** A CPU that records cpu_interrupt / cpu_reset_interrupt (`self` decides apic_update_irq's branch). */
class FakeCpu implements QemuApicCpu {
  request = 0;
  kicks = 0;
  constructor(public isSelf: boolean) {}
  interrupt(mask: number): void {
    this.request |= mask;
    if (!this.isSelf) this.kicks++;
  }
  resetInterrupt(mask: number): void {
    this.request &= ~mask;
  }
}

function apics(n: number): { bus: QemuApicBus; cpus: FakeCpu[]; apics: QemuApic[] } {
  const ctx = createSimContext({ seed: 1 });
  const bus = new QemuApicBus(ctx.trace.channel('qemu-irq'));
  const cpus = Array.from({ length: n }, () => new FakeCpu(true));
  const list = cpus.map((c, i) => new QemuApic(i, bus, c));
  for (const a of list) a.spuriousVec = APIC_SV_ENABLE | 0xff;
  return { bus, cpus, apics: list };
}

describe("QEMU's userspace local APIC (hw/intc/apic.c)", () => {
  it('apic_get_interrupt takes the highest IRR vector first and moves it to ISR', () => {
    const { apics: [a] } = apics(1);
    a!.setIrq(0x41, 0, 'test');
    a!.setIrq(0x81, 0, 'test');
    expect(a!.getInterrupt()).toBe(0x81);
    expect(a!.inService(0x81)).toBe(true);
    expect(a!.highestIrr()).toBe(0x41);
  });

  it('PPR blocks a vector of the same or a lower priority class than the one in service: apic_get_interrupt returns the spurious vector', () => {
    const { apics: [a], cpus: [c] } = apics(1);
    a!.setIrq(0x85, 0, 'test');
    expect(a!.getInterrupt()).toBe(0x85);
    a!.setIrq(0x8a, 0, 'test'); // same class (0x80): blocked while 0x85 is in service
    expect(a!.irqPending()).toBeLessThan(0);
    expect(c!.request & CPU_INTERRUPT_HARD).toBe(0);
    expect(a!.getInterrupt()).toBe(0xff);
    a!.setIrq(0x91, 0, 'test'); // higher class: deliverable (nested)
    expect(a!.irqPending()).toBe(0x91);
    // TPR 0xa0 blocks 0x91 too
    a!.regWrite(0x80, 0xa0);
    expect(a!.irqPending()).toBeLessThan(0);
  });

  it('apic_eoi clears the highest ISR bit; with the APIC software-disabled nothing is pending', () => {
    const { apics: [a] } = apics(1);
    a!.setIrq(0x41, 0, 'test');
    a!.setIrq(0x61, 0, 'test');
    a!.getInterrupt();
    a!.getInterrupt(); // nested: 0x61 then 0x41 (0x41 is below PPR 0x60 → spurious, still in IRR)
    expect(a!.inService(0x61)).toBe(true);
    a!.regWrite(0xb0, 0);
    expect(a!.inService(0x61)).toBe(false);
    expect(a!.getInterrupt()).toBe(0x41);
    a!.spuriousVec = 0xff;
    a!.setIrq(0x51, 0, 'test');
    expect(a!.irqPending()).toBe(0);
  });

  it('apic_update_irq from another thread raises CPU_INTERRUPT_POLL and kicks; on the CPU itself CPU_INTERRUPT_HARD', () => {
    const { apics: [a], cpus: [c] } = apics(1);
    c!.isSelf = false;
    a!.setIrq(0x41, 0, 'test');
    expect(c!.request).toBe(CPU_INTERRUPT_POLL);
    expect(c!.kicks).toBe(1);
    c!.isSelf = true;
    a!.pollIrq();
    expect(c!.request & CPU_INTERRUPT_HARD).toBe(CPU_INTERRUPT_HARD);
  });

  it('apic_send_msi: physical destination by APIC id, 0xff broadcast, logical flat mode by LDR', () => {
    const { bus, apics: l } = apics(3);
    expect(bus.sendMsi({ addressLo: 0xfee02000, addressHi: 0, data: 0x45 })).toBe(1);
    expect(l[2]!.highestIrr()).toBe(0x45);
    expect(bus.sendMsi({ addressLo: 0xfeeff000, addressHi: 0, data: 0x46 })).toBe(3);
    l[0]!.regWrite(0xd0, 0x01 << 24);
    l[1]!.regWrite(0xd0, 0x02 << 24);
    l[2]!.regWrite(0xd0, 0x04 << 24);
    expect(bus.sendMsi({ addressLo: 0xfee00000 | (0x06 << 12) | 4, addressHi: 0, data: 0x47 })).toBe(2);
    expect(l[0]!.highestIrr()).toBe(0x46);
    expect(l[1]!.highestIrr()).toBe(0x47);
  });

  it('apic_mem_write: offset 0 and beyond the first page are MSIs; a register write from a non-vCPU thread is dropped', () => {
    const { bus, apics: l } = apics(2);
    bus.memWrite(undefined, 0xfee01000, 0x52, 4);
    expect(l[1]!.highestIrr()).toBe(0x52);
    bus.memWrite(undefined, 0xfee00080, 0x40, 4); // TPR, no current CPU
    expect(l[0]!.tpr).toBe(0);
    bus.memWrite(l[0], 0xfee00080, 0x40, 4);
    expect(l[0]!.tpr).toBe(0x40);
  });
});

describe("QEMU's userspace IOAPIC (hw/intc/ioapic.c)", () => {
  function rig(): { io: QemuIoapic; bus: QemuApicBus; apic: QemuApic; sent: number[] } {
    const ctx = createSimContext({ seed: 1 });
    const bus = new QemuApicBus(ctx.trace.channel('qemu-irq'));
    const apic = new QemuApic(0, bus, new FakeCpu(true));
    apic.spuriousVec = APIC_SV_ENABLE | 0xff;
    const sent: number[] = [];
    const io = new QemuIoapic(ctx.trace.channel('qemu-irq'), (addr, data) => {
      sent.push(data & 0xff);
      bus.sendMsi({ addressLo: addr, addressHi: 0, data }, 'ioapic_service');
    });
    bus.eoiBroadcastHandler = (v) => io.eoiBroadcast(v);
    return { io, bus, apic, sent };
  }
  function program(io: QemuIoapic, pin: number, lo: number, dest = 0): void {
    io.memWrite(0xfec00000, 0x10 + pin * 2 + 1);
    io.memWrite(0xfec00010, dest << 24);
    io.memWrite(0xfec00000, 0x10 + pin * 2);
    io.memWrite(0xfec00010, lo);
  }

  it('a level pin: remote IRR set on delivery, a re-assertion coalesced, the EOI broadcast re-delivers while the line is high', () => {
    const { io, apic, sent } = rig();
    program(io, 10, 0x60 | (1 << 15)); // level, active high, fixed, physical dest 0
    io.setIrq(10, true);
    expect(sent).toEqual([0x60]);
    expect(io.remoteIrr(10)).toBe(true);
    expect(apic.tmr[0x60 >> 5]! & (1 << (0x60 & 31))).not.toBe(0); // level → TMR
    io.setIrq(10, true);
    expect(sent).toEqual([0x60]);
    expect(io.coalesced).toBe(1);
    expect(apic.getInterrupt()).toBe(0x60);
    apic.eoi(); // TMR set → ioapic_eoi_broadcast(0x60)
    expect(sent).toEqual([0x60, 0x60]);
    expect(apic.getInterrupt()).toBe(0x60);
    io.setIrq(10, false);
    apic.eoi();
    expect(io.remoteIrr(10)).toBe(false);
    expect(sent).toEqual([0x60, 0x60]);
  });

  it('an edge pin: a masked pin ignores the edge; ISA IRQ 0 lands on pin 2', () => {
    const { io, sent } = rig();
    program(io, 4, 0x34 | (1 << 16)); // masked edge
    io.setIrq(4, true);
    expect(sent).toEqual([]);
    program(io, 2, 0x30);
    io.setIrq(0, true);
    expect(sent).toEqual([0x30]);
    expect(io.remoteIrr(2)).toBe(false);
  });

  it('an EOI of an edge vector (TMR clear) is not broadcast', () => {
    const { io, apic, sent } = rig();
    program(io, 5, 0x70 | (1 << 15));
    io.setIrq(5, true);
    apic.setIrq(0x71, 0, 'test');
    apic.getInterrupt(); // 0x71 (edge) in service
    apic.eoi();
    expect(io.remoteIrr(5)).toBe(true);
    expect(sent).toEqual([0x70]);
  });
});

describe("QEMU's userspace 8259 ports (pic_ioport_write)", () => {
  it('ICW1–ICW4 set the vector base, OCW1 the mask; the masked line does not raise INT', () => {
    const ctx = createSimContext({ seed: 1 });
    const vm = new KvmVm(ctx, { nvcpus: 1, irqchip: false });
    const q = new QemuPcIrqchip(ctx, vm);
    for (const [p, v] of [[0x20, 0x11], [0x21, 0x20], [0x21, 0x04], [0x21, 0x01], [0x21, 0xff]] as const) q.pio(true, p, v);
    q.gsi.gsi[3]!.set(true, 'test');
    expect(q.pic.intLevel).toBe(false);
    q.pio(true, 0x21, 0xf7);
    expect(q.pic.intLevel).toBe(true);
    expect(q.pic.readIrq()).toBe(0x23);
    expect(q.pio(false, 0x21, 0)).toBe(0xf7);
  });
});

describe('properties', () => {
  it('whatever vectors are pending, apic_get_interrupt + apic_eoi hand them out highest first, each exactly once', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0x20, max: 0xff }), { minLength: 1, maxLength: 40 }), (vectors) => {
        const { apics: [a] } = apics(1);
        for (const v of vectors) a!.setIrq(v, 0, 'test');
        const order: number[] = [];
        for (let i = 0; i < vectors.length; i++) {
          const v = a!.getInterrupt();
          order.push(v);
          a!.eoi();
        }
        expect(order).toEqual([...vectors].sort((x, y) => y - x));
        expect(a!.highestIrr()).toBe(-1);
        expect(a!.getInterrupt()).toBe(-1);
      }),
    );
  });

  it('guest writes of any value anywhere in the APIC and IOAPIC windows never throw', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ apic: fc.boolean(), off: fc.integer({ min: 0, max: 0xfff }), val: fc.integer({ min: 0, max: 0xffffffff }), len: fc.constantFrom(1, 2, 4), write: fc.boolean() }), { maxLength: 60 }),
        (ops) => {
          const ctx = createSimContext({ seed: 1 });
          const vm = new KvmVm(ctx, { nvcpus: 2, irqchip: false });
          const q = new QemuPcIrqchip(ctx, vm);
          for (const o of ops) {
            const addr = (o.apic ? 0xfee00000 : 0xfec00000) + o.off;
            const r = q.mmio(o.off & 1, o.write, addr, o.len, o.val);
            expect(r).not.toBeUndefined();
          }
          for (let pin = 0; pin < 24; pin++) q.ioapic.setIrq(pin, true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
