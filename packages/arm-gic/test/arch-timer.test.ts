import { TraceRecorder, formatFtrace } from '@virq/core';
import { KvmArchTimer, VTIMER_PPI } from '@virq/arm-gic';
import { armMachine, fnsOf, inOrder } from './helpers.js';

const PERIOD = 100_000; // a 10 kHz tick, so a test covers several periods quickly

/** A guest whose tick handler reprograms the next deadline, one period after the last. */
function tickingGuest(r: ReturnType<typeof armMachine>, timer: KvmArchTimer, vcpu: number, first: number): { acks: number[]; deadlines: number[] } {
  const { ctx, vm } = r;
  const acks: number[] = [];
  const deadlines = [first];
  vm.guestDriver.enablePpi(vcpu, VTIMER_PPI);
  vm.vcpus[vcpu].onInterrupt(VTIMER_PPI, () => {
    acks.push(ctx.scheduler.now);
    const next = deadlines[deadlines.length - 1]! + PERIOD;
    deadlines.push(next);
    timer.program(vcpu, next); // arch_timer_handler_virt → the clockevent's next event
  });
  timer.program(vcpu, first);
  return { acks, deadlines };
}

describe('KVM arch timer: the guest EL1 virtual timer (arch_timer.c)', () => {
  test('a busy guest: the comparator fires PPI 27 on its CPU, the vCPU exits (IRQ), kvm_arch_timer_handler injects the mapped PPI, the guest EOI deactivates the physical one', () => {
    const r = armMachine('v3', { numVcpus: 1 });
    const { ctx, vm, host } = r;
    vm.vcpus[0].guest.idleWithWfi = false;
    const timer = new KvmArchTimer(vm);
    ctx.scheduler.runUntil(10_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    const g = tickingGuest(r, timer, 0, 50_000);
    ctx.scheduler.runUntil(50_000 + 4 * PERIOD + 50_000);
    if (process.env['DBG']) console.log(formatFtrace(rec.events));
    // five deadlines passed (50 µs + 4 periods): five ticks, each taken after its deadline
    expect(g.acks).toHaveLength(5);
    g.acks.forEach((t, i) => expect(t).toBeGreaterThan(g.deadlines[i]!));
    expect(vm.exitCounts().IRQ).toBe(5); // one host-interrupt exit per tick, no maintenance exits
    expect(vm.vcpus[0].stats.maintenance).toBe(0);
    expect(timer.stats(0)).toEqual({ injections: 5, bgWakeups: 0 });
    const fns = fnsOf(rec.events);
    expect(inOrder(fns, ['arch_timer_set_next_event_virt', 'kvm_exit', 'gic_handle_irq', 'kvm_timer_update_irq', 'kvm_vgic_inject_irq', 'vgic_v3_populate_lr', 'kvm_entry',
      'gic_handle_irq', 'arch_timer_set_next_event_virt', 'gic_eoi_irq', 'hw:gic_deactivate_physical'])).toBe(true);
    expect(rec.events.find((e) => e.fn === 'kvm_timer_update_irq')!.caller).toBe('kvm_arch_timer_handler');
    const handler = rec.events.find((e) => e.fn === 'generic_handle_domain_irq')!;
    expect(handler.args['handler']).toBe('kvm_arch_timer_handler');
    expect(host.isActive(VTIMER_PPI, 0)).toBe(false);
    rec.stop();
  });

  test('an idle guest in WFI: kvm_timer_vcpu_put arms the background timer at CVAL, kvm_bg_timer_expire wakes the vCPU, kvm_timer_vcpu_load injects — no host interrupt, no IRQ exit', () => {
    const r = armMachine('v3', { numVcpus: 1 });
    const { ctx, vm, host } = r;
    const timer = new KvmArchTimer(vm);
    ctx.scheduler.runUntil(10_000);
    expect(vm.vcpus[0].state).toBe('blocked');
    const rec = new TraceRecorder(ctx.trace.events$);
    // the guest programs its tick from its idle loop: it runs once (after a wake-up) before the next WFI
    let g: { acks: number[]; deadlines: number[] } | undefined;
    vm.vcpus[0].guestRun(() => (g = tickingGuest(r, timer, 0, 50_000)));
    vm.vcpus[0].wakeUp('test');
    ctx.scheduler.runUntil(50_000 + 2 * PERIOD + 50_000);
    if (process.env['DBG']) console.log(formatFtrace(rec.events));
    expect(g!.acks).toHaveLength(3);
    const wake = ctx.costs.ns.threadWakeup;
    g!.acks.forEach((t, i) => {
      expect(t).toBeGreaterThanOrEqual(g!.deadlines[i]! + wake); // the wake-up latency is paid
    });
    expect(vm.exitCounts().IRQ).toBe(0);
    expect(vm.exitCounts().WFx).toBeGreaterThanOrEqual(3);
    expect(timer.stats(0)).toEqual({ injections: 3, bgWakeups: 3 });
    const bg = rec.events.filter((e) => e.fn === 'kvm_bg_timer_expire').map((e) => e.time);
    expect(bg).toEqual(g!.deadlines.slice(0, 3)); // the hrtimer expires exactly at each CVAL
    const fns = fnsOf(rec.events);
    expect(inOrder(fns, ['kvm_vcpu_halt', 'soft_timer_start', 'kvm_bg_timer_expire', 'kvm_vcpu_wake_up', 'kvm_vcpu_wakeup', 'kvm_timer_update_irq', 'kvm_vgic_inject_irq', 'kvm_entry',
      'gic_handle_irq', 'gic_eoi_irq'])).toBe(true);
    expect(rec.events.find((e) => e.fn === 'kvm_timer_update_irq')!.caller).toBe('kvm_timer_vcpu_load_gic');
    // load marked the physical PPI active while the virtual one was pending; the HW EOI cleared it
    expect(host.isActive(VTIMER_PPI, 0)).toBe(false);
    expect(rec.events.some((e) => e.fn === 'generic_handle_domain_irq' && e.args['intid'] === VTIMER_PPI)).toBe(false);
    rec.stop();
  });

  test('a stopped timer arms nothing: the blocked vCPU stays blocked', () => {
    const r = armMachine('v3', { numVcpus: 1 });
    const { ctx, vm } = r;
    const timer = new KvmArchTimer(vm);
    ctx.scheduler.runUntil(10_000);
    vm.vcpus[0].guestRun(() => {
      timer.program(0, 30_000);
      timer.program(0, undefined); // arch_timer_shutdown_virt
    });
    vm.vcpus[0].wakeUp('test');
    ctx.scheduler.runUntil(500_000);
    expect(vm.vcpus[0].state).toBe('blocked');
    expect(timer.stats(0)).toEqual({ injections: 0, bgWakeups: 0 });
    expect(() => timer.program(0, -5)).toThrow(/non-negative integer/);
    expect(() => timer.program(3, 5)).toThrow(/does not exist/);
  });

  test('two vCPUs on two CPUs tick independently; each CPU\'s PPI reaches only the vCPU loaded there', () => {
    const r = armMachine('v3', { numVcpus: 2 });
    const { ctx, vm } = r;
    for (const v of vm.vcpus) v.guest.idleWithWfi = false;
    const timer = new KvmArchTimer(vm);
    ctx.scheduler.runUntil(10_000);
    const a = tickingGuest(r, timer, 0, 40_000);
    const b = tickingGuest(r, timer, 1, 90_000);
    ctx.scheduler.runUntil(400_000);
    expect(a.acks).toHaveLength(4); // 40, 140, 240, 340 µs
    expect(b.acks).toHaveLength(4); // 90, 190, 290, 390 µs
    expect(timer.stats(0).injections).toBe(4);
    expect(timer.stats(1).injections).toBe(4);
  });
});
