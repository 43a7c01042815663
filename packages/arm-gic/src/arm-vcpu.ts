import type { Actor, ScheduledEvent, SimContext, TraceChannel, VcpuInterruptTarget } from '@virq/core';
import type { PhysicalIrqSink } from './arm-host.js';
import { INTID_SPURIOUS } from './registers.js';
import type { VgicCpu } from './vgic.js';
import type { Vpe, VpeListener } from './vpe.js';

/** arm64 exit reasons virq models (ESR_EL2.EC classes KVM's handle_exit dispatches on). */
export type ArmExitReason = 'IRQ' | 'WFx' | 'HVC' | 'DABT_LOW' | 'SYS64';

/** ESR_EL2 exception classes (ESR_ELx_EC_*) for the trace. */
export const ARM_EXIT_EC: Readonly<Record<ArmExitReason, number>> = { IRQ: 0, WFx: 0x01, HVC: 0x16, SYS64: 0x18, DABT_LOW: 0x24 };

export type ArmVcpuState = 'stopped' | 'host' | 'guest' | 'blocked' | 'preempted';

/** Guest MMIO access that caused a DABT_LOW exit. */
export interface GuestMmioAccess {
  readonly addr: number;
  readonly len: 1 | 2 | 4 | 8;
  readonly write: boolean;
  readonly value: bigint;
  readonly done?: (value: bigint) => void;
  /** Guest code already made this read and the VMM's device acted on it; only the exit remains. */
  readonly applied?: boolean;
}

/** The VM services a vCPU's run loop calls into (implemented by ArmVm). */
export interface ArmVcpuHost {
  readonly ctx: SimContext;
  readonly channel: TraceChannel;
  readonly vhe: boolean;
  /** vgic_v4_load (GICv4): make the vPE resident on this CPU's redistributor. */
  vgicV4Load(vcpu: ArmVcpu, caller?: string): void;
  /** vgic_v4_put (GICv4): make the vPE non-resident, doorbell armed when blocking. */
  vgicV4Put(vcpu: ArmVcpu, needDoorbell: boolean, caller?: string): void;
  /** io_mem_abort: returns true when handled in the kernel (vGIC frames, ioeventfd). */
  handleMmio(vcpu: ArmVcpu, access: GuestMmioAccess): boolean;
  /** KVM_EXIT_MMIO: what the VMM does with an access the kernel did not handle. */
  readonly userspaceMmio?: ((vcpu: ArmVcpu, access: GuestMmioAccess) => void) | undefined;
  /** vgic_v3_dispatch_sgi (trapped ICC_SGI1R_EL1 write). */
  dispatchSgi(vcpu: ArmVcpu, value: bigint): void;
  /** Drives the maintenance interrupt (PPI 25) of host CPU `cpu`. */
  setMaintenanceLevel(cpu: number, level: boolean): void;
  /** The host: physical interrupts pending at this CPU are handled on the exit path. */
  occupy(cpu: number, sink: PhysicalIrqSink): void;
  vacate(cpu: number): void;
  handleHostIrqs(cpu: number, actor: Actor): void;
}

/**
 * kvm_arch_vcpu_load / kvm_arch_vcpu_put listeners (the arch timer's kvm_timer_vcpu_load /
 * kvm_timer_vcpu_put): load when the vCPU thread starts or comes back on a CPU, put when it
 * blocks in WFI (`blocking`) or is preempted.
 */
export interface ArmVcpuLoadPutListener {
  vcpuLoad(vcpu: ArmVcpu): void;
  vcpuPut(vcpu: ArmVcpu, blocking: boolean): void;
}

/** The guest side of a vCPU: its interrupt handlers and what it does when idle. */
export interface ArmGuestBehaviour {
  /** WFI when nothing is pending (an idle guest); false = a busy guest that never idles. */
  idleWithWfi: boolean;
  /** ICC_CTLR_EL1.EOImode of the guest (Linux guests at EL1: 0). */
  eoiMode: boolean;
}

