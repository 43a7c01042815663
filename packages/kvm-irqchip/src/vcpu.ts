import type { Actor, ScheduledEvent, VcpuInterruptTarget } from '@virq/core';
import type { GuestModel, GuestOp } from './guest-model.js';
import { KvmLapic, type LapicBus, type LapicOwner } from './lapic.js';
import { APIC, APICBASE_BSP, MSR_IA32_APICBASE } from './lapic-registers.js';
import type { VcpuHost } from './vcpu-host.js';
import { VcpuCpuClock } from './vcpu-cpu-clock.js';
import { VmxExitCounts, type ExitReason } from './vmx-exit-counts.js';
import { KvmLapicTimer, MSR_IA32_TSC_DEADLINE } from './lapic-timer.js';

/** `vcpu->mode` */
export type VcpuMode = 'outside-guest' | 'in-guest' | 'exiting-guest';

/** KVM_MP_STATE_* */
export const MP_STATE = { RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4 } as const;
export const MP_STATE_NAMES: Readonly<Record<number, string>> = { 0: 'RUNNABLE', 1: 'UNINITIALIZED', 2: 'INIT_RECEIVED', 3: 'HALTED', 4: 'SIPI_RECEIVED' };

/** vcpu_load / vcpu_put / blocking hooks (vmx_vcpu_pi_load / vmx_vcpu_pi_put, kvm_arch_vcpu_blocking). */
export interface VcpuSchedHooks {
  vcpuLoad(vcpu: KvmVcpu, hostCpu: number): void;
  vcpuPut(vcpu: KvmVcpu, reason: 'preempted' | 'blocking' | 'exit'): void;
}

/** The parts of KVM_GET_VCPU_EVENTS interrupt delivery touches (golden `vcpu_events`). */
export interface VcpuEventsJson {
  cpu: number;
  nmi_pending: number;
  nmi_injected: number;
  nmi_masked: number;
  smi_pending: number;
  smm: number;
  latched_init: number;
  sipi_vector: number;
  interrupt_injected: number;
  interrupt_nr: number;
  exception_pending: number;
  exception_injected: number;
}

const REQ_EVENT = 1;

/**
 * What the vCPU thread does next when a timed step of its own ends (see `KvmVcpu.loop`):
 * the step after VM entry, the guest's next operation, an exit's handler, the end of an
 * exit's handling, and waking from kvm_vcpu_block.
 */
const STEP_NONE = 0;
const STEP_ENTERED = 1;
const STEP_GUEST = 2;
const STEP_EXIT_HANDLER = 3;
const STEP_EXIT_DONE = 4;
const STEP_WOKEN = 5;
const STEP_START = 6;
/** Userspace irqchip: back in QEMU after KVM_RUN returned (kvm_cpu_exec's exit handling). */
const STEP_USERSPACE = 7;
/** Userspace irqchip: the next KVM_RUN ioctl after QEMU's own work between runs. */
const STEP_KVM_RUN = 8;

const OP_STI: GuestOp = { op: 'sti' };
const OP_EOI: GuestOp = { op: 'eoi' };

const NO_ARGS: Readonly<Record<string, number>> = Object.freeze({});
const EOI_MSR_ARGS: Readonly<Record<string, number>> = Object.freeze({ msr: 0x80b });
const HALT = (): 'halt' => 'halt';
const NOOP_HANDLER = (): undefined => undefined;

type ExitHandler = () => 'halt' | undefined | number | void;

/** `kvm_run->exit_reason` values a vCPU without the in-kernel irqchip returns to userspace with. */
export type KvmUserspaceExitReason = 'KVM_EXIT_IO' | 'KVM_EXIT_MMIO' | 'KVM_EXIT_HLT' | 'KVM_EXIT_IRQ_WINDOW_OPEN' | 'KVM_EXIT_INTR';

/**
 * What QEMU's vCPU thread does between two KVM_RUN ioctls when the VM has no in-kernel
 * irqchip (accel/kvm/kvm-all.c `kvm_cpu_exec`, target/i386/kvm/kvm.c `kvm_arch_*_run`).
 * Both calls run on the vCPU thread; `'park'` means the thread left kvm_cpu_exec and waits
 * on its halt condition (qemu_wait_io_event) until `KvmVcpu.qemuKick` wakes it.
 */
export interface VcpuUserspaceLoop {
  /** KVM_RUN returned with `reason`: kvm_arch_post_run, the exit's handling, then (unless parking) kvm_arch_pre_run. */
  exit(vcpu: KvmVcpu, reason: KvmUserspaceExitReason): 'run' | 'park';
  /** The parked thread was woken (qemu_cond_broadcast of halt_cond): kvm_cpu_exec again, or park again when still idle. */
  wake(vcpu: KvmVcpu): 'run' | 'park';
}

/**
 * A vCPU: its LAPIC, `vcpu->mode`, requests, MP state, NMI queue, and the KVM_RUN loop
 * (vcpu_run → vcpu_enter_guest → exits) driven by a pluggable `GuestModel`. Every exit has
 * its VMX reason and is counted; every step charges the CostModel and emits a trace event
 * named as the kernel function. A vCPU with no guest attached is passive: interrupts still
 * land in its LAPIC and kicks are recorded, but nothing runs (what the golden replay needs).
 */
export class KvmVcpu implements LapicOwner, VcpuInterruptTarget {
  readonly arch = 'x86' as const;
  readonly lapic: KvmLapic;
  mode: VcpuMode = 'outside-guest';
  /** Inside KVM_RUN. */
  running = false;
  /** Blocked in kvm_vcpu_block (HLT with nothing pending). */
  blocked = false;
  mpState: number;
  requests = 0;
  nmiQueued = 0;
  nmiPending = 0;
  nmiInjected = false;
  nmiMasked = false;
  /** INIT resets taken (kvm_apic_accept_events): the architectural registers went back to reset values. */
  initResets = 0;
  pvUnhalted = false;
  /** Guest RFLAGS.IF. */
  ifFlag = true;
  irqWindowRequested = false;
  /** No in-kernel LAPIC (`!lapic_in_kernel`): interrupts come from userspace through KVM_INTERRUPT. */
  readonly userspaceIrqchip: boolean;
  /** `vcpu->arch.interrupt` queued by KVM_INTERRUPT (kvm_queue_interrupt), injected at the next entry; -1: none. */
  queuedInterrupt = -1;
  /** `kvm_run->request_interrupt_window`, written by userspace before KVM_RUN. */
  requestInterruptWindow = false;
  /** A signal (QEMU's SIG_IPI) is pending for the vCPU thread: the next KVM_RUN returns -EINTR (KVM_EXIT_INTR). */
  signalPending = false;
  /** Exits that reached userspace, by `kvm_run->exit_reason`. */
  readonly userspaceExits = new Map<KvmUserspaceExitReason, number>();
  /** KVM_INTERRUPT ioctls accepted. */
  kvmInterrupts = 0;
  private userspaceLoop: VcpuUserspaceLoop | undefined;
  /** The return to userspace the exit being handled ends in (userspace irqchip only). */
  private exitToUser: KvmUserspaceExitReason | undefined;
  /** QEMU's time between KVM_RUNs (charged by the loop through `chargeQemu`). */
  private qemuNs = 0;
  /** Host CPU the vCPU thread runs on (vcpu->cpu). */
  hostCpu: number;
  readonly actor: Actor;
  private readonly exitCounts = new VmxExitCounts();
  /** Exits by VMX reason (a fresh copy; reasons in the order they first occurred). */
  get exits(): Map<ExitReason, number> {
    return this.exitCounts.byReason();
  }
  /** Interrupts injected (vmx_inject_irq or virtual delivery), by vector. */
  injected = 0;
  kicks = 0;
  hostIpis = 0;
  private guest: GuestModel | undefined;
  /** Guest operations queued ahead of `guest.next()`, last-to-run first (the next one is at the end). */
  private readonly ops: GuestOp[] = [];
  private stepEvent: ScheduledEvent | undefined;
  private stepEndsAt = 0;
  private stepOp: GuestOp | undefined;
  private kickInFlight = false;
  private wakeInFlight = false;
  /** The vCPU thread's own step chain (`loop`): the step to run next without a queued event. */
  private nextStep = STEP_NONE;
  private looping = false;
  private readonly runStep = (step: number): void => this.loop(step);
  /** The xAPIC EOI write's exit handler (apic_mmio_write of 0 to the EOI register). */
  private readonly eoiByMmio = (): void => this.lapic.mmioWrite(this.lapic.baseAddress + APIC.EOI, 4, 0);
  /** The x2APIC EOI MSR write's exit handler, and APICv's EOI-induced exit for a level-triggered vector. */
  private readonly eoiByMsr = (): void => void this.lapic.msrWrite(0x80b, 0n);
  private readonly eoiInduced = (): void => void this.lapic.setEoi();
  /** What the running VM entry injects (-1: nothing) — read when the entry completes. */
  private entryVector = -1;
  /** The exit being handled: its handler, the handling time, whether it ends in HLT. */
  private exitHandler: ExitHandler | undefined;
  private exitHandlingNs = 0;
  private exitHalts = false;
  /** A host interrupt (-1: none) or a preemption that arrived during VM entry, taken right after it. */
  private deferredExitVector = -1;
  private deferredPreempt: { durationNs: number; hostCpu: number } | undefined;

