import { createSimContext, type TraceEvent } from '@virq/core';
import { presetDocument } from '../src/presets.js';
import { runTopology } from '../src/scenario.js';
import { parseTopology } from '../src/topology.js';
import { X86Machine } from '../src/x86/x86-machine.js';

// workload.timerHz on an x86 machine without a pit device: every vCPU's LAPIC timer in
// TSC-deadline mode, the way a Linux guest ticks (lapic-deadline), as every arm64 vCPU's virtual
// timer does on the ARM machine.
const HZ = 10_000;
const DURATION_NS = 2_000_000;

function run(preset: string, busyVcpu0: boolean) {
  const d = presetDocument(preset);
  d.durationUs = DURATION_NS / 1000;
  d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => busyVcpu0 && x.kind === 'virtio-net');
  d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: busyVcpu0 ? 400_000 : 0, vfioInterruptsPerSec: 0, serialPerSec: 0, ipisPerSec: 0, timerHz: HZ };
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const trace: TraceEvent[] = [];
  ctx.trace.events$.subscribe((e) => trace.push(e));
  const m = new X86Machine(ctx, t);
  m.start();
  m.startWorkload(DURATION_NS);
  ctx.scheduler.runUntil(DURATION_NS + 1_000_000);
  return { m, trace };
}

describe('x86 LAPIC timer ticks (TSC-deadline, no pit device)', () => {
  for (const preset of ['x86-q35', 'x86-q35-noapicv']) {
    it(`${preset}: every vCPU ticks at timerHz; sysvec_apic_timer_interrupt EOIs first and re-arms with a fastpath WRMSR; nothing is left pending`, () => {
      const { m, trace } = run(preset, false);
      for (const v of m.vm.vcpus()) {
        const ticks = trace.filter((e) => e.fn === 'sysvec_apic_timer_interrupt' && (e.args as { vcpu?: number }).vcpu === v.vcpuId).length;
        // On the tick's grid: one per period from the first deadline until the workload ends (19 in 2 ms at 10 kHz).
        expect(ticks).toBe((DURATION_NS * HZ) / 1e9 - 1);
        // Idle between ticks: blocked in HLT, so the hrtimer carries the deadline (no preemption-timer exits).
        expect(v.exits.get('PREEMPTION_TIMER') ?? 0).toBe(0);
        expect(v.timer.stats.sw).toBe(ticks);
        expect(v.exits.get('MSR_WRITE')).toBe(ticks - 1); // the last tick does not re-arm
        expect(v.timer.pending).toBe(0);
      }
      expect(m.irqs.pendingSince(DURATION_NS)).toEqual([]);
      // The guest acknowledges first: sysvec_apic_timer_interrupt, its EOI, then the re-arm (vCPU 0's first tick).
      const on0 = (e: TraceEvent): boolean => (e.args as { vcpu?: number }).vcpu === 0;
      const sysvec = trace.findIndex((e) => e.fn === 'sysvec_apic_timer_interrupt' && on0(e));
      const eoi = trace.findIndex((e, i) => i > sysvec && e.fn === 'native_apic_mem_eoi' && on0(e));
      const rearm = trace.findIndex((e, i) => i > sysvec && e.fn === 'handle_fastpath_set_msr_irqoff' && on0(e));
      expect(sysvec).toBeGreaterThan(0);
      expect(eoi).toBeGreaterThan(sysvec);
      expect(eoi).toBeLessThan(rearm);
    });
  }

  it('a busy vCPU takes its ticks as PREEMPTION_TIMER exits (the VMX preemption timer runs only in guest mode); with APICv the vector is posted to itself and delivered at re-entry', () => {
    const { m, trace } = run('x86-q35', true);
    const v0 = m.vm.vcpu(0)!;
    expect(v0.exits.get('PREEMPTION_TIMER')).toBeGreaterThan(5);
    expect(v0.timer.stats.hv).toBe(v0.exits.get('PREEMPTION_TIMER'));
    const fns = new Set(trace.map((e) => `${e.fn}<-${e.caller}`));
    expect(fns).toContain('kvm_apic_inject_pending_timer_irqs<-apic_timer_expired');
    expect(trace.some((e) => e.fn === 'hw:virtual_interrupt_delivery' && (e.args as { vector?: number }).vector === 0xec)).toBe(true);
    // Posted to itself, the tick needs no request: the preemption-timer exit re-enters from
    // vcpu_enter_guest's own loop (EXIT_FASTPATH_REENTER_GUEST), as every re-arm does.
    const on0 = (fn: string): number => trace.filter((e) => e.fn === fn && (e.args as { vcpu?: number }).vcpu === 0).length;
    expect(on0('vmx_vcpu_run') - on0('vcpu_enter_guest')).toBeGreaterThanOrEqual(v0.exits.get('PREEMPTION_TIMER')! + v0.exits.get('MSR_WRITE')! - 2);
  });

  it('the first delivery of a timer-only run starts at the timer\'s expiry and ends at the tick\'s EOI', () => {
    const d = presetDocument('x86-q35');
    d.durationUs = 1000;
    d.devices = [];
    d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, serialPerSec: 0, ipisPerSec: 0, timerHz: HZ };
    const f = runTopology(parseTopology(d)).firstDelivery.map((e) => e.fn);
    expect(['apic_timer_fn', 'kvm_lapic_expired_hv_timer']).toContain(f[0]);
    expect(f).toContain('sysvec_apic_timer_interrupt');
    expect(f.at(-1)).toBe('native_apic_mem_eoi');
  });
});