/**
 * A KVM arm64 vCPU thread (`CPU n/KVM`): the KVM_RUN loop with its world switch costs,
 * kvm_vgic_flush_hwstate before entry and kvm_vgic_sync_hwstate after exit, exits with
 * their ESR classes (IRQ, WFx, HVC, DABT_LOW, SYS64), kvm_vcpu_kick (IPI to a running vCPU,
 * wake-up of a blocked one), blocking in WFI (with the GICv4 doorbell armed) and preemption
 * (vPE residency follows scheduling). The guest's interrupt handling goes through the
 * virtual CPU interface — acknowledge and EOI never exit.
 */
export class ArmVcpu implements VcpuInterruptTarget, PhysicalIrqSink, VpeListener {
  readonly arch = 'arm64' as const;
  readonly actor: Actor;
  state: ArmVcpuState = 'stopped';
  readonly exits: Record<ArmExitReason, number> = { IRQ: 0, WFx: 0, HVC: 0, DABT_LOW: 0, SYS64: 0 };
  /** KVM_REQ_IRQ_PENDING. */
  private irqRequest = false;
  private ipiInFlight = false;
  private inHandler = false;
  private deferredExit: { reason: ArmExitReason; detail: string } | undefined;
  private readonly guestActions: Array<() => void> = [];
  private preemptFor = 0;
  private directEvent: ScheduledEvent | undefined;
  /** GICv4: the vPE of this vCPU (set by the VM). */
  vpe: Vpe | undefined;
  readonly guest: ArmGuestBehaviour = { idleWithWfi: true, eoiMode: false };
  private readonly handlers = new Map<number, (intid: number) => void>();
  /** Called on kvm_arch_vcpu_load / kvm_arch_vcpu_put (see ArmVcpuLoadPutListener). */
  readonly loadPutListeners: ArmVcpuLoadPutListener[] = [];
  /** Between kvm_arch_vcpu_load and kvm_arch_vcpu_put. */
  private loaded = false;
  /** Interrupts the guest acknowledged, and how many of them came straight from a vPE. */
  readonly stats = { entries: 0, guestInterrupts: 0, kicks: 0, ipis: 0, wakeups: 0, maintenance: 0 };
  /** Virtual time of every guest acknowledge (for latency figures). */
  readonly ackTimes: number[] = [];

  constructor(
    private readonly vm: ArmVcpuHost,
    readonly vcpuId: number,
    readonly vgicCpu: VgicCpu,
    private readonly hasPending: () => boolean,
    cpu: number,
  ) {
    this.actor = vm.ctx.scheduler.actor({ name: `CPU ${vcpuId}/KVM`, kind: 'vcpu', cpu });
  }

  get cpu(): number {
    return this.actor.cpu;
  }

  get totalExits(): number {
    const e = this.exits;
    return e.IRQ + e.WFx + e.HVC + e.DABT_LOW + e.SYS64;
  }

  hasPendingInterrupt(): boolean {
    return this.hasPending();
  }

  /** The guest's handler for `intid` (Linux: the irq_desc's handler behind gic_handle_irq). */
  onInterrupt(intid: number, handler: (intid: number) => void): void {
    this.handlers.set(intid, handler);
  }

  private get s() {
    return this.vm.ctx.scheduler;
  }

  private get costs() {
    return this.vm.ctx.costs.ns;
  }

  private get halfSwitch(): number {
    return Math.round((this.vm.vhe ? this.costs.armExitVhe : this.costs.armExitNonVhe) / 2);
  }

  /**
   * The guest's task on this vCPU (guest/vcpuN): the guest kernel's own functions are traced
   * on it, the vCPU thread's (exits, vGIC flush/sync) on `actor` — as on x86.
   */
  get guestActor(): Actor {
    this.guestActorCache ??= this.s.actor({ name: `guest/vcpu${this.vcpuId}`, kind: 'guest', cpu: this.cpu });
    return this.guestActorCache;
  }
  private guestActorCache: Actor | undefined;