  constructor(
    readonly vcpuId: number,
    private readonly host: VcpuHost,
    hostCpu: number,
  ) {
    this.hostCpu = hostCpu;
    this.actor = host.scheduler.actor({ name: `CPU ${vcpuId}/KVM`, kind: 'vcpu', cpu: hostCpu });
    this.clock = new VcpuCpuClock(this.actor, host.scheduler);
    this.mpState = host.irqchipInKernel && vcpuId !== 0 ? MP_STATE.UNINITIALIZED : MP_STATE.RUNNABLE;
    this.userspaceIrqchip = !host.irqchipInKernel;
    this.lapic = new KvmLapic(this);
    const vcpu = this;
    this.timer = new KvmLapicTimer({
      vcpuId,
      lapic: this.lapic,
      scheduler: host.scheduler,
      hardirq: host.scheduler.actor({ name: `swapper/${hostCpu}`, kind: 'host-cpu', cpu: hostCpu }),
      get apicvActive() {
        return host.apicvActive;
      },
      get tracing() {
        return host.tracing;
      },
      trace: (fn, caller, args) => host.trace(fn, caller, args),
      kick: (caller) => vcpu.kick(caller),
      expired: (vector, time) => vcpu.onTimerExpired?.(vector, time),
    });
  }

  /** The LAPIC timer (TSC-deadline mode; see KvmLapicTimer). */
  readonly timer: KvmLapicTimer;
  /** Called when the LAPIC timer expires (a machine starts its latency clock for the vector here). */
  onTimerExpired: ((vector: number, time: number) => void) | undefined;
  /** The deadline a preemption-timer check is scheduled for (-1: none). */
  private hvScheduledFor = -1;
  /** The preemption timer expired while the entry was still on its way in: the CPU exits right after it. */
  private hvDueAtEntry = false;
  /** vcpu_block switched the timer to the hrtimer for this block. */
  private timerSwapped = false;

  /** apic_update_lvtt (LapicOwner). */
  lvttModeChanged(): void {
    this.timer.lvttModeChanged();
  }
  /** SPIV software-disable (LapicOwner). */
  timerPendingCleared(): void {
    this.timer.clearPending();
  }

  /** Arms the VMX preemption timer for this entry (vmx_update_hv_timer): it makes the vCPU exit at the deadline. */
  private armHvTimer(entryNs: number): void {
    this.hvDueAtEntry = false;
    const d = this.timer.hvExpiry;
    if (d < 0) return;
    const s = this.host.scheduler;
    if (d <= s.now + entryNs) {
      this.hvDueAtEntry = true;
      return;
    }
    // One check per deadline: whatever entry is current when it comes, the timer reached zero in it.
    if (this.hvScheduledFor === d) return;
    this.hvScheduledFor = d;
    s.at(d, this.actor, this.hvFire, d);
  }

  /** The preemption timer reaches zero: an exit if the vCPU is (still) running guest code with it armed. */
  private readonly hvFire = (d: number): void => {
    if (this.hvScheduledFor === d) this.hvScheduledFor = -1;
    // 'exiting-guest': a kick's IPI is on its way, but the guest runs until something makes it exit.
    if (!this.running || this.mode === 'outside-guest' || this.timer.hvExpiry !== d) return;
    if (this.entering) {
      this.hvDueAtEntry = true;
      return;
    }
    this.preemptionTimerExit();
  };

  /** vcpu_run: kvm_cpu_has_pending_timer → kvm_inject_pending_timer_irqs. */
  private injectPendingTimer(): void {
    if (!this.timer.hasPending()) return;
    if (this.host.tracing) this.host.trace('kvm_inject_pending_timer_irqs', 'vcpu_run', { vcpu: this.vcpuId });
    this.timer.injectIfPending();
  }

  /** EXIT_REASON_PREEMPTION_TIMER, handled in the fastpath (kvm_lapic_expired_hv_timer). */
  private preemptionTimerExit(): void {
    this.hvDueAtEntry = false;
    this.preemptStep();
    this.vmExit('PREEMPTION_TIMER', 'handle_fastpath_preemption_timer', NO_ARGS, 0, this.onPreemptionTimer);
  }
  private readonly onPreemptionTimer = (): undefined => {
    this.timer.expiredHv();
    return undefined;
  };

  /** kvm_vcpu_is_reset_bsp: the vCPU that resets as the BSP (bsp_vcpu_id, 0). */
  get isBsp(): boolean {
    return this.vcpuId === 0;
  }
  /** kvm_vcpu_is_bsp: the BSP flag (bit 8) of the current APIC base MSR, which userspace may move. */
  get apicBaseBsp(): boolean {
    return (this.lapic.apicBase & APICBASE_BSP) !== 0;
  }
  get bus(): LapicBus {
    return this.host.lapicBus;
  }
  get apicvActive(): boolean {
    return this.host.apicvActive;
  }
  get cpuid(): { readonly x2apic: boolean; readonly tscDeadline: boolean; readonly maxPhysAddr: number } {
    return this.host.cpuid;
  }
  /** The APIC ID (xAPIC ID, or the x2APIC ID in x2APIC mode). */
  get apicId(): number {
    return this.lapic.x2apicMode ? this.lapic.x2apicId : this.lapic.xapicId;
  }

  // ---- LapicOwner ----------------------------------------------------------------
  requestEvent(): void {
    this.requests |= REQ_EVENT;
    if (this.host.tracing) this.host.trace('kvm_make_request', '__apic_accept_irq', { vcpu: this.vcpuId, req: 'KVM_REQ_EVENT' });
  }
  queueNmi(): void {
    this.nmiQueued++;
    this.requests |= REQ_EVENT;
  }
  injectSmi(): number {
    return this.host.smmSupported ? 0 : -25; // -ENOTTY without CONFIG_KVM_SMM
  }
  pvUnhalt(): void {
    this.pvUnhalted = true;
  }
  deliverPosted(vector: number): void {
    this.host.deliverPosted(this, vector);
  }

