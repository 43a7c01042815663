/**
 * A small stand-in for KVM's x86 irqchip and vCPU loop, used by this package's tests while
 * @virq/kvm-irqchip grows its own: exactly the behaviour the posted-interrupt paths touch
 * (GSI routing with kvm_irq_routing_update, irqfds with their bypass hooks, the APIC-map
 * destination lookup, vCPU modes, VM exits, injection on entry), implemented from
 * virt/kvm/eventfd.c, virt/kvm/irqchip.c and arch/x86/kvm/{x86,lapic}.c. It implements the
 * package's `KvmPiPort`, core's `VmInterruptApi` and `MsiSink`.
 */
import { EventFd, VirqError, type Actor, type GsiRoute, type IrqfdRequest, type MsiMessage, type MsiSink, type SimContext, type TraceChannel, type TraceEvent, type VmInterruptApi } from '@virq/core';
import { decodeX86Msi, isLowestPriority, type IrqfdBypassHooks, type KvmIrqfdView, type KvmPiPort, type PiVcpu, type VcpuMode, type VcpuSchedHooks } from '@virq/irqbypass';

export type MiniKvmEvent = TraceEvent;

interface Irqfd {
  readonly gsi: number;
  readonly eventfd: EventFd;
  route: GsiRoute | undefined;
  remove: () => void;
  resampleFd: EventFd | undefined;
}

export interface Delivery {
  readonly vcpu: number;
  readonly vector: number;
  readonly time: number;
  /** How the interrupt reached the guest. */
  readonly via: 'virtual-interrupt-delivery' | 'injection';
}

export interface ExitRecord {
  readonly vcpu: number;
  readonly reason: 'EXTERNAL_INTERRUPT' | 'HLT' | 'EPT_MISCONFIG';
  readonly time: number;
}

export class MiniVcpu implements PiVcpu {
  mode: VcpuMode = 'outside-guest';
  hostCpu = -1;
  state: 'stopped' | 'running' | 'blocked' | 'preempted' = 'stopped';
  /** Interrupt flag of the guest (RFLAGS.IF). */
  guestIf = true;
  readonly irr = new Set<number>();
  readonly isr = new Set<number>();
  kvmReqEvent = false;
  readonly actor: Actor;
  private lastCpu = 0;

  constructor(
    readonly kvm: MiniKvm,
    readonly vcpuId: number,
    readonly apicId: number,
  ) {
    this.actor = kvm.ctx.scheduler.actor({ name: `CPU ${vcpuId}/KVM`, kind: 'vcpu', cpu: 0 });
  }

  /** vcpu_load on `cpu` and enter the guest. */
  run(cpu: number): void {
    this.lastCpu = cpu;
    this.hostCpu = cpu;
    this.actor.cpu = cpu;
    this.state = 'running';
    this.kvm.sched?.vcpuLoad(this, cpu);
    this.enterGuest();
  }

  /** Guest executes HLT with interrupts enabled: exit, kvm_vcpu_block → vcpu_put(blocking). */
  halt(): void {
    if (this.state !== 'running') return;
    this.kvm.recordExit(this, 'HLT');
    this.mode = 'outside-guest';
    if (this.hasInjectable()) {
      this.enterGuest();
      return;
    }
    this.state = 'blocked';
    this.kvm.sched?.vcpuPut(this, 'blocking');
  }

  /**
   * The guest's MMIO access to an emulated register (the MSI-X table) exits to QEMU, which
   * runs `fn` on this thread; then the vCPU re-enters (vcpu_enter_guest).
   */
  mmioExit(fn: () => void): void {
    if (this.state !== 'running') {
      fn();
      return;
    }
    this.kvm.recordExit(this, 'EPT_MISCONFIG');
    this.mode = 'outside-guest';
    fn();
    this.enterGuest();
  }

  /** The host scheduler preempts the vCPU thread: vcpu_put(preempted). */
  preempt(): void {
    if (this.state !== 'running') return;
    this.mode = 'outside-guest';
    this.state = 'preempted';
    this.kvm.sched?.vcpuPut(this, 'preempted');
  }

  /** The preempted thread runs again on `cpu`. */
  resume(cpu = this.lastCpu): void {
    if (this.state !== 'preempted') return;
    this.run(cpu);
  }

  syncPirToIrr(vectors: readonly number[]): void {
    for (const v of vectors) this.irr.add(v);
    this.evaluate();
  }