  /** Runs guest code inside the vCPU thread's step, its untagged trace events on the guest's task. */
  private runGuestCode(fn: () => void): void {
    const a = this.actor;
    const outer = a.traceAs;
    a.traceAs = this.guestActor;
    try {
      fn();
    } finally {
      a.traceAs = outer;
    }
  }

  /**
   * Guest code (`fn`) that applied a device access's effect at once — its data abort is taken
   * after the handler's slice — may have run QEMU's emulation for it, charged to this thread in
   * the middle of guest time. That time belongs to the access's exit: taken back here, spent
   * when the KVM_EXIT_MMIO is handled.
   */
  private runGuestCodeAccounted(fn: () => void): void {
    const cpuBefore = this.actor.cpuTimeNs;
    this.runGuestCode(fn);
    const ran = this.actor.cpuTimeNs - cpuBefore;
    if (ran !== 0) {
      this.actor.charge(-ran);
      this.deferredEmulationNs += ran;
    }
  }
  private deferredEmulationNs = 0;

  private emit(kind: string, fn: string, caller: string | undefined, args: Record<string, number | string | boolean | bigint>, dur?: number, actor: Actor = this.actor): void {
    const ch = this.vm.channel;
    if (ch.on) ch.emit(kind, fn, caller, args, dur, actor);
  }

  /** The actor running now (whoever kicks), for events emitted on another thread's behalf. */
  private get caller(): Actor {
    return this.s.current ?? this.vm.ctx.trace.hostActor;
  }

  /** Starts the KVM_RUN loop. */
  run(): void {
    if (this.state !== 'stopped') return;
    this.state = 'host';
    this.runningSince = this.s.now;
    this.s.after(0, this.actor, () => {
      this.load();
      this.enter();
    });
  }