  /** kvm_vcpu_kick: wake a blocked vCPU, or IPI its host CPU when it runs in guest mode. */
  kick(caller = '__apic_accept_irq'): void {
    this.kicks++;
    const h = this.host;
    if (h.tracing) h.trace('kvm_vcpu_kick', caller, { vcpu: this.vcpuId, mode: this.mode, blocked: this.blocked });
    if (this.wakeUp()) return;
    if (this.mode === 'in-guest' && h.scheduler.current !== this.actor) {
      if (this.entering && this.deferredPreempt === undefined) {
        // Still on its way in: vcpu_enter_guest's kvm_vcpu_exit_request sees the request (and
        // EXITING_GUEST_MODE) before VMRESUME and cancels the entry — no VM exit; the reschedule
        // IPI, if it went out, is taken in host mode.
        this.entryCancelled = true;
        return;
      }
      this.mode = 'exiting-guest';
      this.sendReschedIpi();
    }
  }

  /** kvm_vcpu_wake_up: true when the vCPU was blocked. */
  wakeUp(): boolean {
    if (!this.blocked) return false;
    if (this.wakeInFlight) return true;
    this.wakeInFlight = true;
    const h = this.host;
    if (h.tracing) h.trace('kvm_vcpu_wake_up', 'kvm_vcpu_kick', { vcpu: this.vcpuId });
    h.scheduler.post(h.costs.ns.threadWakeup, this.actor, this.runStep, STEP_WOKEN);
    return true;
  }

  /** The woken vCPU thread, back from kvm_vcpu_block. */
  private woken(): void {
    const h = this.host;
    this.wakeInFlight = false;
    if (!this.blocked) return;
    this.blocked = false;
    this.charge(h.costs.ns.contextSwitch);
    if (this.userspaceIrqchip) {
      // QEMU's vCPU thread back from qemu_cond_wait(halt_cond) in qemu_wait_io_event.
      if (this.userspaceLoop !== undefined && this.userspaceLoop.wake(this) === 'park') {
        this.blocked = true;
        return;
      }
      this.kvmRunAfterQemu();
      return;
    }
    if (h.tracing) h.trace('kvm_arch_vcpu_unblocking', 'kvm_vcpu_block', { vcpu: this.vcpuId });
    h.schedHooks?.vcpuLoad(this, this.hostCpu);
    if (this.timerSwapped) {
      this.timerSwapped = false;
      this.timer.switchToHv();
    }
    // kvm_vcpu_check_block let a pending timer end the block; vcpu_run injects it, and a guest
    // that cannot take it (IF=0) blocks again.
    this.injectPendingTimer();
    if (!this.hasPendingWork()) {
      this.halt();
      return;
    }
    this.enterGuest();
  }

  private sendReschedIpi(caller = 'kvm_vcpu_kick'): void {
    if (this.kickInFlight) return;
    this.kickInFlight = true;
    this.hostIpis++;
    const h = this.host;
    if (h.tracing) h.trace('smp_send_reschedule', caller, { vcpu: this.vcpuId, cpu: this.hostCpu });
    h.scheduler.after(h.costs.ns.hostIpi, this.actor, () => {
      this.kickInFlight = false;
      this.externalInterruptExit(0xfd);
    });
  }

  /** A host interrupt arrived while this vCPU ran in guest mode: EXTERNAL_INTERRUPT exit. */
  externalInterruptExit(hostVector: number): void {
    if (this.mode === 'outside-guest' || !this.running) return;
    if (this.entering) {
      // The entry in flight completes (with the event it injects) and the CPU exits at once.
      this.deferredExitVector = hostVector;
      return;
    }
    this.preemptStep();
    this.vmExit('EXTERNAL_INTERRUPT', 'handle_external_interrupt_irqoff', { vector: hostVector }, 0, () => undefined);
  }

  /**
   * The host scheduler takes the vCPU thread off its CPU for `durationNs` (a host timer
   * interrupt → EXTERNAL_INTERRUPT exit → schedule() → vcpu_put with preempted = true), then
   * puts it back on `hostCpu` (vcpu_load) and re-enters. Only a vCPU in guest mode is preempted.
   */
  preempt(durationNs: number, hostCpu = this.hostCpu): boolean {
    if (!this.running || this.mode !== 'in-guest') return false;
    if (this.entering) {
      this.deferredPreempt = { durationNs, hostCpu };
      return true;
    }
    const h = this.host;
    this.preemptStep();
    this.mode = 'outside-guest';
    this.exitCounts.count('EXTERNAL_INTERRUPT');
    this.charge(h.costs.ns.vmExit + h.costs.ns.contextSwitch);
    if (h.tracing) h.trace('kvm_exit', 'vmx_handle_exit', { vcpu: this.vcpuId, reason: 'EXTERNAL_INTERRUPT' }, h.costs.ns.vmExit);
    if (h.tracing) h.trace('kvm_sched_out', '__schedule', { vcpu: this.vcpuId, preempted: true });
    h.schedHooks?.vcpuPut(this, 'preempted');
    this.preempted = true;
    h.scheduler.after(h.costs.ns.vmExit + durationNs, this.actor, () => {
      this.preempted = false;
      this.hostCpu = hostCpu;
      this.actor.cpu = hostCpu;
      if (h.tracing) h.trace('kvm_sched_in', 'finish_task_switch', { vcpu: this.vcpuId, cpu: hostCpu });
      h.schedHooks?.vcpuLoad(this, hostCpu);
      this.enterGuest();
    });
    return true;
  }
  /** Scheduled out by the host after a preemption (vcpu->preempted). */
  preempted = false;
  /** Between VMLAUNCH/VMRESUME and the first guest instruction. */
  private entering = false;

  private preemptStep(): void {
    if (this.stepEvent !== undefined && this.stepEvent.pending) {
      this.host.scheduler.cancel(this.stepEvent);
      const op = this.stepOp;
      if (op !== undefined && op.op === 'compute') {
        const left = this.stepEndsAt - this.host.scheduler.now;
        if (left > 0) {
          // The step was charged whole when it began; the part not run is charged again when
          // it resumes, so take it back now.
          this.charge(-left);
          this.ops.push({ op: 'compute', ns: left, ...(op.fn !== undefined ? { fn: op.fn } : {}) });
        }
      } else if (op !== undefined) {
        this.ops.push(op);
      }
    }
    this.stepEvent = undefined;
    this.stepOp = undefined;
  }

  /**
   * vcpu_enter_guest's KVM_REQ_EVENT work as a guest running with IF=0 shows it:
   * kvm_apic_accept_events, then kvm_check_and_inject_events asking
   * kvm_cpu_has_injectable_intr — which recomputes PPR unless the PIC's ExtINT answers first.
   * NMI injection is left to the caller (the golden replay models the guest's NMI stub), and
   * the guest is taken to run with RFLAGS.IF=0, as the recorder's guest does.
   */
  processEventRequestAtEntry(): void {
    // An open interrupt-window request re-runs the check at every entry, as KVM_REQ_EVENT does
    // (recorded: PPR left stale while the PIC's ExtINT was pending is recomputed at the first
    // entry after the PIC output drops, with no new event raised).
    if (!(this.requests & REQ_EVENT) && !this.irqWindowRequested) return;
    this.requests &= ~REQ_EVENT;
    this.acceptEvents();
    if (this.mpState === MP_STATE.INIT_RECEIVED) return;
    const ext = this.pendingExtInt();
    const vec = ext ? -1 : this.lapic.hasInterrupt();
    // The guest runs with IF=0: anything injectable leaves an interrupt window requested.
    this.irqWindowRequested = ext || vec !== -1;
  }

