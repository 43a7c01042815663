import { VirqError, type Actor, type ScheduledEvent } from '@virq/core';
import type { ArmVcpu, ArmVcpuLoadPutListener } from './arm-vcpu.js';
import type { ArmVm } from './arm-vm.js';
import { GicErrorCode } from './errors.js';
import { VTIMER_PPI } from './registers.js';

/** One vCPU's EL1 virtual timer (`struct arch_timer_context` for the vtimer). */
interface VtimerContext {
  readonly vcpu: ArmVcpu;
  /** CNTV_CVAL_EL0 in virtual ns while CNTV_CTL_EL0 has ENABLE set and IMASK clear; undefined otherwise. */
  cval: number | undefined;
  /** ctx->irq.level: the level KVM last gave the vGIC for the virtual PPI. */
  level: boolean;
  /** The hardware comparator while loaded: asserts the physical PPI at `cval`. */
  comparator: ScheduledEvent | undefined;
  /** timer->bg_timer while the vCPU blocks in WFI. */
  bgTimer: ScheduledEvent | undefined;
  /** Timer interrupts the vGIC was given (rising levels). */
  injections: number;
  /** Wake-ups by the background timer. */
  bgWakeups: number;
}

/**
 * KVM's arm64 architected timer for the guest's EL1 virtual timer (arch/arm64/kvm/arch_timer.c),
 * on a VHE host with a GIC that has an active state — the common case:
 *
 * - the guest programs CNTV_CVAL_EL0/CNTV_CTL_EL0 directly (no trap: `program`);
 * - while the vCPU is loaded the hardware comparator drives the host's vtimer PPI 27 on the
 *   vCPU's CPU; KVM's per-CPU handler `kvm_arch_timer_handler` (request_percpu_irq in
 *   kvm_timer_hyp_init) finds the running vCPU and, if the timer should fire, calls
 *   `kvm_timer_update_irq` → `kvm_vgic_inject_irq` on the virtual PPI 27, which is mapped to the
 *   physical one (kvm_vgic_map_phys_irq, HW = 1): the physical interrupt stays active (priority
 *   drop only) until the guest's EOI of the HW list register deactivates it;
 * - `kvm_timer_vcpu_put` saves and disables the hardware timer; when the vCPU blocks in WFI,
 *   `kvm_timer_blocking` starts the background hrtimer at the earliest deadline; its expiry
 *   (`kvm_bg_timer_expire`) only wakes the vCPU (`kvm_vcpu_wake_up`);
 * - `kvm_timer_vcpu_load` → `kvm_timer_vcpu_load_gic`: updates the virtual level to
 *   should_fire (injecting an expired timer), marks the physical interrupt active when the
 *   virtual one is pending or active (set_timer_irq_phys_active), cancels the background timer
 *   (`kvm_timer_unblocking`) and restores the comparator.
 *
 * Not modelled: the EL1 physical timer (ptimer, emulated without VHE), CNTVOFF, WFIT, nested
 * virtualization, userspace irqchips (no vGIC).
 */
export class KvmArchTimer implements ArmVcpuLoadPutListener {
  private readonly contexts: VtimerContext[] = [];

  constructor(private readonly vm: ArmVm) {
    // kvm_timer_hyp_init: request_percpu_irq(host_vtimer_irq, kvm_arch_timer_handler), with vCPU affinity.
    vm.host.requestIrq(VTIMER_PPI, 'kvm_arch_timer_handler', (_intid, cpu) => this.handler(cpu), vm.vcpus[0]?.cpu ?? 0);
    const cpus = new Set(vm.vcpus.map((v) => v.cpu));
    for (const cpu of cpus) vm.host.setIrqEnabled(VTIMER_PPI, true, cpu); // kvm_timer_cpu_up: enable_percpu_irq
    for (const v of vm.vcpus) {
      // kvm_timer_enable → kvm_vgic_map_phys_irq(vtimer PPI → host vtimer PPI)
      vm.vgic.mapPhysIrq(v.vcpuId, VTIMER_PPI, VTIMER_PPI);
      this.contexts.push({ vcpu: v, cval: undefined, level: false, comparator: undefined, bgTimer: undefined, injections: 0, bgWakeups: 0 });
      v.loadPutListeners.push(this);
    }
  }

  /** Timer interrupts given to the vGIC and background-timer wake-ups, per vCPU. */
  stats(vcpu: number): { injections: number; bgWakeups: number } {
    const c = this.ctx(vcpu);
    return { injections: c.injections, bgWakeups: c.bgWakeups };
  }

