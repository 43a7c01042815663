import type { Actor, Scheduler, ScheduledEvent } from '@virq/core';
import { APIC, LVT_MASKED } from './lapic-registers.js';
import type { KvmLapic } from './lapic.js';

/** IA32_TSC_DEADLINE */
export const MSR_IA32_TSC_DEADLINE = 0x6e0;
/** LVTT timer mode field (bits 18:17): 2 = TSC-deadline. */
const LVTT_MODE_SHIFT = 17;
const LVTT_MODE_TSCDEADLINE = 2;

/** What the timer needs from its vCPU. */
export interface LapicTimerOwner {
  readonly vcpuId: number;
  readonly lapic: KvmLapic;
  readonly scheduler: Scheduler;
  /** The host CPU's hard-irq context the vCPU thread runs on (where apic_timer_fn runs). */
  readonly hardirq: Actor;
  readonly apicvActive: boolean;
  readonly tracing: boolean;
  trace(fn: string, caller: string, args: Record<string, number | boolean>): void;
  /** kvm_vcpu_kick (wakes a blocked vCPU), from `caller`. */
  kick(caller: string): void;
  /** The timer expired at `time` (where the machine starts its latency clock for the vector). */
  expired?(vector: number, time: number): void;
}

/**
 * KVM's LAPIC timer in TSC-deadline mode (arch/x86/kvm/lapic.c), the mode Linux's
 * "lapic-deadline" clockevent uses. The guest's TSC is the run's virtual clock (1 tick = 1 ns).
 * - A WRMSR of IA32_TSC_DEADLINE (kvm_set_lapic_tscdeadline_msr) cancels the hrtimer, stores the
 *   deadline, clears `pending` and restarts the timer: the hypervisor timer (start_hv_timer: the
 *   VMX preemption timer, which counts only in guest mode) while the vCPU is in its run loop, the
 *   hrtimer (start_sw_timer) otherwise. A deadline already passed expires at once.
 * - The preemption timer's exit (kvm_lapic_expired_hv_timer) and the hrtimer's callback
 *   (apic_timer_fn) both end in apic_timer_expired: from the exit with APICv active the LVTT
 *   vector is delivered at once (kvm_apic_inject_pending_timer_irqs: posted to the vCPU itself,
 *   taken by virtual-interrupt delivery at entry); otherwise `pending` is set (and the hrtimer
 *   kicks the vCPU) and vcpu_run injects it before the next entry (kvm_inject_pending_timer_irqs).
 * - Blocking (HLT) switches to the hrtimer (kvm_lapic_switch_to_sw_timer) and waking back to the
 *   preemption timer (kvm_lapic_switch_to_hv_timer), as vcpu_block does.
 * Not modelled: one-shot and periodic modes (TMICT), lapic_timer_advance (KVM tunes an early
 * expiry adaptively; here the timer fires at its deadline), posted timer interrupts
 * (pi_inject_timer needs HLT/MWAIT passed through to the guest).
 */
export class KvmLapicTimer {
  /** ktimer->tscdeadline (0: not armed). */
  tscdeadline = 0;
  /** ktimer->expired_tscdeadline */
  expiredTscdeadline = 0;
  /** ktimer->pending */
  pending = 0;
  /** ktimer->hv_timer_in_use */
  hvTimerInUse = false;
  private sw: ScheduledEvent | undefined;
  /** Expiries, by where they were noticed. */
  readonly stats = { hv: 0, sw: 0, immediate: 0 };

  constructor(private readonly o: LapicTimerOwner) {}

  /** LVTT is in TSC-deadline mode (apic_lvtt_tscdeadline). */
  get deadlineMode(): boolean {
    return ((this.o.lapic.getReg(APIC.LVTT) >> LVTT_MODE_SHIFT) & 3) === LVTT_MODE_TSCDEADLINE;
  }

  /** kvm_set_lapic_tscdeadline_msr; `inRunLoop`: the vCPU is running (not blocked), so the hv timer can be used. */
  setTscDeadline(value: number, caller: string, inRunLoop: boolean): void {
    if (this.o.tracing) this.o.trace('kvm_set_lapic_tscdeadline_msr', caller, { vcpu: this.o.vcpuId, deadline: value });
    if (!this.deadlineMode) return;
    this.cancelSw();
    this.tscdeadline = value;
    // start_apic_timer → __start_apic_timer: a new deadline drops an expiry not yet injected.
    this.pending = 0;
    this.restart(inRunLoop);
  }

  /** SPIV software-disable: an expiry not yet injected is dropped (the timer itself runs on, masked). */
  clearPending(): void {
    this.pending = 0;
  }

  /** apic_update_lvtt: a change of timer mode cancels the timer. */
  lvttModeChanged(): void {
    this.cancelSw();
    this.hvTimerInUse = false;
    this.tscdeadline = 0;
    this.pending = 0;
  }

  /** restart_apic_timer: nothing while an expiry waits; else the hv timer in the run loop, the hrtimer outside it. */
  private restart(inRunLoop: boolean): void {
    if (this.pending > 0) return;
    if (inRunLoop) this.startHv();
    else this.startSw();
  }

  /** start_hv_timer (vmx_set_hv_timer): armed for the next entry; a deadline already passed expires now. */
  private startHv(): void {
    // start_hv_timer needs a deadline; without one restart_apic_timer falls back to start_sw_timer.
    if (this.tscdeadline === 0) {
      this.startSw();
      return;
    }
    this.hvTimerInUse = true;
    this.cancelSw();
    if (this.tscdeadline <= this.o.scheduler.now) {
      this.stats.immediate++;
      this.expire(false, 'start_hv_timer');
      this.hvTimerInUse = false; // cancel_hv_timer
    }
    if (this.o.tracing) this.o.trace('kvm_hv_timer_state', 'start_hv_timer', { vcpu: this.o.vcpuId, hv_timer_in_use: this.hvTimerInUse });
  }