  // ---- VcpuInterruptTarget --------------------------------------------------------
  /** kvm_cpu_has_injectable_intr: ExtINT from the PIC or a LAPIC vector above PPR. */
  hasPendingInterrupt(): boolean {
    // kvm_cpu_has_interrupt → kvm_apic_has_interrupt → apic_has_interrupt_for_ppr, which with
    // APICv first syncs the posted-interrupt descriptor (PIR → IRR): a post that found the vCPU
    // outside guest mode left ON set and, once it blocks, will not notify again.
    if (this.host.apicvActive) this.host.pirSync?.(this.vcpuId, 'apic_has_interrupt_for_ppr');
    return this.pendingExtInt() || this.lapic.hasInterrupt() !== -1;
  }
  private pendingExtInt(): boolean {
    return this.host.picHasInterrupt() && this.lapic.acceptsPicInterrupts();
  }
  /** The CPU's PIR → vIRR merge: IRR bits without KVM_REQ_EVENT; taken at once in guest mode. */
  syncPirToIrr(vectors: readonly number[]): void {
    for (const v of vectors) this.lapic.setIrr(v);
    // During VM entry the entry itself evaluates vIRR (enterGuest's continuation).
    if (this.mode === 'in-guest' && this.running && this.ifFlag && !this.entering) {
      this.virtualInterruptDelivery();
      // The delivery interrupted the guest's current step; the guest goes on (with the
      // handler first) on its own thread.
      if (this.stepEvent === undefined) this.stepEvent = this.host.scheduler.after(0, this.actor, this.runStep, STEP_GUEST);
    }
  }

  // ---- MP state / events ------------------------------------------------------------
  /** process_nmi */
  processNmi(): void {
    const limit = this.nmiMasked || this.nmiInjected ? 1 : 2;
    this.nmiPending = Math.min(this.nmiPending + this.nmiQueued, limit);
    this.nmiQueued = 0;
  }

  /** kvm_apic_accept_events: INIT resets the vCPU, SIPI starts an AP waiting for it. */
  acceptEvents(): void {
    if (this.lapic.pendingEvents === 0) return;
    const ev = this.lapic.takePendingEvents();
    if (ev.init) {
      this.initResets++;
      this.resetForInit();
      this.mpState = this.apicBaseBsp ? MP_STATE.RUNNABLE : MP_STATE.INIT_RECEIVED;
    }
    if (ev.sipi && this.mpState === MP_STATE.INIT_RECEIVED) {
      if (this.host.tracing) this.host.trace('kvm_vcpu_deliver_sipi_vector', 'kvm_apic_accept_events', { vcpu: this.vcpuId, vector: ev.sipiVector });
      this.mpState = MP_STATE.RUNNABLE;
    }
  }

  private resetForInit(): void {
    // kvm_vcpu_reset(init_event) and the vendor reset also drop NMI blocking (recorded).
    this.nmiMasked = false;
    this.nmiInjected = false;
    this.nmiQueued = 0;
    this.nmiPending = 0;
    this.pvUnhalted = false;
    this.lapic.reset(true);
  }

  /** KVM_GET_MP_STATE (processes pending INIT/SIPI first). */
  getMpState(): number {
    this.acceptEvents();
    if ((this.mpState === MP_STATE.HALTED) && this.pvUnhalted) return MP_STATE.RUNNABLE;
    return this.mpState;
  }

  /** KVM_GET_VCPU_EVENTS (interrupt-related fields). */
  getEvents(): VcpuEventsJson {
    this.processNmi();
    return {
      cpu: this.vcpuId,
      nmi_pending: this.nmiPending,
      nmi_injected: this.nmiInjected ? 1 : 0,
      nmi_masked: this.nmiMasked ? 1 : 0,
      smi_pending: 0,
      smm: 0,
      latched_init: this.lapic.latchedInit ? 1 : 0,
      sipi_vector: 0,
      interrupt_injected: 0,
      interrupt_nr: 0,
      exception_pending: 0,
      exception_injected: 0,
    };
  }

  /** KVM_SET_MSRS for the MSRs interrupt delivery cares about; returns the number written (0 or 1). */
  setMsr(index: number, value: bigint): number {
    if (index === MSR_IA32_APICBASE) return this.lapic.setBase(Number(value), true) === 0 ? 1 : 0;
    if (index === MSR_IA32_TSC_DEADLINE) {
      // kvm_set_lapic_tscdeadline_msr does nothing without an in-kernel LAPIC.
      if (!this.userspaceIrqchip) this.timer.setTscDeadline(Number(value), 'kvm_set_msr_common', !this.blocked);
      return 1;
    }
    if (index >= 0x800 && index <= 0x8ff) return this.lapic.msrWrite(index, value) === 0 ? 1 : 0;
    return 0;
  }

  // ---- the run loop ------------------------------------------------------------------
  /** Attach guest code. */
  setGuest(guest: GuestModel | undefined): void {
    this.guest = guest;
  }

  /** KVM_RUN: start the run loop on the vCPU thread (returns at once; the loop is scheduled). */
  run(): void {
    if (this.running) return;
    if (this.guest === undefined) throw this.host.noGuestError(this.vcpuId);
    this.running = true;
    this.mpState = MP_STATE.RUNNABLE;
    this.host.scheduler.after(0, this.actor, this.runStep, STEP_START);
  }

  /**
   * The vCPU thread's step chain. Every timed step of the thread's own ends in `thenAfter`;
   * when nothing else in the run is due before the step ends, the scheduler lets it continue
   * in place (Scheduler.continueAfter) — the same run, event for event, without a queued
   * event per step — and this loop takes it; otherwise the step is queued and comes back here.
   */
  private loop(first: number): void {
    this.looping = true;
    let step = first;
    try {
      while (step !== STEP_NONE) {
        this.nextStep = STEP_NONE;
        switch (step) {
          case STEP_ENTERED:
            this.entered();
            break;
          case STEP_GUEST:
            this.stepEvent = undefined;
            this.stepOp = undefined;
            this.guestStep();
            break;
          case STEP_EXIT_HANDLER:
            this.handleExit();
            break;
          case STEP_EXIT_DONE:
            if (this.exitHalts) this.halt();
            else if (this.exitToUser !== undefined) this.returnToUserspace();
            else this.enterGuest();
            break;
          case STEP_WOKEN:
            this.woken();
            break;
          case STEP_START:
            this.host.schedHooks?.vcpuLoad(this, this.hostCpu);
            this.enterGuest();
            break;
          case STEP_USERSPACE:
            this.returnToUserspace();
            break;
          case STEP_KVM_RUN:
            this.enterGuest();
            break;
          default:
            break;
        }
        step = this.nextStep;
      }
    } finally {
      this.looping = false;
      this.nextStep = STEP_NONE;
    }
  }

  /** The vCPU thread goes on with `step` in `delayNs`: in place when nothing else comes first, else queued. */
  private thenAfter(delayNs: number, step: number): ScheduledEvent | undefined {
    const s = this.host.scheduler;
    if (this.looping && s.continueAfter(delayNs, this.actor)) {
      this.nextStep = step;
      return undefined;
    }
    // Only a guest step can be cut short (preemptStep cancels it); the others need no handle.
    if (step === STEP_GUEST) return s.after(delayNs, this.actor, this.runStep, step);
    s.post(delayNs, this.actor, this.runStep, step);
    return undefined;
  }