  wakeUp(): void {
    if (this.state !== 'blocked') return;
    this.state = 'preempted';
    this.kvm.wakeups++;
    this.kvm.trace.emit('kvm.wake', 'kvm_vcpu_wake_up', 'kvm_vcpu_kick', { vcpu: this.vcpuId });
    this.kvm.ctx.scheduler.after(this.kvm.ctx.costs.ns.threadWakeup, this.actor, () => this.run(this.lastCpu));
  }

  externalInterruptExit(_hostVector: number): void {
    this.kvm.recordExit(this, 'EXTERNAL_INTERRUPT');
    this.mode = 'outside-guest';
    const c = this.kvm.ctx.costs.ns;
    this.kvm.ctx.scheduler.after(c.vmExit + c.vmEntry, this.actor, () => {
      if (this.state === 'running' && this.mode === 'outside-guest') this.enterGuest();
    });
  }

  /** __apic_accept_irq for a fixed interrupt. */
  acceptIrq(vector: number): void {
    if (this.kvm.apicvActive && this.kvm.deliverPosted !== undefined) {
      this.kvm.deliverPosted(this.vcpuId, vector);
      return;
    }
    this.irr.add(vector);
    this.kvmReqEvent = true;
    this.kick();
  }

  /** kvm_vcpu_kick. */
  kick(): void {
    if (this.state === 'blocked') {
      this.wakeUp();
      return;
    }
    if (this.mode === 'in-guest' && this.kvm.ctx.scheduler.current !== this.actor) {
      this.mode = 'exiting-guest';
      this.kvm.hostIpis++;
      this.kvm.ctx.scheduler.after(this.kvm.ctx.costs.ns.hostIpi, this.actor, () => {
        if (this.state === 'running' && this.mode === 'exiting-guest') this.externalInterruptExit(0xfd);
      });
    }
  }

  /** vcpu_enter_guest: PIR sync, injection, then guest mode. */
  enterGuest(): void {
    if (this.state !== 'running') return;
    this.kvm.pirSync?.(this.vcpuId, 'vcpu_enter_guest');
    if (!this.kvm.apicvActive && this.kvmReqEvent) {
      this.kvmReqEvent = false;
      const v = this.highestIrr();
      if (v !== undefined && this.guestIf) {
        this.kvm.injections++;
        this.kvm.trace.emit('kvm.inject', 'vmx_inject_irq', 'inject_pending_event', { vcpu: this.vcpuId, vector: v }, undefined, this.actor);
        this.irr.delete(v);
        this.isr.add(v);
        this.kvm.deliveries.push({ vcpu: this.vcpuId, vector: v, time: this.kvm.ctx.scheduler.now, via: 'injection' });
      }
    }
    this.mode = 'in-guest';
    this.evaluate();
  }

  /** Guest EOI of the highest in-service vector. */
  eoi(): void {
    let hi = -1;
    for (const v of this.isr) hi = Math.max(hi, v);
    if (hi < 0) return;
    this.isr.delete(hi);
    this.kvm.eoi(hi);
    this.evaluate();
  }

  private hasInjectable(): boolean {
    return this.irr.size > 0;
  }

  private highestIrr(): number | undefined {
    let hi = -1;
    for (const v of this.irr) hi = Math.max(hi, v);
    return hi < 0 ? undefined : hi;
  }

  /** Virtual-interrupt delivery (APICv): the CPU delivers the highest IRR without an exit. */
  private evaluate(): void {
    if (!this.kvm.apicvActive || this.mode !== 'in-guest' || !this.guestIf) return;
    for (;;) {
      const v = this.highestIrr();
      if (v === undefined) return;
      this.irr.delete(v);
      this.isr.add(v);
      this.kvm.trace.emit('kvm.vid', 'hw:virtual_interrupt_delivery', undefined, { vcpu: this.vcpuId, vector: v }, undefined, this.actor);
      this.kvm.deliveries.push({ vcpu: this.vcpuId, vector: v, time: this.kvm.ctx.scheduler.now, via: 'virtual-interrupt-delivery' });
    }
  }
}