  /** start_sw_timer → start_sw_tscdeadline: the hrtimer at the deadline, or an expiry now. */
  private startSw(): void {
    this.hvTimerInUse = false;
    if (this.tscdeadline !== 0 && this.pending === 0) {
      const s = this.o.scheduler;
      if (this.tscdeadline <= s.now) {
        this.stats.immediate++;
        this.expire(false, 'start_sw_tscdeadline');
      } else if (this.sw === undefined) {
        this.sw = s.at(this.tscdeadline, this.o.hardirq, this.apicTimerFn);
      }
    }
    if (this.o.tracing) this.o.trace('kvm_hv_timer_state', 'start_sw_timer', { vcpu: this.o.vcpuId, hv_timer_in_use: false });
  }

  /** kvm_lapic_switch_to_sw_timer (vcpu_block, before the vCPU blocks). */
  switchToSw(): void {
    if (!this.hvTimerInUse) return;
    if (this.o.tracing) this.o.trace('kvm_lapic_switch_to_sw_timer', 'vcpu_block', { vcpu: this.o.vcpuId });
    this.startSw();
  }

  /** kvm_lapic_switch_to_hv_timer (vcpu_block, once the vCPU is back): restart_apic_timer. */
  switchToHv(): void {
    if (this.o.tracing) this.o.trace('kvm_lapic_switch_to_hv_timer', 'vcpu_block', { vcpu: this.o.vcpuId });
    this.cancelSw();
    this.restart(true);
  }

  /** When the preemption timer, armed at entry, makes the vCPU exit (-1: not armed). */
  get hvExpiry(): number {
    return this.hvTimerInUse && this.tscdeadline !== 0 ? this.tscdeadline : -1;
  }

  /** kvm_lapic_expired_hv_timer (the PREEMPTION_TIMER exit's fastpath). */
  expiredHv(): void {
    if (!this.hvTimerInUse) return;
    if (this.o.tracing) this.o.trace('kvm_lapic_expired_hv_timer', 'handle_fastpath_preemption_timer', { vcpu: this.o.vcpuId });
    this.stats.hv++;
    this.expire(false, 'kvm_lapic_expired_hv_timer');
    this.hvTimerInUse = false; // cancel_hv_timer (deadline mode does not re-arm)
  }

  /** apic_timer_fn: the hrtimer's callback, in hard-irq context on the vCPU thread's host CPU. */
  private readonly apicTimerFn = (): void => {
    this.sw = undefined;
    if (this.o.tracing) this.o.trace('apic_timer_fn', '__hrtimer_run_queues', { vcpu: this.o.vcpuId });
    this.stats.sw++;
    this.expire(true, 'apic_timer_fn');
  };

  /** apic_timer_expired */
  private expire(fromTimerFn: boolean, caller: string): void {
    if (this.pending > 0) return;
    const o = this.o;
    if (o.tracing) o.trace('apic_timer_expired', caller, { vcpu: o.vcpuId, deadline: this.tscdeadline });
    this.expiredTscdeadline = this.tscdeadline;
    // A device event for the machine's latency clock only if it can reach the guest (kvm_apic_local_deliver's test).
    const lvtt = o.lapic.getReg(APIC.LVTT);
    if (o.lapic.hwEnabled && (lvtt & LVT_MASKED) === 0) o.expired?.(lvtt & 0xff, o.scheduler.now);
    if (!fromTimerFn && o.apicvActive) {
      this.injectPending('apic_timer_expired');
      return;
    }
    // kvm_use_posted_timer_interrupt is false (no HLT/MWAIT passthrough): pending, KVM_REQ_UNBLOCK,
    // and from the hrtimer a kick.
    this.pending = 1;
    if (fromTimerFn) o.kick('apic_timer_expired');
  }

  /** kvm_apic_inject_pending_timer_irqs: the LVTT vector through kvm_apic_local_deliver; the deadline is spent. */
  private injectPending(caller: string): void {
    if (this.o.tracing) this.o.trace('kvm_apic_inject_pending_timer_irqs', caller, { vcpu: this.o.vcpuId });
    this.o.lapic.localDeliver(APIC.LVTT, 'kvm_apic_inject_pending_timer_irqs');
    if (this.deadlineMode) this.tscdeadline = 0;
  }

  /** apic_has_pending_timer: an expiry waiting, the LAPIC enabled and LVTT unmasked. */
  hasPending(): boolean {
    return this.pending > 0 && this.o.lapic.enabled && (this.o.lapic.getReg(APIC.LVTT) & LVT_MASKED) === 0;
  }

  /** vcpu_run's kvm_inject_pending_timer_irqs → kvm_inject_apic_timer_irqs. */
  injectIfPending(): void {
    if (this.pending === 0) return;
    if (this.o.tracing) this.o.trace('kvm_inject_apic_timer_irqs', 'kvm_inject_pending_timer_irqs', { vcpu: this.o.vcpuId });
    this.injectPending('kvm_inject_apic_timer_irqs');
    this.pending = 0;
  }

  private cancelSw(): void {
    if (this.sw !== undefined) {
      this.o.scheduler.cancel(this.sw);
      this.sw = undefined;
    }
  }
}