  /** vcpu_enter_guest: requests, event injection, then VM entry. */
  private enterGuest(): void {
    const h = this.host;
    if (!this.running) return;
    const tr = h.tracing;
    const fastpath = this.fastpathExit;
    this.fastpathExit = false;
    if (fastpath && this.requests === 0 && !this.irqWindowRequested && this.reinjectVector < 0 && !this.timer.hasPending()) {
      // EXIT_FASTPATH_REENTER_GUEST: vcpu_enter_guest's own loop goes straight back in —
      // sync_pir_to_irr, then vmx_vcpu_run — with no request or event-injection work (a pending
      // request would have made kvm_vcpu_exit_request end the loop: the path below).
      h.scanIoapicOnEntry(this); // (a pending KVM_REQ_SCAN_IOAPIC ends the loop in KVM: done here instead)
      h.pirSync?.(this.vcpuId, 'vcpu_enter_guest');
      this.enterVmx(-1);
      return;
    }
    if (tr) h.trace('vcpu_enter_guest', 'vcpu_run', { vcpu: this.vcpuId });
    let vector = -1;
    if (this.userspaceIrqchip) {
      if (this.signalPending) {
        // signal_pending() before entry: KVM_RUN returns -EINTR with KVM_EXIT_INTR (QEMU's
        // kick arrived while the thread was outside guest mode: immediate_exit).
        this.signalPending = false;
        this.leaveToUserspace('KVM_EXIT_INTR');
        return;
      }
      vector = this.userspaceEntryEvent();
    } else {
      // vcpu_run: an expiry the exit or the hrtimer left pending is injected before the entry.
      this.injectPendingTimer();
      h.scanIoapicOnEntry(this);
      if (this.reinjectVector >= 0) {
        // kvm_check_and_inject_events: the cancelled entry's interrupt first, as it was; a
        // newer one cannot be injected alongside it, so it gets an interrupt window.
        vector = this.reinjectVector;
        this.reinjectVector = -1;
        this.requests &= ~REQ_EVENT;
        this.charge(h.costs.ns.injectIrq);
        if (tr) h.trace('vmx_inject_irq', 'inject_pending_event', { vcpu: this.vcpuId, vector, reinjected: true }, h.costs.ns.injectIrq);
        if (this.hasPendingInterrupt()) {
          if (tr) h.trace('vmx_enable_irq_window', 'inject_pending_event', { vcpu: this.vcpuId });
          this.irqWindowRequested = true;
        }
      } else if (this.requests & REQ_EVENT || this.irqWindowRequested) {
        this.requests &= ~REQ_EVENT;
        if (tr) h.trace('kvm_check_request', 'vcpu_enter_guest', { vcpu: this.vcpuId, req: 'KVM_REQ_EVENT' });
        this.acceptEvents();
        vector = this.injectPendingEvent();
      }
    }
    h.pirSync?.(this.vcpuId, 'vcpu_enter_guest');
    this.enterVmx(vector);
  }

  /** vmx_vcpu_run: VM entry (injecting `vector`, -1: none), the preemption timer armed for it. */
  private enterVmx(vector: number): void {
    const h = this.host;
    const entry = h.costs.ns.vmEntry;
    this.charge(entry);
    this.mode = 'in-guest';
    if (h.tracing) h.trace('vmx_vcpu_run', 'vcpu_enter_guest', { vcpu: this.vcpuId }, entry);
    this.entering = true;
    this.entryVector = vector;
    if (!this.userspaceIrqchip) this.armHvTimer(entry);
    this.thenAfter(entry, STEP_ENTERED);
  }
  /** The exit being handled was handled in the fastpath (vmx_exit_handlers_fastpath). */
  private fastpathExit = false;

  /** VM entry done: the injected event (or a vIRR vector) is taken, then the guest runs. */
  private entered(): void {
    const h = this.host;
    this.entering = false;
    const vector = this.entryVector;
    this.entryVector = -1;
    if (this.entryCancelled) {
      this.cancelEntry(vector);
      return;
    }
    if (vector >= 0) this.beginHandler(vector);
    else if (h.apicvActive && this.ifFlag && this.lapic.hasInterrupt() !== -1) this.virtualInterruptDelivery();
    else if (this.irqWindowRequested && this.ifFlag && this.userspaceIrqchip) {
      // Interrupt-window exiting with RFLAGS.IF already set: the CPU exits before the first instruction.
      this.deferredExitVector = -1;
      this.vmExit('PENDING_INTERRUPT', 'handle_interrupt_window', NO_ARGS, 0, this.irqWindowOpen);
      return;
    }
    const p = this.deferredPreempt;
    if (p !== undefined) {
      this.deferredPreempt = undefined;
      this.deferredExitVector = -1;
      this.preempt(p.durationNs, p.hostCpu);
      return;
    }
    if (this.deferredExitVector >= 0) {
      const v = this.deferredExitVector;
      this.deferredExitVector = -1;
      this.externalInterruptExit(v);
      return;
    }
    if (this.hvDueAtEntry) {
      // A preemption timer that reached zero exits before the guest's first instruction.
      this.preemptionTimerExit();
      return;
    }
    this.guestStep();
  }

  /**
   * kvm_vcpu_exit_request caught a request before VMRESUME: cancel_injection puts the injected
   * interrupt back (vcpu->arch.interrupt.injected: re-injected as it is, not acknowledged again)
   * and vcpu_enter_guest runs again. Host interrupts that arrived meanwhile were taken in host
   * mode, not as exits.
   */
  private cancelEntry(vector: number): void {
    const h = this.host;
    this.entryCancelled = false;
    this.mode = 'outside-guest';
    this.deferredExitVector = -1;
    if (vector >= 0) {
      if (h.tracing) h.trace('vmx_cancel_injection', 'vcpu_enter_guest', { vcpu: this.vcpuId, vector });
      this.reinjectVector = vector;
    }
    this.enterGuest();
  }
  /** A kick caught by the entry's request check (see `kick`). */
  private entryCancelled = false;
  /** The interrupt a cancelled entry had injected, injected again at the next one (-1: none). */
  private reinjectVector = -1;

  /** inject_pending_event: NMI, then ExtINT / LAPIC interrupt if IF allows, else an interrupt window. */
  private injectPendingEvent(): number {
    const h = this.host;
    const tr = h.tracing;
    if (tr) h.trace('inject_pending_event', 'vcpu_enter_guest', { vcpu: this.vcpuId });
    this.processNmi();
    if (this.nmiPending > 0 && !this.nmiMasked) {
      this.nmiPending--;
      if (tr) h.trace('vmx_inject_nmi', 'inject_pending_event', { vcpu: this.vcpuId });
      this.charge(h.costs.ns.injectIrq);
      return 2;
    }
    const ext = this.pendingExtInt();
    const lapicVec = ext || h.apicvActive ? -1 : this.lapic.hasInterrupt();
    if (!ext && lapicVec === -1) {
      this.irqWindowRequested = false;
      return -1;
    }
    if (!this.ifFlag) {
      if (!this.irqWindowRequested && tr) h.trace('vmx_enable_irq_window', 'inject_pending_event', { vcpu: this.vcpuId });
      this.irqWindowRequested = true;
      return -1;
    }
    this.irqWindowRequested = false;
    let vector: number;
    if (ext) vector = h.picReadIrq();
    else {
      vector = lapicVec;
      this.lapic.ackInterrupt(vector);
    }
    if (tr) h.trace('kvm_cpu_get_interrupt', 'inject_pending_event', { vcpu: this.vcpuId, vector });
    this.charge(h.costs.ns.injectIrq);
    if (tr) h.trace('vmx_inject_irq', 'inject_pending_event', { vcpu: this.vcpuId, vector }, h.costs.ns.injectIrq);
    this.injected++;
    // kvm_check_and_inject_events: another injectable interrupt behind this one (a LAPIC vector
    // behind the PIC's ExtINT, say) opens an interrupt window, so it is injected as soon as the
    // guest can take it instead of waiting for an unrelated KVM_REQ_EVENT. With APICv active
    // kvm_cpu_has_injectable_intr counts only ExtINT: vIRR vectors are the CPU's to deliver.
    if (this.pendingExtInt() || (!h.apicvActive && this.lapic.hasInterrupt() !== -1)) {
      if (tr) h.trace('vmx_enable_irq_window', 'inject_pending_event', { vcpu: this.vcpuId });
      this.irqWindowRequested = true;
    }
    return vector;
  }

