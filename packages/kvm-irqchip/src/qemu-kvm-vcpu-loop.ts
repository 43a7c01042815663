import type { CostModel, Scheduler, TraceChannel } from '@virq/core';
import { CPU_INTERRUPT_HARD, CPU_INTERRUPT_POLL, QemuApic, type QemuApicBus, type QemuApicCpu } from './qemu-apic.js';
import type { KvmUserspaceExitReason, KvmVcpu, VcpuUserspaceLoop } from './vcpu.js';

/**
 * QEMU's side of one KVM vCPU thread when the irqchip is in userspace (`kernel-irqchip=off`):
 * CPUState's `interrupt_request` and `halted`, the CPU's APIC, and what kvm_cpu_exec does
 * between two KVM_RUN ioctls —
 * - `kvm_arch_process_async_events`: CPU_INTERRUPT_POLL → apic_poll_irq; an interrupt with
 *   IF set ends `halted`;
 * - `kvm_arch_pre_run`: with `ready_for_interrupt_injection`, CPU_INTERRUPT_HARD and IF, take
 *   the vector (cpu_get_pic_interrupt → apic_get_interrupt) and KVM_INTERRUPT it; ask for an
 *   interrupt window (`request_interrupt_window`) while HARD is still pending;
 * - `kvm_arch_post_run`: IF and readiness from `kvm_run`;
 * - exits: IO/MMIO continue the loop, IRQ_WINDOW_OPEN and INTR leave it (EXCP_INTERRUPT) and
 *   re-enter, HLT runs `kvm_handle_halt` (halted = 1, EXCP_HLT) and the thread waits in
 *   qemu_wait_io_event until `qemu_cpu_kick`.
 * `cpu_interrupt` from another thread kicks the vCPU (qemu_cpu_kick → SIG_IPI).
 */
export class QemuKvmCpu implements VcpuUserspaceLoop, QemuApicCpu {
  /** CPUState.interrupt_request */
  interruptRequest = 0;
  /** CPUState.halted */
  halted = false;
  /** env->eflags IF, as kvm_arch_post_run last copied it from kvm_run->if_flag. */
  eflagsIf = true;
  /** kvm_run->ready_for_interrupt_injection as of the last return from KVM_RUN. */
  readyForInjection = true;
  readonly apic: QemuApic;
  /** qemu_cpu_kick calls, KVM_INTERRUPT ioctls, waits on halt_cond. */
  kicks = 0;
  kvmInterrupts = 0;
  parks = 0;

  constructor(
    readonly vcpu: KvmVcpu,
    bus: QemuApicBus,
    private readonly scheduler: Scheduler,
    private readonly costs: CostModel,
    private readonly t: TraceChannel,
    /** pic_read_irq(isa_pic): the 8259's INTA (cpu_get_pic_interrupt's fallback). */
    private readonly picReadIrq: () => number,
  ) {
    this.apic = new QemuApic(vcpu.vcpuId, bus, this);
    vcpu.setUserspaceLoop(this);
  }

  /** qemu_cpu_is_self */
  get isSelf(): boolean {
    return this.scheduler.current === this.vcpu.actor;
  }

  /** cpu_interrupt → generic_handle_interrupt: set the bits, kick the CPU unless it is the caller. */
  interrupt(mask: number, caller: string): void {
    if (this.t.on) this.t.emit('qemu.cpu_interrupt', 'cpu_interrupt', caller, { cpu: this.vcpu.vcpuId, mask: mask === CPU_INTERRUPT_HARD ? 'HARD' : mask === CPU_INTERRUPT_POLL ? 'POLL' : mask });
    this.interruptRequest |= mask;
    if (!this.isSelf) this.kick('generic_handle_interrupt');
  }

  resetInterrupt(mask: number): void {
    this.interruptRequest &= ~mask;
  }

  /** qemu_cpu_kick: wake the thread from halt_cond and signal it (SIG_IPI). */
  kick(caller: string): void {
    this.kicks++;
    if (this.t.on) this.t.emit('qemu.qemu_cpu_kick', 'qemu_cpu_kick', caller, { cpu: this.vcpu.vcpuId });
    this.vcpu.qemuKick();
  }

  /** cpu_has_work (x86_cpu_has_work): POLL, or HARD with IF set. */
  private hasWork(): boolean {
    const r = this.interruptRequest;
    return (r & CPU_INTERRUPT_POLL) !== 0 || ((r & CPU_INTERRUPT_HARD) !== 0 && this.eflagsIf);
  }

