import { IdleGuest, KVM_MIN_TIMER_PERIOD_US, KVM_PIT_FREQ, KvmPit, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { enableLapics, inOrder, makeVm, record, setRedir } from './helpers.js';

/** QEMU's PC routing (kvm_pc_setup_irq_routing): GSI 0 → PIC pin 0 and IOAPIC pin 2 (the ISA timer override); GSI 2 has no IOAPIC route. */
function pcTimerRouting(vm: ReturnType<typeof makeVm>['vm']): void {
  const routes = [{ gsi: 0, type: 'irqchip' as const, irqchip: 0, pin: 0 }, { gsi: 0, type: 'irqchip' as const, irqchip: 2, pin: 2 }];
  for (let g = 1; g < 24; g++) if (g !== 2) routes.push({ gsi: g, type: 'irqchip' as const, irqchip: 2, pin: g });
  vm.setGsiRouting(routes);
}

/**
 * A guest that masks the 8259s (it uses the IOAPIC, as Linux does), programs channel 0 (mode 2,
 * lo/hi, `count`) with three port writes, then idles.
 */
function pitProgrammingGuest(count: number, handler: IdleGuest): GuestModel {
  const boot: GuestOp[] = [
    { op: 'pio-write', port: 0x21, len: 1, value: 0xff },
    { op: 'pio-write', port: 0xa1, len: 1, value: 0xff },
    { op: 'pio-write', port: 0x43, len: 1, value: 0x34 }, // counter 0, LSB then MSB, mode 2, binary
    { op: 'pio-write', port: 0x40, len: 1, value: count & 0xff },
    { op: 'pio-write', port: 0x40, len: 1, value: (count >> 8) & 0xff },
  ];
  return { next: () => boot.shift() ?? { op: 'hlt' }, interrupt: (v, vec) => handler.interrupt(v, vec) };
}

describe('KVM in-kernel PIT (i8254.c, KVM_CREATE_PIT2)', () => {
  test('the guest programs channel 0 through the kernel PIO bus; pit_timer_fn → kvm-pit worker → GSI 0 → IOAPIC pin 2 → vCPU, every period', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    enableLapics(vm);
    pcTimerRouting(vm);
    setRedir(vm, { 2: { vector: 0x30, dest: 0 } });
    const pit = new KvmPit(vm, { ownerPid: 4321 });
    const count = 11932; // ≈ 10 ms at 1.193182 MHz (HZ=100)
    const idle = new IdleGuest(ctx.costs.ns.guestHandler);
    const v = vm.vcpu(0)!;
    v.setGuest(pitProgrammingGuest(count, idle));
    const rec = record(ctx);
    v.run();
    ctx.scheduler.runUntil(35_000_000);
    const period = Math.floor((count * 1e9) / KVM_PIT_FREQ);
    expect(pit.periodNs).toBe(period);
    expect(idle.taken.get(0x30)).toBe(3); // 10, 20, 30 ms
    expect(pit.stats.expiries).toBe(3);
    expect(pit.stats.injected).toBe(3);
    // the five port writes exited (IO_INSTRUCTION) and were handled in the kernel: nothing went to userspace
    expect(v.exits.get('IO_INSTRUCTION')).toBe(5);
    const fns = rec.functions();
    expect(inOrder(fns, ['handle_io', 'pit_ioport_write', 'create_pit_timer', 'pit_timer_fn', 'pit_do_work', 'kvm_set_irq', 'kvm_set_ioapic_irq', '__apic_accept_irq',
      'kvm_vcpu_kick', 'vmx_inject_irq', 'kvm_ioapic_update_eoi', 'kvm_notify_acked_irq', 'kvm_pit_ack_irq'])).toEqual([]);
    const fn = rec.events.filter((e) => e.fn === 'pit_timer_fn');
    const work = rec.events.filter((e) => e.fn === 'pit_do_work');
    expect(work[0]!.actor.name).toBe('kvm-pit/4321');
    expect(work[0]!.time - fn[0]!.time).toBe(ctx.costs.ns.threadWakeup);
    expect(fn.map((e) => e.time)).toEqual([1, 2, 3].map((k) => fn[0]!.time + (k - 1) * period));
    rec.stop();
  });

  test('reinject: ticks that expire before the guest acknowledges the last one wait in `pending` and are delivered one per EOI', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    enableLapics(vm);
    pcTimerRouting(vm);
    setRedir(vm, { 2: { vector: 0x30, dest: 0 } });
    const pit = new KvmPit(vm);
    // A guest whose timer handler runs 1.1 ms with interrupts off before its EOI: at a 1 ms
    // period the next tick always expires before the acknowledgement.
    let taken = 0;
    const slow: GuestModel = {
      ...pitProgrammingGuest(1193, new IdleGuest(0)),
      interrupt: () => {
        taken++;
        return [{ op: 'compute', ns: 1_100_000 }, { op: 'eoi' }];
      },
    };
    const v = vm.vcpu(0)!;
    v.setGuest(slow);
    v.run();
    ctx.scheduler.runUntil(10_500_000);
    expect(pit.stats.expiries).toBe(10);
    // every injection waited for the previous acknowledgement: none lost, none doubled
    expect(pit.stats.injected).toBe(taken);
    expect(taken).toBeLessThan(10);
    expect(pit.pendingTicks).toBe(10 - taken + 1); // the in-flight tick counts until its ack
  });

  test('without reinject an expiry that finds the line busy is simply another pulse (the IOAPIC coalesces it)', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    enableLapics(vm);
    pcTimerRouting(vm);
    setRedir(vm, { 2: { vector: 0x30, dest: 0 } });
    const pit = new KvmPit(vm, { reinject: false });
    const v = vm.vcpu(0)!;
    v.setGuest({ ...pitProgrammingGuest(1193, new IdleGuest(0)), interrupt: () => [{ op: 'compute', ns: 1_100_000 }, { op: 'eoi' }] });
    v.run();
    ctx.scheduler.runUntil(10_500_000);
    expect(pit.stats.injected).toBe(pit.stats.expiries);
    expect(pit.pendingTicks).toBe(0);
  });

  test('a periodic rate above 1/min_timer_period_us is held to it; the counters read back as the i8254 does', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    pcTimerRouting(vm);
    const pit = new KvmPit(vm);
    const io = (port: number, value?: number): number | undefined => {
      if (value !== undefined) {
        vm.pioBus.write(port, 1, value);
        return undefined;
      }
      return vm.pioBus.read(port, 1);
    };
    io(0x43, 0x34);
    io(0x40, 100); // 100 ticks ≈ 84 µs, below 200 µs
    io(0x40, 0);
    expect(pit.stats.clamped).toBe(1);
    expect(pit.periodNs).toBe(KVM_MIN_TIMER_PERIOD_US * 1000);
    // mode 0 on counter 2 (not a timer): latch and read back LSB/MSB
    io(0x43, 0xb0); // counter 2, LSB/MSB, mode 0
    io(0x42, 0x34);
    io(0x42, 0x12);
    ctx.scheduler.runUntil(ctx.scheduler.now + 1000); // ~1 input tick
    io(0x43, 0x80); // latch counter 2
    const lo = io(0x42)!;
    const hi = io(0x42)!;
    const latched = lo | (hi << 8);
    expect(latched).toBe(0x1234 - Math.floor((1000 * KVM_PIT_FREQ) / 1e9));
    // read-back of counter 2's status: mode 0, LSB/MSB access
    io(0x43, 0xe8); // read-back, status only (bit 5 set: no count), counter 2
    expect((io(0x42)! >> 1) & 7).toBe(0);
    expect((io(0x42)! >> 4) & 3).toBe(3);
  });
});