  /** APICv virtual-interrupt delivery: the CPU takes the highest vIRR vector itself (no exit). */
  private virtualInterruptDelivery(): void {
    const v = this.lapic.hasInterrupt();
    if (v === -1) return;
    this.preemptStep();
    this.lapic.ackInterrupt(v);
    this.injected++;
    // The CPU's own step in VMX non-root mode (SDM "Virtual-Interrupt Delivery"), on the vCPU thread's CPU.
    if (this.host.tracing) this.host.trace('hw:virtual_interrupt_delivery', undefined, { vcpu: this.vcpuId, vector: v }, undefined, this.actor);
    this.beginHandler(v);
  }

  private beginHandler(vector: number): void {
    const g = this.guest!;
    const h = this.host;
    // The CPU delivers the vector through the guest's IDT (no kernel function of its own: hw:).
    if (h.tracing) h.trace('hw:guest_interrupt', undefined, { vcpu: this.vcpuId, vector }, undefined, this.guestTask());
    let body: readonly GuestOp[] | undefined;
    if (g.interrupt !== undefined) {
      const cpuBefore = this.actor.cpuTimeNs;
      // The guest's handler is guest kernel code: what it traces (its virtio driver's
      // vring_interrupt …) is the guest's, not the vCPU thread's.
      const a = this.actor;
      const outer = a.traceAs;
      a.traceAs = this.guestTask();
      try {
        body = g.interrupt(this.vcpuId, vector);
      } finally {
        a.traceAs = outer;
      }
      if (this.actor.cpuTimeNs !== cpuBefore) this.clock.defer(cpuBefore);
    }
    body ??= [{ op: 'compute', ns: h.costs.ns.guestHandler, fn: 'common_interrupt' } as const, OP_EOI];
    // The handler's body, then (if IF was set) the STI its IRET amounts to, run before anything queued.
    if (this.ifFlag) this.ops.push(OP_STI);
    this.ifFlag = false;
    this.queueFirst(body);
  }

  /** Charges the vCPU thread `ns` from now on (see VcpuCpuClock). */
  private charge(ns: number): void {
    this.clock.charge(ns);
  }
  private readonly clock: VcpuCpuClock;

  /** Takes back the CPU time charged beyond now (steps in flight when a run stops). */
  settleCpuTime(): void {
    this.clock.settle();
  }

  /** The guest's task on this vCPU (guest/vcpuN), which its code's trace events name. */
  private guestTask(): Actor {
    this.guestActorCache ??= this.host.guestActor(this);
    return this.guestActorCache;
  }
  private guestActorCache: Actor | undefined;

  /** Queues `ops` to run next, in order, before anything already queued. */
  private queueFirst(ops: readonly GuestOp[]): void {
    for (let i = ops.length - 1; i >= 0; i--) this.ops.push(ops[i]!);
  }

  /** Runs the guest's next operation. */
  private guestStep(): void {
    if (!this.running || this.mode !== 'in-guest') return;
    const h = this.host;
    let op = this.ops.pop();
    if (op === undefined) {
      const cpuBefore = this.actor.cpuTimeNs;
      const a = this.actor;
      const outer = a.traceAs;
      a.traceAs = this.guestTask();
      try {
        op = this.guest!.next(this.vcpuId);
      } finally {
        a.traceAs = outer;
      }
      if (this.actor.cpuTimeNs !== cpuBefore) this.clock.defer(cpuBefore);
    }
    const ns = h.costs.ns;
    switch (op.op) {
      case 'compute':
        this.stepOp = op;
        this.stepEndsAt = h.scheduler.now + op.ns;
        this.charge(op.ns);
        if (h.tracing && op.fn !== undefined) h.trace(op.fn, 'guest', { vcpu: this.vcpuId }, op.ns, this.guestTask());
        this.stepEvent = this.thenAfter(op.ns, STEP_GUEST);
        return;
      case 'sti':
        this.ifFlag = true;
        if (h.apicvActive && !this.irqWindowRequested && this.pendingExtInt() === false) {
          // Virtual-interrupt delivery: with IF set again the CPU evaluates RVI against PPR and
          // takes a pending vIRR vector itself, no exit (SDM "Virtual-Interrupt Delivery").
          if (this.lapic.hasInterrupt() !== -1) this.virtualInterruptDelivery();
          this.guestStep();
          return;
        }
        if (this.irqWindowRequested || (this.requests & REQ_EVENT && this.hasPendingInterrupt())) {
          this.vmExit('PENDING_INTERRUPT', 'handle_interrupt_window', {}, 0, this.userspaceIrqchip ? this.irqWindowOpen : NOOP_HANDLER);
          return;
        }
        this.guestStep();
        return;
      case 'call': {
        // Guest code at this point of the vCPU's instruction stream (a driver routine); what
        // it returns runs next.
        const cpuBefore = this.actor.cpuTimeNs;
        const a = this.actor;
        const outer = a.traceAs;
        let more: readonly GuestOp[] | void;
        a.traceAs = this.guestTask();
        try {
          more = op.run();
        } finally {
          a.traceAs = outer;
        }
        if (this.actor.cpuTimeNs !== cpuBefore) this.clock.defer(cpuBefore);
        if (more !== undefined && more.length > 0) this.queueFirst(more);
        this.guestStep();
        return;
      }
      case 'cli':
        this.ifFlag = false;
        this.guestStep();
        return;
      case 'eoi':
        if (this.userspaceIrqchip) {
          // No APIC-access page: the EOI register is plain MMIO that QEMU's "apic-msi" region owns.
          if (h.tracing) h.trace('native_apic_mem_eoi', 'apic_eoi', { vcpu: this.vcpuId }, undefined, this.guestTask());
          this.guestIo({ op: 'mmio-write', addr: this.lapic.baseAddress + APIC.EOI, len: 4, value: 0 });
        } else if (this.lapic.x2apicMode) {
          this.vmExit('MSR_WRITE', 'handle_wrmsr', EOI_MSR_ARGS, ns.apicAccessEmulation, this.eoiByMsr);
        } else if (h.apicvActive && !h.ioapicHandlesEoi(this)) {
          this.charge(ns.guestEoiNoExit);
          if (h.tracing) h.trace('native_apic_mem_eoi', 'apic_eoi', { vcpu: this.vcpuId, virtualized: true }, ns.guestEoiNoExit, this.guestTask());
          this.lapic.virtualEoi();
          this.stepEvent = this.thenAfter(ns.guestEoiNoExit, STEP_GUEST);
        } else if (h.apicvActive) {
          this.vmExit('EOI_INDUCED', 'handle_apic_eoi_induced', NO_ARGS, ns.apicAccessEmulation, this.eoiInduced);
        } else {
          if (h.tracing) h.trace('native_apic_mem_eoi', 'apic_eoi', { vcpu: this.vcpuId }, undefined, this.guestTask());
          const addr = h.tracing ? this.lapic.baseAddress + APIC.EOI : 0;
          this.vmExit('APIC_ACCESS', 'handle_apic_access', h.tracing ? { addr } : NO_ARGS, ns.apicAccessEmulation, this.eoiByMmio);
        }
        return;
      case 'hlt':
        this.vmExit('HLT', 'kvm_emulate_halt', NO_ARGS, 0, this.userspaceIrqchip ? this.haltToUserspace : HALT);
        return;
      case 'stop':
        this.mode = 'outside-guest';
        this.running = false;
        h.schedHooks?.vcpuPut(this, 'exit');
        return;
      case 'msr-write':
        if (op.index === MSR_IA32_TSC_DEADLINE && !this.userspaceIrqchip) {
          // Handled in the fastpath, before interrupts are re-enabled: the deadline is stored and
          // the preemption timer armed for the re-entry.
          this.vmExit('MSR_WRITE', 'handle_fastpath_set_msr_irqoff', { msr: op.index }, ns.apicAccessEmulation, () => {
            this.timer.setTscDeadline(Number(op.value), 'handle_fastpath_set_tscdeadline', true);
            return undefined;
          });
          return;
        }
        this.vmExit('MSR_WRITE', 'handle_wrmsr', { msr: op.index }, ns.apicAccessEmulation, () => (this.setMsr(op.index, op.value), undefined));
        return;
      case 'mmio-write':
      case 'mmio-read':
      case 'pio-write':
      case 'pio-read':
        this.guestIo(op);
        return;
      default:
        return;
    }
  }