  /**
   * The guest's clockevent programs the virtual timer (Linux arch_timer_set_next_event_virt:
   * CNTV_CVAL_EL0 = `cvalNs`, CNTV_CTL_EL0.ENABLE = 1, IMASK = 0), or stops it (`undefined`:
   * arch_timer_shutdown_virt). A direct register write on a VHE host: no exit.
   */
  program(vcpu: number, cvalNs: number | undefined): void {
    const c = this.ctx(vcpu);
    if (cvalNs !== undefined && (!Number.isSafeInteger(cvalNs) || cvalNs < 0)) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `CNTV_CVAL must be a non-negative integer number of ns, got ${cvalNs}`);
    }
    const ch = this.vm.channel;
    if (ch.on) ch.emit('timer.program', cvalNs === undefined ? 'arch_timer_shutdown_virt' : 'arch_timer_set_next_event_virt', cvalNs === undefined ? '__clockevents_switch_state' : 'clockevents_program_event', { vcpu, cval: cvalNs ?? -1 }, undefined, c.vcpu.actor);
    c.cval = cvalNs;
    if (c.vcpu.isLoaded) this.armComparator(c);
  }

  /** kvm_timer_should_fire for the vtimer: enabled, unmasked, CVAL reached. */
  shouldFire(vcpu: number): boolean {
    const c = this.ctx(vcpu);
    return c.cval !== undefined && c.cval <= this.vm.ctx.scheduler.now;
  }

  // ---- ArmVcpuLoadPutListener ----

  /** kvm_timer_vcpu_load → kvm_timer_vcpu_load_gic, kvm_timer_unblocking, timer_restore_state. */
  vcpuLoad(vcpu: ArmVcpu): void {
    const c = this.ctx(vcpu.vcpuId);
    // kvm_timer_update_irq(should_fire) on every load: the vGIC may have resampled the mapped
    // line low at the last fold (kvm_arch_timer_get_input_level) while ctx->irq.level stayed
    // high, so a raised level is always handed over again (the vGIC ignores a repeat); a
    // lowered one only when it changes.
    const should = this.shouldFire(vcpu.vcpuId);
    if (should || c.level) this.updateIrq(c, should, 'kvm_timer_vcpu_load_gic');
    // set_timer_irq_phys_active: active while the virtual interrupt is pending/active, so the
    // expired comparator does not interrupt the host again.
    const vgicActive = this.vm.gic.irqFor(VTIMER_PPI, vcpu.vcpuId)?.active ?? false;
    this.vm.host.setPhysicalActive(VTIMER_PPI, vcpu.cpu, vgicActive || c.level);
    if (c.bgTimer !== undefined) {
      this.vm.ctx.scheduler.cancel(c.bgTimer); // kvm_timer_unblocking → soft_timer_cancel
      c.bgTimer = undefined;
    }
    this.armComparator(c);
  }

  /** kvm_timer_vcpu_put: timer_save_state (the comparator is disabled), then kvm_timer_blocking if blocking. */
  vcpuPut(vcpu: ArmVcpu, blocking: boolean): void {
    const c = this.ctx(vcpu.vcpuId);
    this.stopComparator(c);
    if (!blocking || c.cval === undefined) return;
    const s = this.vm.ctx.scheduler;
    const ch = this.vm.channel;
    const at = Math.max(s.now, c.cval);
    if (ch.on) ch.emit('timer.bg', 'soft_timer_start', 'kvm_timer_blocking', { vcpu: vcpu.vcpuId, expires: at }, undefined, vcpu.actor);
    c.bgTimer = s.at(at, this.hostCpu(vcpu.cpu), () => {
      c.bgTimer = undefined;
      c.bgWakeups++;
      if (ch.on) ch.emit('timer.bg_expire', 'kvm_bg_timer_expire', '__hrtimer_run_queues', { vcpu: vcpu.vcpuId });
      vcpu.wakeUp('kvm_bg_timer_expire');
    });
  }

  // ---- internals ----

  /** kvm_arch_timer_handler on host CPU `cpu`: the running vCPU's timer, if it should fire, goes to the vGIC. */
  private handler(cpu: number): 'keep-active' | 'handled' {
    const c = this.contexts.find((x) => x.vcpu.cpu === cpu && x.vcpu.isLoaded);
    if (c === undefined) return 'handled'; // no running vCPU (the signal outlived vcpu_put)
    if (this.shouldFire(c.vcpu.vcpuId)) this.updateIrq(c, true, 'kvm_arch_timer_handler');
    return 'keep-active'; // forwarded to the vCPU: the guest's EOI (HW = 1) deactivates it
  }

  /** kvm_timer_update_irq → kvm_vgic_inject_irq on the virtual PPI. */
  private updateIrq(c: VtimerContext, level: boolean, caller: 'kvm_arch_timer_handler' | 'kvm_timer_vcpu_load_gic'): void {
    c.level = level;
    if (level) c.injections++;
    const ch = this.vm.channel;
    if (ch.on) ch.emit('timer.update_irq', 'kvm_timer_update_irq', caller, { vcpu: c.vcpu.vcpuId, irq: VTIMER_PPI, level });
    this.vm.vgic.injectIrq(c.vcpu.vcpuId, VTIMER_PPI, level, 'kvm_timer_update_irq');
  }

  /** The hardware comparator of a loaded vCPU: the timer output (PPI 27 level) follows CVAL. */
  private armComparator(c: VtimerContext): void {
    this.stopComparator(c);
    if (c.cval === undefined) return;
    const s = this.vm.ctx.scheduler;
    const cpu = c.vcpu.cpu;
    if (c.cval <= s.now) {
      this.vm.host.gic.setPpiLevel(cpu, VTIMER_PPI, true);
      return;
    }
    c.comparator = s.at(c.cval, this.hostCpu(cpu), () => {
      c.comparator = undefined;
      // Hardware: CNTV_CTL.ISTATUS rises and the timer asserts its PPI at this CPU.
      this.vm.host.gic.setPpiLevel(cpu, VTIMER_PPI, true);
    });
  }

  private stopComparator(c: VtimerContext): void {
    if (c.comparator !== undefined) this.vm.ctx.scheduler.cancel(c.comparator);
    c.comparator = undefined;
    this.vm.host.gic.setPpiLevel(c.vcpu.cpu, VTIMER_PPI, false);
  }

  /** The host CPU's own context (hrtimer interrupts, the timer hardware). */
  private hostCpu(cpu: number): Actor {
    return this.vm.host.cpus[cpu]!;
  }

  private ctx(vcpu: number): VtimerContext {
    const c = this.contexts[vcpu];
    if (c === undefined) throw new VirqError(GicErrorCode.VcpuUnknown, `vCPU ${vcpu} does not exist`);
    return c;
  }
}
