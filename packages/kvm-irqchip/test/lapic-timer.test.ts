import { createSimContext, type TraceEvent } from '@virq/core';
import { APIC, KvmVm, MSR_IA32_TSC_DEADLINE, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';

const LOCAL_TIMER_VECTOR = 0xec;
const LVTT_TSCDEADLINE = 2 << 17;
const PERIOD = 100_000; // a 10 kHz tick

/** A vCPU with its APIC software-enabled and LVTT in TSC-deadline mode on `vector` (`lvtt` extra bits, e.g. masked). */
function deadlineVcpu(ctx: ReturnType<typeof createSimContext>, opts: { apicv?: boolean; tscDeadline?: boolean; lvtt?: number } = {}) {
  const vm = new KvmVm(ctx, { nvcpus: 1, cpuid: { tscDeadline: opts.tscDeadline ?? true } });
  vm.setApicv(opts.apicv ?? false);
  const v = vm.vcpu(0)!;
  v.lapic.regWrite(APIC.SPIV, 0x1ff);
  v.lapic.regWrite(APIC.LVTT, (opts.lvtt ?? 0) | LOCAL_TIMER_VECTOR | LVTT_TSCDEADLINE);
  return { vm, v };
}

/**
 * Linux's lapic-deadline clockevent: the tick handler (sysvec_apic_timer_interrupt) EOIs first,
 * then programs the next deadline (lapic_next_deadline: WRMSR IA32_TSC_DEADLINE). Between ticks
 * the guest either computes (`busy`) or halts.
 */
function tickingGuest(ctx: ReturnType<typeof createSimContext>, vm: KvmVm, busy: boolean, ticks: number): { ticked: number[]; vcpu: ReturnType<KvmVm['vcpu']> & object } {
  const v = vm.vcpu(0)!;
  v.lapic.regWrite(APIC.SPIV, 0x1ff);
  v.lapic.regWrite(APIC.LVTT, LOCAL_TIMER_VECTOR | LVTT_TSCDEADLINE);
  const ticked: number[] = [];
  let armed = false;
  const guest: GuestModel = {
    next: (): GuestOp => {
      if (!armed) {
        armed = true;
        return { op: 'msr-write', index: MSR_IA32_TSC_DEADLINE, value: BigInt(PERIOD) };
      }
      return busy && ticked.length < ticks ? { op: 'compute', ns: 7_000 } : { op: 'hlt' };
    },
    interrupt: (_c, vector): readonly GuestOp[] => {
      if (vector !== LOCAL_TIMER_VECTOR) return [{ op: 'eoi' }];
      ticked.push(ctx.scheduler.now);
      const ops: GuestOp[] = [{ op: 'eoi' }, { op: 'compute', ns: 500 }];
      if (ticked.length < ticks) ops.push({ op: 'msr-write', index: MSR_IA32_TSC_DEADLINE, value: BigInt(PERIOD * (ticked.length + 1)) });
      return ops;
    },
  };
  v.setGuest(guest);
  v.run();
  return { ticked, vcpu: v };
}

describe('LAPIC timer, TSC-deadline mode (KVM lapic.c)', () => {
  for (const apicv of [true, false]) {
    it(`a busy guest (APICv ${apicv ? 'on' : 'off'}): each tick is a PREEMPTION_TIMER exit handled in the fastpath, the re-arm a fastpath MSR_WRITE, no hrtimer`, () => {
      const ctx = createSimContext();
      const vm = new KvmVm(ctx, { nvcpus: 1, cpuid: { tscDeadline: true } });
      vm.setApicv(apicv);
      const trace: TraceEvent[] = [];
      ctx.trace.events$.subscribe((e) => trace.push(e));
      const { ticked, vcpu } = tickingGuest(ctx, vm, true, 20);
      ctx.scheduler.runUntil(PERIOD * 25);
      expect(ticked.length).toBe(20);
      // Each tick is taken at its deadline plus what the exit and entry cost, never before it.
      ticked.forEach((t, i) => {
        expect(t).toBeGreaterThanOrEqual(PERIOD * (i + 1));
        expect(t - PERIOD * (i + 1)).toBeLessThan(5_000);
      });
      const exits = vcpu.exits;
      expect(exits.get('PREEMPTION_TIMER')).toBe(20);
      expect(exits.get('MSR_WRITE')).toBe(20); // the first arming and 19 re-arms
      expect(vcpu.timer.stats).toEqual({ hv: 20, sw: 0, immediate: 0 });
      const fns = new Set(trace.map((e) => `${e.fn}<-${e.caller}`));
      expect(fns).toContain('handle_fastpath_preemption_timer<-vmx_exit_handlers_fastpath');
      expect(fns).toContain('handle_fastpath_set_msr_irqoff<-vmx_exit_handlers_fastpath');
      expect(fns).toContain('kvm_lapic_expired_hv_timer<-handle_fastpath_preemption_timer');
      // APICv: delivered at once from the exit (posted to itself); without: pending, injected by vcpu_run.
      if (apicv) expect(fns).toContain('kvm_apic_inject_pending_timer_irqs<-apic_timer_expired');
      else expect(fns).toContain('kvm_inject_pending_timer_irqs<-vcpu_run');
      expect(fns).not.toContain('apic_timer_fn<-__hrtimer_run_queues');
      // Fastpath exits re-enter from inside vcpu_enter_guest (EXIT_FASTPATH_REENTER_GUEST) unless a
      // request is pending: every WRMSR does (20); the tick's exit leaves one here (the pending
      // expiry without APICv; with APICv but no posted-interrupt backend installed, the IRR +
      // KVM_REQ_EVENT fallback) and goes through vcpu_run.
      const entries = trace.filter((e) => e.fn === 'vmx_vcpu_run').length;
      const loops = trace.filter((e) => e.fn === 'vcpu_enter_guest').length;
      expect(entries - loops).toBe(20);
    });
  }

  it('a halted guest: vcpu_block moves the deadline to the hrtimer; apic_timer_fn kicks the vCPU awake; no preemption-timer exits', () => {
    const ctx = createSimContext();
    const vm = new KvmVm(ctx, { nvcpus: 1, cpuid: { tscDeadline: true } });
    vm.setApicv(true);
    const trace: TraceEvent[] = [];
    ctx.trace.events$.subscribe((e) => trace.push(e));
    const { ticked, vcpu } = tickingGuest(ctx, vm, false, 10);
    ctx.scheduler.runUntil(PERIOD * 15);
    expect(ticked.length).toBe(10);
    expect(vcpu.exits.get('PREEMPTION_TIMER') ?? 0).toBe(0);
    expect(vcpu.exits.get('HLT')).toBeGreaterThanOrEqual(10);
    expect(vcpu.timer.stats.sw).toBe(10);
    const fns = trace.map((e) => `${e.fn}<-${e.caller}`);
    expect(fns).toContain('kvm_lapic_switch_to_sw_timer<-vcpu_block');
    expect(fns).toContain('kvm_hv_timer_state<-start_sw_timer');
    expect(fns).toContain('apic_timer_fn<-__hrtimer_run_queues');
    // Woken with the expiry pending, restart_apic_timer leaves the timer alone; vcpu_run injects the tick.
    expect(fns).toContain('kvm_lapic_switch_to_hv_timer<-vcpu_block');
    expect(fns).toContain('kvm_inject_pending_timer_irqs<-vcpu_run');
    // apic_timer_fn runs on the vCPU thread's (idle) host CPU, not on the vCPU thread.
    expect(trace.find((e) => e.fn === 'apic_timer_fn')!.actor?.name).toBe('swapper/1');
    expect(vcpu.blocked).toBe(true);
    expect(vcpu.timer.tscdeadline).toBe(0);
  });

  it('a deadline already passed expires at once (start_hv_timer); a masked LVTT delivers nothing; a mode change cancels the timer', () => {
    const ctx = createSimContext();
    const { v } = deadlineVcpu(ctx);
    ctx.scheduler.runUntil(1_000);
    expect(v.setMsr(MSR_IA32_TSC_DEADLINE, 500n)).toBe(1);
    expect(v.timer.stats.immediate).toBe(1);
    expect(v.timer.pending).toBe(1); // no APICv: left for vcpu_run to inject
    v.timer.injectIfPending();
    expect(v.lapic.findHighestIrr()).toBe(LOCAL_TIMER_VECTOR);
    // Masked: the expiry is noted but nothing reaches IRR.
    const w = deadlineVcpu(ctx, { lvtt: 0x10000 }).v;
    w.setMsr(MSR_IA32_TSC_DEADLINE, 10n);
    expect(w.timer.hasPending()).toBe(false);
    // Without TSC-deadline mode (no CPUID bit, or one-shot mode) the MSR is ignored.
    const x = deadlineVcpu(ctx, { tscDeadline: false }).v;
    x.setMsr(MSR_IA32_TSC_DEADLINE, 5_000_000n);
    expect(x.timer.tscdeadline).toBe(0);
    // Leaving TSC-deadline mode cancels an armed deadline.
    v.setMsr(MSR_IA32_TSC_DEADLINE, 9_000_000n);
    expect(v.timer.tscdeadline).toBe(9_000_000);
    v.lapic.regWrite(APIC.LVTT, LOCAL_TIMER_VECTOR);
    expect(v.timer.tscdeadline).toBe(0);
  });

  it('a kick in flight does not stop the preemption timer: it exits at the deadline, and the IPI finds the vCPU out of the guest', () => {
    const ctx = createSimContext();
    const vm = new KvmVm(ctx, { nvcpus: 1, cpuid: { tscDeadline: true } });
    vm.setApicv(true);
    const { ticked, vcpu } = tickingGuest(ctx, vm, true, 1);
    const cpu = ctx.scheduler.actor({ name: 'other', kind: 'host-cpu', cpu: 0 });
    ctx.scheduler.at(PERIOD - 100, cpu, () => vcpu.kick());
    ctx.scheduler.runUntil(PERIOD * 2);
    expect(ticked.length).toBe(1);
    expect(vcpu.exits.get('PREEMPTION_TIMER')).toBe(1);
    expect(ticked[0]! - PERIOD).toBeLessThan(2_000);
  });

  it('INIT (kvm_lapic_reset) cancels the timer; a software-disabled APIC drops a pending expiry', () => {
    const ctx = createSimContext();
    const { v } = deadlineVcpu(ctx);
    v.setMsr(MSR_IA32_TSC_DEADLINE, 50_000n);
    expect(v.timer.hvTimerInUse).toBe(true);
    v.lapic.reset(true);
    expect(v.timer.tscdeadline).toBe(0);
    expect(v.timer.hvTimerInUse).toBe(false);
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    v.lapic.regWrite(APIC.LVTT, LOCAL_TIMER_VECTOR | LVTT_TSCDEADLINE);
    ctx.scheduler.runUntil(10);
    v.setMsr(MSR_IA32_TSC_DEADLINE, 5n); // already passed: pending (no APICv)
    expect(v.timer.pending).toBe(1);
    v.lapic.regWrite(APIC.SPIV, 0x0ff); // software-disable
    expect(v.timer.pending).toBe(0);
  });

  it('HLT with IF=0 stays halted with a pending tick (the tick goes to IRR, the guest cannot take it)', () => {
    const ctx = createSimContext();
    const { v } = deadlineVcpu(ctx);
    let steps = 0;
    const taken: number[] = [];
    v.setGuest({
      next: (): GuestOp => (++steps === 1 ? { op: 'cli' } : steps === 2 ? { op: 'msr-write', index: MSR_IA32_TSC_DEADLINE, value: BigInt(PERIOD) } : { op: 'hlt' }),
      interrupt: (_c, vector) => (taken.push(vector), [{ op: 'eoi' }]),
    });
    v.run();
    ctx.scheduler.runUntil(PERIOD * 3);
    expect(taken).toEqual([]);
    expect(v.blocked).toBe(true);
    expect(v.timer.stats.sw).toBe(1);
    expect(v.lapic.findHighestIrr()).toBe(LOCAL_TIMER_VECTOR);
  });

  it('without an in-kernel LAPIC (userspace irqchip) the MSR arms nothing; a masked LVTT starts no latency clock', () => {
    const ctx = createSimContext();
    const u = new KvmVm(ctx, { nvcpus: 1, irqchip: false, cpuid: { tscDeadline: true } }).vcpu(0)!;
    u.setMsr(MSR_IA32_TSC_DEADLINE, 1_000n);
    expect(u.timer.tscdeadline).toBe(0);
    const { v } = deadlineVcpu(ctx, { apicv: true, lvtt: 0x10000 });
    const raised: number[] = [];
    v.onTimerExpired = (vec) => void raised.push(vec);
    v.setMsr(MSR_IA32_TSC_DEADLINE, 0n);
    v.setMsr(MSR_IA32_TSC_DEADLINE, 1n);
    ctx.scheduler.runUntil(10);
    v.setMsr(MSR_IA32_TSC_DEADLINE, 2n);
    expect(raised).toEqual([]);
  });
});