  private guestIo(op: Extract<GuestOp, { op: 'mmio-write' | 'mmio-read' | 'pio-write' | 'pio-read' }>): void {
    const h = this.host;
    const ns = h.costs.ns;
    if (h.tracing && op.fn !== undefined) h.trace(op.fn, 'guest', { vcpu: this.vcpuId }, undefined, this.guestTask());
    if (op.op === 'pio-write' || op.op === 'pio-read') {
      this.vmExit('IO_INSTRUCTION', 'handle_io', { port: op.port, len: op.len }, 0, () => {
        const r = h.guestPio(this, op.op === 'pio-write', op.port, op.len, op.op === 'pio-write' ? op.value : 0, op.applied === true);
        if (op.op === 'pio-read') op.done?.(r.value);
        if (r.toUserspace) this.userspaceAccess('KVM_EXIT_IO');
        return undefined;
      });
      return;
    }
    const addr = op.addr;
    if (this.lapic.mmioInRange(addr) && this.lapic.hwEnabled && !this.userspaceIrqchip) {
      this.vmExit('APIC_ACCESS', 'handle_apic_access', { addr }, ns.apicAccessEmulation, () => {
        if (op.op === 'mmio-write') this.lapic.mmioWrite(addr, op.len, op.value);
        else op.done?.(this.lapic.mmioRead(addr, op.len));
        return undefined;
      });
      return;
    }
    const fast = op.op === 'mmio-write' && h.fastMmioMatch(addr);
    this.vmExit('EPT_MISCONFIG', 'handle_ept_misconfig', { addr }, fast ? 0 : ns.mmioEmulation, () => {
      const r = h.guestMmio(this, op.op === 'mmio-write', addr, op.len, op.op === 'mmio-write' ? op.value : 0, op.op === 'mmio-read' && op.applied === true);
      if (op.op === 'mmio-read') op.done?.(r.value);
      if (r.toUserspace) this.userspaceAccess('KVM_EXIT_MMIO');
      return undefined;
    });
  }

  private userspaceNs = 0;
  private chargeUserspace(n: number): void {
    this.userspaceNs += n;
  }

  /**
   * A guest access no in-kernel device claimed went to the VMM (KVM_EXIT_IO / KVM_EXIT_MMIO;
   * the VM traced kvm_userspace_exit). Its device emulation already ran; with the userspace irqchip
   * QEMU's kvm_cpu_exec takes over before the next KVM_RUN.
   */
  private userspaceAccess(reason: 'KVM_EXIT_IO' | 'KVM_EXIT_MMIO'): void {
    const h = this.host;
    this.chargeUserspace(h.costs.ns.exitToUserspace);
    if (this.userspaceIrqchip) this.exitToUser = reason;
  }

  // ---- no in-kernel irqchip: KVM_INTERRUPT, the interrupt window, HLT and signals -------------
  /** Installs QEMU's side of the run loop (userspace irqchip only). */
  setUserspaceLoop(loop: VcpuUserspaceLoop | undefined): void {
    this.userspaceLoop = loop;
  }

  /**
   * KVM_INTERRUPT (kvm_vcpu_ioctl_interrupt): without an in-kernel irqchip the vector is queued
   * as `vcpu->arch.interrupt` (kvm_queue_interrupt) with KVM_REQ_EVENT and injected at the
   * next entry; with the in-kernel PIC it fails with ENXIO. Returns 0 or a negative errno.
   */
  kvmInterrupt(vector: number): number {
    const h = this.host;
    if (!Number.isInteger(vector) || vector < 0 || vector >= 256) return -22;
    if (!this.userspaceIrqchip) return -6;
    if (h.tracing) h.trace('kvm_vcpu_ioctl_interrupt', 'kvm_arch_vcpu_ioctl', { vcpu: this.vcpuId, irq: vector });
    this.queuedInterrupt = vector;
    this.requests |= REQ_EVENT;
    this.kvmInterrupts++;
    return 0;
  }

  /**
   * `kvm_run->ready_for_interrupt_injection` as post_kvm_run_save computes it without an
   * in-kernel PIC (kvm_vcpu_ready_for_interrupt_injection): RFLAGS.IF set and no interrupt
   * already queued (kvm_cpu_has_extint is `interrupt.injected` when the LAPIC is in userspace).
   */
  get readyForInterruptInjection(): boolean {
    return !this.userspaceIrqchip || (this.ifFlag && this.queuedInterrupt === -1);
  }

  /**
   * A signal to the vCPU thread (QEMU's qemu_cpu_kick: cond broadcast + pthread_kill SIG_IPI).
   * Parked in QEMU: the thread wakes. In guest mode: the host IPI that delivers the signal forces
   * an EXTERNAL_INTERRUPT exit, and vcpu_run sees signal_pending → KVM_EXIT_INTR. Elsewhere
   * (in the kernel or in QEMU between runs) the next KVM_RUN returns -EINTR at once.
   */
  qemuKick(): void {
    this.kicks++;
    const h = this.host;
    if (h.tracing) h.trace('cpus_kick_thread', 'qemu_cpu_kick', { vcpu: this.vcpuId, mode: this.mode, parked: this.blocked });
    if (this.blocked) {
      this.wakeUp();
      return;
    }
    this.signalPending = true;
    // The signal's delivery: signal_wake_up → kick_process IPIs the CPU the thread runs on.
    if (this.mode === 'in-guest' && h.scheduler.current !== this.actor) this.sendReschedIpi('kick_process');
  }

  /** QEMU time spent on the vCPU thread between two KVM_RUNs (delays the next entry). */
  chargeQemu(ns: number): void {
    this.qemuNs += ns;
    this.charge(ns);
  }

  /** At entry without an in-kernel LAPIC: inject what KVM_INTERRUPT queued, else open the window userspace asked for. */
  private userspaceEntryEvent(): number {
    const h = this.host;
    const tr = h.tracing;
    this.requests &= ~REQ_EVENT;
    const v = this.queuedInterrupt;
    if (v >= 0) {
      // kvm_check_and_inject_events: an interrupt already queued (interrupt.injected) is injected as is.
      this.queuedInterrupt = -1;
      // The window userspace asked for stays requested behind the injection (req_int_win).
      this.irqWindowRequested = this.requestInterruptWindow;
      this.charge(h.costs.ns.injectIrq);
      if (tr) h.trace('vmx_inject_irq', 'inject_pending_event', { vcpu: this.vcpuId, vector: v }, h.costs.ns.injectIrq);
      this.injected++;
      return v;
    }
    // dm_request_for_irq_injection: userspace wants an IRQ_WINDOW_OPEN exit once IF allows one.
    if (this.requestInterruptWindow) {
      if (!this.irqWindowRequested && tr) h.trace('vmx_enable_irq_window', 'vcpu_enter_guest', { vcpu: this.vcpuId });
      this.irqWindowRequested = true;
    } else this.irqWindowRequested = false;
    return -1;
  }