  /** kvm_arch_process_async_events: true while the CPU stays halted. */
  private processAsyncEvents(): boolean {
    if (this.interruptRequest & CPU_INTERRUPT_POLL) {
      this.interruptRequest &= ~CPU_INTERRUPT_POLL;
      this.apic.pollIrq();
    }
    if (this.interruptRequest & CPU_INTERRUPT_HARD && this.eflagsIf) this.halted = false;
    return this.halted;
  }

  /** kvm_cpu_exec from its start: async events, then the first pre-run. */
  private cpuExec(): 'run' | 'park' {
    if (this.processAsyncEvents()) return this.park();
    this.preRun();
    return 'run';
  }

  /** qemu_wait_io_event: wait on halt_cond while cpu_thread_is_idle. */
  private park(): 'run' | 'park' {
    if (this.halted && !this.hasWork()) {
      this.parks++;
      if (this.t.on) this.t.emit('qemu.qemu_wait_io_event', 'qemu_wait_io_event', 'kvm_vcpu_thread_fn', { cpu: this.vcpu.vcpuId });
      return 'park';
    }
    return this.cpuExec();
  }

  /** cpu_get_pic_interrupt: the APIC's vector, else the 8259's if LINT0 takes ExtINT. */
  private getPicInterrupt(): number {
    const v = this.apic.getInterrupt();
    if (v >= 0) return v;
    if (!this.apic.acceptPicIntr()) return -1;
    return this.picReadIrq();
  }

  /** kvm_arch_pre_run (the !kvm_pic_in_kernel part). */
  private preRun(): void {
    const v = this.vcpu;
    if (this.readyForInjection && this.interruptRequest & CPU_INTERRUPT_HARD && this.eflagsIf) {
      this.interruptRequest &= ~CPU_INTERRUPT_HARD;
      const irq = this.getPicInterrupt();
      if (irq >= 0) {
        if (this.t.on) this.t.emit('qemu.kvm_vcpu_ioctl', 'kvm_vcpu_ioctl', 'kvm_arch_pre_run', { cpu: v.vcpuId, ioctl: 'KVM_INTERRUPT', irq });
        v.chargeQemu(this.costs.ns.syscall);
        if (v.kvmInterrupt(irq) === 0) {
          this.kvmInterrupts++;
          // The interrupt is queued in KVM now: not ready for another until the next exit says so.
          this.readyForInjection = false;
        }
      }
    }
    const want = (this.interruptRequest & CPU_INTERRUPT_HARD) !== 0;
    if (want !== v.requestInterruptWindow && this.t.on) this.t.emit('qemu.kvm_arch_pre_run', 'kvm_arch_pre_run', 'kvm_cpu_exec', { cpu: v.vcpuId, request_interrupt_window: want });
    v.requestInterruptWindow = want;
  }

  /** kvm_arch_post_run: RFLAGS.IF and readiness from kvm_run. */
  private postRun(): void {
    this.eflagsIf = this.vcpu.ifFlag;
    this.readyForInjection = this.vcpu.readyForInterruptInjection;
  }

  // ---- VcpuUserspaceLoop ------------------------------------------------------------------
  exit(vcpu: KvmVcpu, reason: KvmUserspaceExitReason): 'run' | 'park' {
    this.postRun();
    if (this.t.on) this.t.emit('qemu.kvm_run_exit', 'kvm_run_exit', 'kvm_cpu_exec', { cpu: vcpu.vcpuId, reason });
    switch (reason) {
      case 'KVM_EXIT_IO':
      case 'KVM_EXIT_MMIO':
        // Handled (kvm_handle_io / address_space_rw) before this point; the loop goes on.
        this.preRun();
        return 'run';
      case 'KVM_EXIT_IRQ_WINDOW_OPEN':
      case 'KVM_EXIT_INTR':
        // EXCP_INTERRUPT: out of kvm_cpu_exec, qemu_wait_io_event has nothing to wait for, back in.
        return this.cpuExec();
      case 'KVM_EXIT_HLT':
        // kvm_handle_halt
        if (!(this.interruptRequest & CPU_INTERRUPT_HARD && this.eflagsIf)) {
          this.halted = true;
          if (this.t.on) this.t.emit('qemu.kvm_handle_halt', 'kvm_handle_halt', 'kvm_arch_handle_exit', { cpu: vcpu.vcpuId, halted: true });
          return this.park();
        }
        this.preRun();
        return 'run';
      default: {
        const never: never = reason;
        return never;
      }
    }
  }

  wake(_vcpu: KvmVcpu): 'run' | 'park' {
    return this.park();
  }
}