  /** kvm_arch_vcpu_load (KVM_RUN, or the vCPU thread scheduled back in). */
  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    for (const l of this.loadPutListeners) l.vcpuLoad(this);
  }

  /** kvm_arch_vcpu_put (the vCPU thread scheduled out: blocking in WFI, or preempted). */
  private put(blocking: boolean): void {
    if (!this.loaded) return;
    this.loaded = false;
    for (const l of this.loadPutListeners) l.vcpuPut(this, blocking);
  }

  /** Whether the vCPU is loaded on its CPU (kvm_get_running_vcpu on that CPU would return it). */
  get isLoaded(): boolean {
    return this.loaded;
  }

  // ---- CPU time: the thread runs (guest or host side) except while blocked or descheduled ----

  private runningSince: number | undefined;

  private stopRunning(): void {
    if (this.runningSince !== undefined) this.actor.charge(this.s.now - this.runningSince);
    this.runningSince = undefined;
  }

  /** Charges the vCPU thread's CPU time up to now (call at the end of a measurement). */
  flushCpuTime(): void {
    if (this.runningSince === undefined) return;
    this.actor.charge(this.s.now - this.runningSince);
    this.runningSince = this.s.now;
  }

  // ---- entry ----

  private enter(): void {
    this.state = 'host';
    this.irqRequest = false;
    // vgic_v4_load <- vgic_v3_load <- kvm_vgic_load, from kvm_arch_vcpu_load or (back from a WFI) kvm_vcpu_wfi.
    if (this.vpe !== undefined && !this.vpe.resident) this.vm.vgicV4Load(this, 'vgic_v3_load');
    const lrs = this.vm.channel.on ? this.flushTraced() : this.flush();
    const cost = this.halfSwitch + lrs * this.costs.gicListRegisterWrite;
    this.stats.entries++;
    this.s.after(cost, this.actor, () => this.enterGuest());
  }

  private flush(): number {
    return this.vgicFlush();
  }

  private flushTraced(): number {
    this.emit('vcpu.flush', 'kvm_vgic_flush_hwstate', 'kvm_arch_vcpu_ioctl_run', { vcpu: this.vcpuId });
    return this.vgicFlush();
  }

  /** Wired by the VM to Vgic.flush. */
  vgicFlush: () => number = () => 0;
  /** Wired by the VM to Vgic.sync. */
  vgicSync: () => void = () => undefined;

  private enterGuest(): void {
    if (this.irqRequest) {
      // kvm_vcpu_exit_request: an interrupt queued after the flush (vgic_queue_irq_unlock's
      // KVM_REQ_IRQ_PENDING, its kick finding the vCPU outside guest mode) cancels the entry —
      // sync what was flushed and go round the run loop again, so the new interrupt gets an LR.
      this.emit('vcpu.sync', 'kvm_vgic_sync_hwstate', 'kvm_arch_vcpu_ioctl_run', { vcpu: this.vcpuId });
      this.vgicSync();
      this.enter();
      return;
    }
    this.state = 'guest';
    this.emit('vcpu.entry', 'kvm_entry', 'kvm_arch_vcpu_ioctl_run', { vcpu: this.vcpuId });
    this.vm.occupy(this.cpu, this);
    if (this.state !== 'guest') return; // a pending physical interrupt made it exit at once
    if (this.vgicCpu.cpuif.maintenance) {
      this.raiseMaintenance();
      if (this.state !== 'guest') return;
    }
    this.guestResume();
  }

  /** The guest continues: take a virtual interrupt, run queued guest actions, or idle. */
  private guestResume(): void {
    if (this.state !== 'guest' || this.inHandler) return;
    if (this.deferredExit !== undefined) {
      const d = this.deferredExit;
      this.deferredExit = undefined;
      this.exit(d.reason, d.detail);
      return;
    }
    if (this.vgicCpu.cpuif.virtualIrqPending) {
      this.takeVirtualInterrupt();
      return;
    }
    const action = this.guestActions.shift();
    if (action !== undefined) {
      this.runGuestCodeAccounted(action);
      // Guest code that did not trap goes on to whatever comes next (more queued work, or the idle loop's WFI).
      if (this.state === 'guest' && !this.inHandler) this.s.after(0, this.actor, () => this.guestResume());
      return;
    }
    if (this.guest.idleWithWfi) this.exit('WFx', 'wfi');
  }

  /**
   * Guest gic_handle_irq: ICV_IAR1 (no exit), the handler, ICV_EOIR1 (no exit; a HW LR
   * deactivates the physical interrupt). Runs as one slice of guest time; an exit that
   * arrives meanwhile is taken when it ends.
   */
  private takeVirtualInterrupt(): void {
    const cpuif = this.vgicCpu.cpuif;
    const directBefore = cpuif.stats.directVlpiAcks;
    const intid = cpuif.iar1();
    if (intid === INTID_SPURIOUS) return this.guestResume();
    this.inHandler = true;
    this.stats.guestInterrupts++;
    this.ackTimes.push(this.s.now);
    const c = this.costs;
    // Where the acknowledged interrupt came from: a list register KVM wrote, or (GICv4) the vPE's pending table.
    const from = cpuif.stats.directVlpiAcks !== directBefore ? 'vpe' : 'lr';
    this.emit('guest.ack', 'gic_handle_irq', 'do_interrupt_handler', { vcpu: this.vcpuId, intid, via: 'ICV_IAR1_EL1', from }, c.gicVirtualAckEoi, this.guestActor);
    const handler = this.handlers.get(intid);
    if (handler !== undefined) this.runGuestCodeAccounted(() => handler(intid));
    this.s.after(c.gicVirtualAckEoi + c.guestHandler, this.actor, () => {
      this.emit('guest.eoi', 'gic_eoi_irq', 'handle_fasteoi_irq', { vcpu: this.vcpuId, intid, via: 'ICV_EOIR1_EL1' }, c.gicVirtualAckEoi, this.guestActor);
      cpuif.eoir1(intid);
      if (this.guest.eoiMode) cpuif.dir(intid);
      this.s.after(c.gicVirtualAckEoi, this.actor, () => {
        this.inHandler = false;
        if (this.state !== 'guest') return;
        if (this.deferredExit === undefined && cpuif.maintenance) {
          this.raiseMaintenance();
          if (this.state !== 'guest') return;
        }
        this.guestResume();
      });
    });
  }

  // ---- exits ----

  private exit(reason: ArmExitReason, detail: string): void {
    if (this.state !== 'guest') return;
    if (this.inHandler) {
      this.deferredExit ??= { reason, detail };
      return;
    }
    this.state = 'host';
    this.vm.vacate(this.cpu);
    this.exits[reason]++;
    this.emit('vcpu.exit', 'kvm_exit', 'kvm_arch_vcpu_ioctl_run', { vcpu: this.vcpuId, reason, esr_ec: ARM_EXIT_EC[reason], detail }, this.halfSwitch);
    this.s.after(this.halfSwitch, this.actor, () => this.handleExit(reason, detail));
  }

  private pendingMmio: GuestMmioAccess | undefined;
  private pendingSgi = 0n;
  private pendingHvc: (() => void) | undefined;

  private handleExit(reason: ArmExitReason, detail: string): void {
    this.emit('vcpu.sync', 'kvm_vgic_sync_hwstate', 'kvm_arch_vcpu_ioctl_run', { vcpu: this.vcpuId });
    this.vgicSync();
    switch (reason) {
      case 'IRQ':
        this.vm.handleHostIrqs(this.cpu, this.actor);
        break;
      case 'WFx':
        this.emit('vcpu.wfx', 'kvm_handle_wfx', 'handle_exit', { vcpu: this.vcpuId });
        if (!this.irqRequest && !this.hasPending()) {
          this.block();
          return;
        }
        break;
      case 'HVC':
        this.emit('vcpu.hvc', 'kvm_smccc_call_handler', 'handle_hvc', { vcpu: this.vcpuId, detail });
        this.pendingHvc?.();
        this.pendingHvc = undefined;
        break;
      case 'DABT_LOW': {
        const a = this.pendingMmio!;
        this.pendingMmio = undefined;
        this.emit('vcpu.mmio', 'io_mem_abort', 'kvm_handle_guest_abort', { vcpu: this.vcpuId, addr: a.addr, len: a.len, write: a.write });
        if (a.applied === true || !this.vm.handleMmio(this, a)) {
          // KVM_EXIT_MMIO: out to the VMM (its MMIO dispatch) and back
          this.emit('vcpu.userspace_exit', 'kvm_userspace_exit', 'kvm_vcpu_ioctl', { vcpu: this.vcpuId, reason: 'KVM_EXIT_MMIO' });
          const cpuBefore = this.actor.cpuTimeNs;
          if (a.applied !== true) this.vm.userspaceMmio?.(this, a);
          // QEMU's device emulation ran on this thread and charged it; the thread's time is
          // counted by running intervals, so that time becomes part of the exit instead —
          // with what guest code set off earlier for this access (deferEmulation).
          const ran = this.actor.cpuTimeNs - cpuBefore + this.deferredEmulationNs;
          this.actor.charge(cpuBefore - this.actor.cpuTimeNs);
          this.deferredEmulationNs = 0;
          this.s.after(this.costs.exitToUserspace + ran, this.actor, () => this.afterExit());
          return;
        }
        this.s.after(this.costs.mmioEmulation, this.actor, () => this.afterExit());
        return;
      }
      case 'SYS64':
        this.emit('vcpu.sys64', 'vgic_v3_dispatch_sgi', 'access_gic_sgi', { vcpu: this.vcpuId, value: this.pendingSgi });
        this.vm.dispatchSgi(this, this.pendingSgi);
        break;
    }
    this.afterExit();
  }

  private afterExit(): void {
    if (this.preemptFor > 0) {
      const ns = this.preemptFor;
      this.preemptFor = 0;
      this.state = 'preempted';
      this.stopRunning();
      // preempt notifiers: kvm_sched_out → kvm_arch_vcpu_put → kvm_vgic_put → vgic_v3_put → vgic_v4_put
      this.emit('vcpu.preempt', 'kvm_arch_vcpu_put', 'kvm_sched_out', { vcpu: this.vcpuId, ns });
      if (this.vpe !== undefined && this.vpe.resident) this.vm.vgicV4Put(this, false, 'vgic_v3_put');
      this.put(false);
      this.s.after(ns, this.actor, () => {
        this.runningSince = this.s.now;
        this.emit('vcpu.resume', 'kvm_arch_vcpu_load', 'kvm_sched_in', { vcpu: this.vcpuId });
        this.load();
        this.enter();
      });
      return;
    }
    this.enter();
  }

  /**
   * kvm_handle_wfx → kvm_vcpu_wfi with nothing pending: IN_WFI is set and the vPE goes
   * non-resident with its doorbell armed (vgic_v4_put, need_db), then kvm_vcpu_halt blocks.
   */
  private block(): void {
    this.state = 'blocked';
    this.stopRunning();
    this.emit('vcpu.wfi', 'kvm_vcpu_wfi', 'kvm_handle_wfx', { vcpu: this.vcpuId });
    // kvm_vcpu_wfi → kvm_vgic_put → vgic_v3_put → vgic_v4_put(need_db = IN_WFI)
    if (this.vpe !== undefined && this.vpe.resident) this.vm.vgicV4Put(this, true, 'vgic_v3_put');
    this.emit('vcpu.block', 'kvm_vcpu_halt', 'kvm_vcpu_wfi', { vcpu: this.vcpuId });
    // kvm_vcpu_block → schedule() → kvm_sched_out → kvm_arch_vcpu_put (the arch timer arms its background timer)
    this.put(true);
    if (this.irqRequest || this.hasPending()) this.wake();
  }

  private wake(): void {
    if (this.state !== 'blocked') return;
    this.state = 'host';
    this.stats.wakeups++;
    this.s.after(this.vm.ctx.costs.ns.threadWakeup, this.actor, () => {
      this.runningSince = this.s.now;
      this.emit('vcpu.wake', 'kvm_vcpu_wakeup', 'kvm_vcpu_halt', { vcpu: this.vcpuId }); // tracepoint in kvm_vcpu_halt
      // kvm_sched_in → kvm_arch_vcpu_load
      this.load();
      this.enter();
    });
  }

  /** kvm_vcpu_wake_up: wakes the vCPU thread if it is blocked (no request posted, no IPI). */
  wakeUp(caller: string): void {
    if (this.state !== 'blocked') return;
    this.emit('vcpu.wake_up', 'kvm_vcpu_wake_up', caller, { vcpu: this.vcpuId }, undefined, this.caller);
    this.wake();
  }

  /**
   * kvm_vcpu_kick (with KVM_REQ_IRQ_PENDING already posted): a running vCPU gets an IPI
   * and exits (IRQ); a blocked one is woken; one in the host sees the request before entry.
   */
  kick(caller = 'vgic_queue_irq_unlock'): void {
    this.irqRequest = true;
    this.stats.kicks++;
    if (this.state === 'guest') {
      if (this.ipiInFlight) return;
      this.ipiInFlight = true;
      this.stats.ipis++;
      this.emit('vcpu.kick', 'kvm_vcpu_kick', caller, { vcpu: this.vcpuId, ipi: true }, undefined, this.caller);
      this.s.after(this.vm.ctx.costs.ns.hostIpi, this.actor, () => {
        this.ipiInFlight = false;
        if (this.state === 'guest') this.exit('IRQ', 'ipi');
      });
    } else if (this.state === 'blocked') {
      this.emit('vcpu.kick', 'kvm_vcpu_kick', caller, { vcpu: this.vcpuId, ipi: false }, undefined, this.caller);
      this.wake();
    }
  }

  private maintenanceRaised = false;

  /**
   * ICH_MISR ≠ 0 with ICH_HCR.En: the virtual CPU interface asserts the maintenance interrupt,
   * PPI 25 of this physical CPU — a host interrupt, so the vCPU exits (IRQ).
   */
  private raiseMaintenance(): void {
    this.stats.maintenance++;
    this.maintenanceRaised = true;
    this.vm.setMaintenanceLevel(this.cpu, true);
  }

  /** PhysicalIrqSink: a physical interrupt at this CPU while the vCPU runs the guest. */
  physicalIrq(): void {
    if (this.state !== 'guest') return;
    const detail = this.maintenanceRaised ? 'maintenance' : 'host-irq';
    this.maintenanceRaised = false;
    this.exit('IRQ', detail);
  }

  /**
   * VpeListener: a vLPI became pending on this vCPU's resident vPE. If the guest runs it
   * takes it directly — after the redistributor's delivery latency, with no exit.
   */
  vlpiPending(): void {
    if (this.state !== 'guest' || this.inHandler || this.directEvent?.pending === true) return;
    this.directEvent = this.s.after(this.vm.ctx.costs.ns.vlpiDirect, this.actor, () => {
      this.directEvent = undefined;
      // Hardware: the redistributor presents the vLPI to the virtual CPU interface (no kernel code, no exit).
      this.emit('vlpi.direct', 'hw:its_vlpi_direct', undefined, { vcpu: this.vcpuId, vpe: this.vpe?.id ?? -1 });
      this.guestResume();
    });
  }

  /** The host scheduler takes the vCPU off its CPU for `ns` (exit IRQ, vgic_v4_put without doorbell). */
  preempt(ns: number): void {
    this.preemptFor = Math.max(1, Math.round(ns));
    if (this.state === 'guest') this.exit('IRQ', 'preempt');
  }

  // ---- guest actions that trap ----

  /**
   * Queues a guest action: it runs when the guest next runs and has no interrupt to take (a
   * vCPU blocked in WFI runs it after something wakes it).
   */
  private guestDo(fn: () => void): void {
    this.guestActions.push(fn);
    if (this.state === 'guest' && !this.inHandler) this.s.after(0, this.actor, () => this.guestResume());
  }

  /**
   * Runs guest code (a driver's transmit path, say) when the guest next runs: the same slot
   * as the guest's own queued actions, after any interrupt it has to take first.
   */
  guestRun(fn: () => void): void {
    this.guestDo(fn);
  }

  /** The guest accesses an MMIO address (DABT_LOW exit). */
  guestMmio(access: GuestMmioAccess): void {
    this.guestDo(() => {
      this.pendingMmio = access;
      this.exit('DABT_LOW', `0x${access.addr.toString(16)}`);
    });
  }

  /** The guest makes a hypercall (HVC exit). */
  guestHvc(fn?: () => void): void {
    this.guestDo(() => {
      this.pendingHvc = fn;
      this.exit('HVC', 'hvc');
    });
  }

  /** The guest writes ICC_SGI1R_EL1 (trapped: SYS64 exit). */
  guestSendSgi(value: bigint): void {
    this.guestDo(() => {
      this.pendingSgi = value;
      this.exit('SYS64', 'ICC_SGI1R_EL1');
    });
  }

  /** Guest idle: execute WFI once (it will trap unless something is pending). */
  guestWfi(): void {
    this.guestDo(() => this.exit('WFx', 'wfi'));
  }
}