  /** handle_interrupt_window without an in-kernel irqchip: userspace asked for it → KVM_EXIT_IRQ_WINDOW_OPEN. */
  private readonly irqWindowOpen = (): undefined => {
    this.irqWindowRequested = false;
    if (this.requestInterruptWindow && this.readyForInterruptInjection) {
      this.exitToUser = 'KVM_EXIT_IRQ_WINDOW_OPEN';
      this.chargeUserspace(this.host.costs.ns.exitToUserspace);
      if (this.host.tracing) this.host.trace('kvm_userspace_exit', 'kvm_vcpu_ioctl', { vcpu: this.vcpuId, reason: 'KVM_EXIT_IRQ_WINDOW_OPEN' });
    }
    return undefined;
  };

  /** kvm_emulate_halt → __kvm_emulate_halt: no in-kernel LAPIC, so KVM_EXIT_HLT to userspace. */
  private readonly haltToUserspace = (): undefined => {
    this.exitToUser = 'KVM_EXIT_HLT';
    this.chargeUserspace(this.host.costs.ns.exitToUserspace);
    if (this.host.tracing) this.host.trace('kvm_userspace_exit', 'kvm_vcpu_ioctl', { vcpu: this.vcpuId, reason: 'KVM_EXIT_HLT' });
    return undefined;
  };

  /** KVM_RUN returns without a VM exit to handle (KVM_EXIT_INTR before entry). */
  private leaveToUserspace(reason: KvmUserspaceExitReason): void {
    const h = this.host;
    this.mode = 'outside-guest';
    this.exitToUser = reason;
    const ns = h.costs.ns.exitToUserspace;
    this.charge(ns);
    // The tracepoint is in kvm_vcpu_ioctl's KVM_RUN case, after vcpu_run returned.
    if (h.tracing) h.trace('kvm_userspace_exit', 'kvm_vcpu_ioctl', { vcpu: this.vcpuId, reason });
    this.thenAfter(ns, STEP_USERSPACE);
  }

  /** QEMU's kvm_cpu_exec with KVM_RUN's result: its loop decides whether to run again or park. */
  private returnToUserspace(): void {
    const reason = this.exitToUser!;
    this.exitToUser = undefined;
    this.userspaceExits.set(reason, (this.userspaceExits.get(reason) ?? 0) + 1);
    const loop = this.userspaceLoop;
    this.qemuNs = 0;
    if (loop !== undefined && loop.exit(this, reason) === 'park') {
      // Out of kvm_cpu_exec, waiting in qemu_wait_io_event until qemu_cpu_kick.
      this.blocked = true;
      return;
    }
    this.kvmRunAfterQemu();
  }

  /** The next KVM_RUN, once QEMU's work between runs (charged through chargeQemu) is done. */
  private kvmRunAfterQemu(): void {
    const ns = this.qemuNs;
    this.qemuNs = 0;
    if (ns > 0) this.thenAfter(ns, STEP_KVM_RUN);
    else this.enterGuest();
  }

  /**
   * A VM exit: count it, charge exit + handling, run the handler on the vCPU thread, then
   * re-enter (or block, for HLT with nothing pending).
   */
  private vmExit(reason: ExitReason, handler: string, args: Readonly<Record<string, number | string | boolean>>, handlingNs: number, fn: ExitHandler): void {
    const h = this.host;
    this.preemptStep();
    this.mode = 'outside-guest';
    this.exitCounts.count(reason);
    const exitNs = h.costs.ns.vmExit;
    this.charge(exitNs + handlingNs);
    if (h.tracing) {
      h.trace('kvm_exit', 'vmx_handle_exit', { vcpu: this.vcpuId, reason }, exitNs);
      // An external interrupt is handled before interrupts are re-enabled, by vcpu_enter_guest's
      // handle_exit_irqoff (vmx_handle_exit_irqoff), not by vmx_handle_exit's table.
      const caller = reason === 'EXTERNAL_INTERRUPT' ? 'vmx_handle_exit_irqoff' : handler.startsWith('handle_fastpath') ? 'vmx_exit_handlers_fastpath' : 'vmx_handle_exit';
      h.trace(handler, caller, { vcpu: this.vcpuId, ...args }, handlingNs);
    }
    this.exitHandler = fn;
    this.exitHandlingNs = handlingNs;
    this.fastpathExit = handler.startsWith('handle_fastpath');
    this.thenAfter(exitNs, STEP_EXIT_HANDLER);
  }

  /** The exit's handler on the vCPU thread, then halt or re-entry once its handling time has passed. */
  private handleExit(): void {
    const fn = this.exitHandler!;
    this.exitHandler = undefined;
    this.userspaceNs = 0;
    const cpuBefore = this.actor.cpuTimeNs;
    const ownBefore = this.clock.ownCharged;
    const halts = fn() === 'halt';
    // Code the handler ran on this thread charged it directly (QEMU's device emulation behind a
    // KVM_EXIT_MMIO/IO, a KVM_IRQ_LINE it issued): that time holds up the re-entry as well.
    const ran = this.clock.ranSince(cpuBefore, ownBefore);
    if (ran > 0) this.clock.extend(ran);
    const deferred = this.clock.takeDeferred();
    const extra = this.exitHandlingNs + this.userspaceNs + (ran > 0 ? ran : 0) + deferred;
    if (this.userspaceNs + deferred > 0) this.charge(this.userspaceNs + deferred);
    if (extra === 0) {
      // Nothing left to handle: the vCPU thread goes straight on (halt or re-entry).
      if (halts) this.halt();
      else if (this.exitToUser !== undefined) this.returnToUserspace();
      else this.enterGuest();
      return;
    }
    this.exitHalts = halts;
    this.thenAfter(extra, STEP_EXIT_DONE);
  }

  /** kvm_vcpu_halt → kvm_vcpu_block unless an event is pending. */
  private halt(): void {
    const h = this.host;
    // vcpu_run injects an expiry already pending before it blocks (kvm_inject_pending_timer_irqs).
    this.injectPendingTimer();
    if (this.hasPendingWork()) {
      this.enterGuest();
      return;
    }
    // vcpu_block: the preemption timer runs only in guest mode, so the hrtimer takes over.
    const hv = this.timer.hvTimerInUse;
    if (hv) {
      this.timer.switchToSw();
      this.injectPendingTimer();
      if (this.hasPendingWork()) {
        this.timer.switchToHv();
        this.enterGuest();
        return;
      }
    }
    this.timerSwapped = hv;
    this.mpState = MP_STATE.HALTED;
    this.blocked = true;
    if (h.tracing) h.trace('kvm_vcpu_block', 'kvm_vcpu_halt', { vcpu: this.vcpuId });
    const hooks = h.schedHooks;
    if (hooks !== undefined) {
      hooks.vcpuPut(this, 'blocking');
      // A wake-up may have raced with the block decision (the request/kick handshake): the
      // put hook (posted-interrupt descriptor switch) is the only thing that runs in between.
      if (this.hasPendingWork()) this.wakeUp();
    }
  }

  private hasPendingWork(): boolean {
    return (this.ifFlag && this.hasPendingInterrupt()) || this.nmiQueued + this.nmiPending > 0 || this.lapic.pendingEvents !== 0 || this.pvUnhalted;
  }
}