export class MiniKvm implements KvmPiPort, VmInterruptApi, MsiSink {
  readonly irqfdCapable = true;
  readonly ioeventfdCapable = false;
  readonly trace: TraceChannel<MiniKvmEvent>;
  private routing = new Map<number, GsiRoute[]>();
  private readonly irqfds: Irqfd[] = [];
  private readonly vcpuList: MiniVcpu[] = [];
  private hooks: IrqfdBypassHooks | undefined;
  sched: VcpuSchedHooks | undefined;
  deliverPosted: ((vcpuId: number, vector: number) => boolean) | undefined;
  pirSync: ((vcpuId: number, caller: string) => void) | undefined;
  readonly deliveries: Delivery[] = [];
  readonly exits: ExitRecord[] = [];
  injections = 0;
  hostIpis = 0;
  wakeups = 0;
  /** irqchip pins: gsi → vector delivered to vCPU 0 (a one-IOAPIC stand-in), with remote IRR. */
  readonly pinVector = new Map<number, number>();
  private readonly pinLevel = new Map<number, Set<number>>();
  private readonly remoteIrr = new Set<number>();
  private readonly workqueue: Actor;

  constructor(
    readonly ctx: SimContext,
    vcpus: number,
    public apicvActive: boolean,
  ) {
    this.trace = ctx.trace.channel<MiniKvmEvent>('kvm');
    for (let i = 0; i < vcpus; i++) this.vcpuList.push(new MiniVcpu(this, i, i));
    this.workqueue = ctx.scheduler.actor({ name: 'kworker/kvm-irqfd', kind: 'kernel', cpu: 0 });
  }

  // --- KvmPiPort ---
  vcpu(id: number): MiniVcpu | undefined {
    return this.vcpuList[id];
  }
  vcpus(): readonly MiniVcpu[] {
    return this.vcpuList;
  }
  routesOf(gsi: number): readonly GsiRoute[] {
    return this.routing.get(gsi) ?? [];
  }
  destinationVcpus(destId: number, logical: boolean, lowestPriority: boolean): readonly number[] {
    let out: number[];
    if (!logical) out = destId === 0xff ? this.vcpuList.map((v) => v.vcpuId) : this.vcpuList.filter((v) => v.apicId === destId).map((v) => v.vcpuId);
    else out = this.vcpuList.filter((v) => v.apicId < 8 && (destId & (1 << v.apicId)) !== 0).map((v) => v.vcpuId);
    if (lowestPriority && out.length > 1) out = [out[0]!];
    return out;
  }
  setIrqfdBypassHooks(h: IrqfdBypassHooks | undefined): void {
    this.hooks = h;
  }
  setPostedInterruptDelivery(d: ((vcpuId: number, vector: number) => boolean) | undefined): void {
    this.deliverPosted = d;
  }
  setVcpuSchedHooks(h: VcpuSchedHooks | undefined): void {
    this.sched = h;
  }
  setPirSync(s: ((vcpuId: number, caller: string) => void) | undefined): void {
    this.pirSync = s;
  }

  // --- VmInterruptApi ---
  setGsiRouting(entries: readonly GsiRoute[]): void {
    this.trace.emit('kvm.ioctl', 'kvm_set_irq_routing', 'kvm_vm_ioctl', { nr: entries.length });
    const m = new Map<number, GsiRoute[]>();
    for (const e of entries) {
      const l = m.get(e.gsi) ?? [];
      l.push(e);
      m.set(e.gsi, l);
    }
    this.routing = m;
    this.trace.emit('kvm.routing_update', 'kvm_irq_routing_update', 'kvm_set_irq_routing', {});
    for (const f of this.irqfds) {
      this.irqfdUpdate(f, 'kvm_irq_routing_update');
      this.hooks?.irqfdRoutingUpdated(this.view(f));
    }
  }

  irqfd(req: IrqfdRequest): void {
    if (req.deassign === true) {
      const i = this.irqfds.findIndex((f) => f.eventfd === req.fd && f.gsi === req.gsi);
      if (i < 0) return;
      const f = this.irqfds[i]!;
      this.irqfds.splice(i, 1);
      f.remove();
      this.trace.emit('kvm.irqfd', 'irqfd_shutdown', 'process_one_work', { gsi: f.gsi });
      this.hooks?.irqfdDeassigned(this.view(f));
      return;
    }
    this.trace.emit('kvm.irqfd', 'kvm_irqfd_assign', 'kvm_irqfd', { gsi: req.gsi, fd: req.fd.name });
    if (this.irqfds.some((f) => f.eventfd === req.fd)) throw new VirqError('kvm.irqfd-busy', `eventfd ${req.fd.name} already backs an irqfd`, { errno: 'EBUSY' });
    const f: Irqfd = { gsi: req.gsi, eventfd: req.fd, route: undefined, remove: () => undefined, resampleFd: req.resampleFd };
    f.remove = req.fd.addWaiter({ wake: () => this.irqfdWakeup(f) });
    this.irqfdUpdate(f, 'kvm_irqfd_assign');
    this.irqfds.push(f);
    if (req.fd.readable) this.ctx.scheduler.after(0, this.workqueue, () => this.irqfdWakeup(f));
    this.hooks?.irqfdAssigned(this.view(f));
  }

  ioeventfd(): void {
    throw new VirqError('kvm.unsupported', 'the test KVM has no ioeventfd bus', { errno: 'ENOSYS' });
  }

  signalMsi(msg: MsiMessage): number {
    this.trace.emit('kvm.signal_msi', 'kvm_send_userspace_msi', 'kvm_vm_ioctl', { data: msg.data });
    return this.deliverMsi(msg);
  }

  irqLine(gsi: number, level: boolean): number {
    return this.setIrq(gsi, level, 0);
  }

  // --- MsiSink ---
  deliverMsi(msg: MsiMessage): number {
    const irq = decodeX86Msi(msg);
    const targets = this.destinationVcpus(irq.destId, irq.logical, isLowestPriority(irq));
    for (const t of targets) this.vcpuList[t]!.acceptIrq(irq.vector);
    return targets.length;
  }

  recordExit(v: MiniVcpu, reason: ExitRecord['reason']): void {
    this.exits.push({ vcpu: v.vcpuId, reason, time: this.ctx.scheduler.now });
    this.trace.emit('kvm.exit', 'vmx_handle_exit', 'vcpu_enter_guest', { vcpu: v.vcpuId, reason }, undefined, v.actor);
  }

  exitsOf(reason: ExitRecord['reason']): number {
    return this.exits.filter((e) => e.reason === reason).length;
  }

  irqfdList(): readonly KvmIrqfdView[] {
    return this.irqfds.map((f) => this.view(f));
  }

  /** The guest EOIs `vector`: level pins with that vector clear remote IRR and resample. */
  eoi(vector: number): void {
    for (const [gsi, vec] of this.pinVector) {
      if (vec !== vector || !this.remoteIrr.has(gsi)) continue;
      this.remoteIrr.delete(gsi);
      for (const f of this.irqfds) {
        if (f.gsi !== gsi || f.resampleFd === undefined) continue;
        // irqfd_resampler_ack: deassert source 1, signal every resamplefd.
        this.pinLevel.get(gsi)?.delete(1);
        f.resampleFd.write(1);
      }
      if ((this.pinLevel.get(gsi)?.size ?? 0) > 0) this.raisePin(gsi);
    }
  }

  private setIrq(gsi: number, level: boolean, source: number): number {
    const s = this.pinLevel.get(gsi) ?? new Set<number>();
    this.pinLevel.set(gsi, s);
    const was = s.size > 0;
    if (level) s.add(source);
    else s.delete(source);
    if (!was && s.size > 0) return this.raisePin(gsi);
    return 0;
  }

  private raisePin(gsi: number): number {
    const vec = this.pinVector.get(gsi);
    if (vec === undefined || this.remoteIrr.has(gsi)) return 0;
    this.remoteIrr.add(gsi);
    this.vcpuList[0]!.acceptIrq(vec);
    return 1;
  }

  private irqfdUpdate(f: Irqfd, caller: string): void {
    this.trace.emit('kvm.irqfd_update', 'irqfd_update', caller, { gsi: f.gsi });
    const r = this.routesOf(f.gsi);
    f.route = r.length === 1 ? r[0] : undefined;
  }

  private irqfdWakeup(f: Irqfd): void {
    if (f.eventfd.tryRead() === undefined) return;
    this.trace.emit('kvm.irqfd_wakeup', 'irqfd_wakeup', '__wake_up_common', { gsi: f.gsi });
    const r = f.route;
    if (f.resampleFd !== undefined) {
      this.ctx.scheduler.after(0, this.workqueue, () => this.setIrq(f.gsi, true, 1));
      return;
    }
    if (r !== undefined && r.type === 'msi') {
      this.deliverMsi(r.msi);
      return;
    }
    this.ctx.scheduler.after(0, this.workqueue, () => {
      this.setIrq(f.gsi, true, 0);
      this.setIrq(f.gsi, false, 0);
    });
  }

  private view(f: Irqfd): KvmIrqfdView {
    return { gsi: f.gsi, eventfd: f.eventfd, route: f.route };
  }
}
