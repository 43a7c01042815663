import {
  checkSnapshot, IRQ_LINE_MAX_SOURCES, VirqError, type Actor, type IrqLine, type Snapshot, type CostModel, type EventFd, type GsiRoute, type IoeventfdRequest, type IrqfdRequest, type IrqPin,
  type IrqPinProvider, type IrqRouting, type MsiMessage, type MsiSink, type Scheduler, type SimContext, type TraceChannel,
  type VmInterruptApi,
} from '@virq/core';
import { ApicMap, FAST_PATH_MISS } from './apic-map.js';
import { KvmErrorCode } from './errors.js';
import { KvmPic, PIC_FIELDS as PIC_FIELDS_ORDER, type PicHost, type PicStateJson, type PicStateRaw } from './i8259.js';
import { KvmIoBus } from './kvm-io-bus.js';
import { IoeventfdBus, KVM_IOEVENTFD_FLAG_DATAMATCH, KVM_IOEVENTFD_FLAG_DEASSIGN, KVM_IOEVENTFD_FLAG_PIO, type KvmIoeventfdArgs } from './ioeventfd.js';
import { IOAPIC_MEM_LENGTH, IOAPIC_NUM_PINS, KvmIoapic, type IoapicHost, type IoapicStateJson } from './ioapic.js';
import {
  IrqRoutingTable, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_SLAVE, toGsiRoute,
  type KernelRoute, type KvmRoutingEntry,
} from './irq-routing.js';
import {
  EWOULDBLOCK, IrqfdRegistry, KVM_IRQFD_FLAG_DEASSIGN, KVM_IRQFD_FLAG_RESAMPLE, KVM_USERSPACE_IRQ_SOURCE_ID,
  type IrqAckNotifier, type IrqfdBypassHooks, type IrqfdHost, type KvmIrqfdArgs,
} from './irqfd.js';
import type { DestMap, LapicIrq } from './lapic-irq.js';
import type { KvmLapic, LapicBus, LapicStateJson } from './lapic.js';
import { APIC, SPIV_DIRECTED_EOI } from './lapic-registers.js';
import { KvmVcpu, type VcpuEventsJson, type VcpuSchedHooks } from './vcpu.js';
import type { ExitReason } from './vmx-exit-counts.js';
import type { VcpuHost } from './vcpu-host.js';
import { msiToLapicIrq } from './x86-msi.js';

export interface KvmVmOptions {
  /** Number of vCPUs (vCPU n has APIC ID n). */
  nvcpus: number;
  /** KVM_CREATE_IRQCHIP (the full in-kernel irqchip). Default true. */
  irqchip?: boolean;
  /** kvm.vector_hashing (default true, as on the golden host). */
  vectorHashing?: boolean;
  /** CONFIG_KVM_SMM: SMI delivery accepted. Default false (the golden host returns 0). */
  smm?: boolean;
  /** CONFIG_KVM_HYPERV (KVM_CAP_HYPERV): Hyper-V SynIC routes are accepted. The golden host has it off. */
  hyperv?: boolean;
  /** KVM_CAP_X2APIC_API: 32-bit MSI destinations (address_hi) and no 0xFF broadcast quirk. */
  x2apicApi?: boolean;
  /**
   * Guest CPUID bits KVM consults (KVM_SET_CPUID2). Default: none set, as in the golden
   * recorder (x2APIC cannot be enabled, no TSC-deadline timer mode, MAXPHYADDR 36).
   */
  cpuid?: { x2apic?: boolean; tscDeadline?: boolean; maxPhysAddr?: number };
  /** Host CPU of each vCPU thread (default: vCPU n on host CPU n + 1). */
  hostCpuOf?: (vcpuId: number) => number;
}

/** A guest access that no in-kernel device or ioeventfd claimed (KVM_EXIT_IO / KVM_EXIT_MMIO). */
export interface UserspaceExit {
  readonly exit: 'IO' | 'MMIO';
  readonly write: boolean;
  readonly addr: number;
  readonly len: number;
  readonly value: number;
}

/** The whole interrupt state in the golden corpus' shape (KVM_GET_IRQCHIP ×3, KVM_GET_LAPIC, events). */
export interface KvmIrqchipStateJson {
  pic: { master: PicStateJson | { error: string }; slave: PicStateJson | { error: string } };
  ioapic: IoapicStateJson | { error: string };
  lapic: (LapicStateJson | { error: string })[];
  vcpu_events: VcpuEventsJson[];
}

type TraceArgsIn = Readonly<Record<string, number | string | boolean>>;

/** The VM's interrupt state as a plain record (`KvmVm.snapshot`). irqfds and ioeventfds hold
 * host eventfds and are not part of it: a VMM re-registers them after a restore, as QEMU does. */
export interface KvmVmSnapshotState {
  pic: { chips: PicStateRaw[]; output: number; lines: number[][] } | null;
  ioapic: {
    baseAddress: number; id: number; ioregsel: number; irr: number; irrDelivered: number; lo: number[]; hi: number[];
    irqEoi: number[]; lines: number[][]; rtcPendingEoi: number; rtcDest: [number, number][];
  } | null;
  vcpus: {
    regs: number[]; apicBase: number; isrCount: number; highestIsrCache: number; pendingEvents: number; sipiVector: number;
    arbPrio: number; mpState: number; nmiQueued: number; nmiPending: number; nmiMasked: boolean; nmiInjected: boolean; pvUnhalted: boolean;
  }[];
  routing: KvmRoutingEntry[];
}
export const KVM_VM_SNAPSHOT_TYPE = 'kvm-irqchip.vm';
export const KVM_VM_SNAPSHOT_VERSION = 1;

function lineSources(l: IrqLine): number[] {
  const out: number[] = [];
  for (let s = 0; s < IRQ_LINE_MAX_SOURCES; s++) if (l.sourceLevel(s)) out.push(s);
  return out;
}
function setLineSources(l: IrqLine, sources: readonly number[]): void {
  for (let s = 0; s < IRQ_LINE_MAX_SOURCES; s++) if (l.sourceLevel(s) !== sources.includes(s)) l.set(s, sources.includes(s));
}

/**
 * A KVM VM's x86 interrupt side: the in-kernel irqchip (PIC pair, IOAPIC, one LAPIC per
 * vCPU), GSI routing, irqfd and ioeventfd, and the vCPUs — with KVM's uapi as its API. It is
 * the `VmInterruptApi`, `IrqRouting`, x86 `MsiSink` and `IrqPinProvider` (pins = GSIs) a
 * machine wires devices to.
 */
export class KvmVm implements VmInterruptApi, IrqRouting, MsiSink, IrqPinProvider, LapicBus, IoapicHost, PicHost, IrqfdHost, VcpuHost {
  readonly scheduler: Scheduler;
  readonly costs: CostModel;
  readonly t: TraceChannel;
  readonly pic: KvmPic | undefined;
  readonly ioapic: KvmIoapic | undefined;
  private readonly vcpuList: KvmVcpu[] = [];
  readonly apicMap: ApicMap;
  routing: IrqRoutingTable;
  readonly irqfds: IrqfdRegistry;
  /** KVM_PIO_BUS and KVM_MMIO_BUS (the PIC, the IOAPIC and the ioeventfds, in bus order). */
  readonly pioBus = new KvmIoBus();
  readonly mmioBus = new KvmIoBus();
  readonly ioeventfds = new IoeventfdBus({ pio: this.pioBus, mmio: this.mmioBus }, (p) => this.signalIoeventfd(p.eventfd, '__kvm_io_bus_write'));
  readonly ackNotifiers: IrqAckNotifier[] = [];
  readonly maskNotifiers: ((irqchip: number, pin: number, masked: boolean) => void)[] = [];
  /** The workqueue thread irqfd_inject and the IOAPIC's delayed work run on. */
  readonly kworker: Actor;
  readonly smmSupported: boolean;
  readonly hyperv: boolean;
  readonly x2apicApi: boolean;
  readonly cpuid: { readonly x2apic: boolean; readonly tscDeadline: boolean; readonly maxPhysAddr: number };
  private apicv = false;
  bypassHooks: IrqfdBypassHooks | undefined;
  schedHooks: VcpuSchedHooks | undefined;
  pirSync: ((vcpuId: number, caller: string) => void) | undefined;
  private posted: ((vcpuId: number, vector: number) => boolean) | undefined;
  /** Userspace (QEMU) handler of exits no in-kernel device claimed; its return is a read's value. */
  onUserspaceExit: ((vcpuId: number, exit: UserspaceExit) => number) | undefined;
  private readonly guestActors = new Map<number, Actor>();
  private scratchIrq: LapicIrq = { vector: 0, deliveryMode: 0, logical: false, level: true, levelTriggered: false, shorthand: 0, destId: 0, msiRedirHint: false };

  constructor(ctx: SimContext, options: KvmVmOptions) {
    if (!Number.isInteger(options.nvcpus) || options.nvcpus < 1 || options.nvcpus > 4096) {
      throw new VirqError(KvmErrorCode.VcpuInvalid, `nvcpus must be an integer in 1..4096, got ${options.nvcpus}`, { errno: 'EINVAL' });
    }
    this.scheduler = ctx.scheduler;
    this.costs = ctx.costs;
    this.t = ctx.trace.channel('kvm-irqchip');
    this.smmSupported = options.smm ?? false;
    this.hyperv = options.hyperv ?? false;
    this.x2apicApi = options.x2apicApi ?? false;
    this.cpuid = { x2apic: options.cpuid?.x2apic ?? false, tscDeadline: options.cpuid?.tscDeadline ?? false, maxPhysAddr: options.cpuid?.maxPhysAddr ?? 36 };
    this.kworker = this.scheduler.actor({ name: 'kworker/u:irqfd', kind: 'kernel', cpu: 0 });
    const irqchip = options.irqchip ?? true;
    this.pic = irqchip ? new KvmPic(this) : undefined;
    this.ioapic = irqchip ? new KvmIoapic(this) : undefined;
    this.registerIrqchipDevices();
    this.routing = irqchip ? IrqRoutingTable.defaultTable() : IrqRoutingTable.build([]);
    this.irqfds = new IrqfdRegistry(this);
    this.apicMap = new ApicMap(() => this.lapicList, {
      vectorHashing: options.vectorHashing ?? true,
      x2apicFormat: () => this.x2apicApi,
      x2apicBroadcastQuirkDisabled: () => this.x2apicApi,
      onRebuilt: () => this.makeScanIoapicRequest(),
    });
    const cpuOf = options.hostCpuOf ?? ((n: number) => n + 1);
    for (let i = 0; i < options.nvcpus; i++) {
      const v = new KvmVcpu(i, this, cpuOf(i));
      this.vcpuList.push(v);
      this.lapicList.push(v.lapic);
    }
    for (const v of this.vcpuList) v.lapic.reset(false);
    this.apicMap.recalculate();
  }
  private readonly lapicList: KvmLapic[] = [];

  // ---- tracing ------------------------------------------------------------------------------
  get tracing(): boolean {
    return this.t.on;
  }
  trace(fn: string, caller: string | undefined, args: TraceArgsIn, durNs?: number, actor?: Actor): void {
    this.t.emit(`kvm.${fn}`, fn, caller, args, durNs, actor);
  }
  traceLapic(fn: string, caller: string, args: TraceArgsIn): void {
    this.trace(fn, caller, args);
  }
  traceIoapic(fn: string, caller: string, args: TraceArgsIn): void {
    this.trace(fn, caller, args);
  }
  tracePic(fn: string, caller: string, args: TraceArgsIn): void {
    this.trace(fn, caller, args);
  }

  // ---- vCPUs -----------------------------------------------------------------------------
  get irqchipInKernel(): boolean {
    return this.ioapic !== undefined;
  }
  get nvcpus(): number {
    return this.vcpuList.length;
  }
  vcpu(id: number): KvmVcpu | undefined {
    return this.vcpuList[id];
  }
  vcpus(): readonly KvmVcpu[] {
    return this.vcpuList;
  }
  lapics(): readonly KvmLapic[] {
    return this.lapicList;
  }
  /** The vCPU, or a VirqError naming the valid range. */
  vcpuOrThrow(id: number): KvmVcpu {
    const v = this.vcpuList[id];
    if (v === undefined) throw new VirqError(KvmErrorCode.VcpuInvalid, `no vCPU ${id}: this VM has vCPUs 0..${this.vcpuList.length - 1}`, { errno: 'EINVAL' });
    return v;
  }
  guestActor(vcpu: KvmVcpu): Actor {
    let a = this.guestActors.get(vcpu.vcpuId);
    if (a === undefined) {
      a = this.scheduler.actor({ name: `guest/vcpu${vcpu.vcpuId}`, kind: 'guest', cpu: vcpu.hostCpu });
      this.guestActors.set(vcpu.vcpuId, a);
    }
    return a;
  }
  noGuestError(vcpuId: number): VirqError {
    return new VirqError(KvmErrorCode.VcpuInvalid, `vCPU ${vcpuId} has no guest model: call setGuest() before run()`);
  }
  get lapicBus(): LapicBus {
    return this;
  }
  /** Exits of every vCPU, by VMX reason. */
  exitsByReason(): Map<ExitReason, number> {
    const m = new Map<ExitReason, number>();
    for (const v of this.vcpuList) for (const [r, n] of v.exits) m.set(r, (m.get(r) ?? 0) + n);
    return m;
  }

  // ---- APICv / irqbypass hooks --------------------------------------------------------------
  get apicvActive(): boolean {
    return this.apicv;
  }
  /** Turns APICv (posted interrupts, virtual EOI) on or off for every vCPU. */
  setApicv(enabled: boolean): void {
    this.apicv = enabled;
  }
  /**
   * The vendor's deliver_interrupt for posted delivery, used by __apic_accept_irq when APICv
   * is active: `fn` is its name in traces (VMX: vmx_deliver_posted_interrupt; AMD AVIC:
   * svm_complete_interrupt_delivery, called from svm_deliver_interrupt).
   */
  setPostedInterruptDelivery(deliver: ((vcpuId: number, vector: number) => boolean) | undefined, fn = 'vmx_deliver_posted_interrupt', caller = '__apic_accept_irq'): void {
    this.posted = deliver;
    this.postedFn = fn;
    this.postedCaller = caller;
  }
  private postedFn = 'vmx_deliver_posted_interrupt';
  private postedCaller = '__apic_accept_irq';
  setIrqfdBypassHooks(hooks: IrqfdBypassHooks | undefined): void {
    this.bypassHooks = hooks;
  }
  setVcpuSchedHooks(hooks: VcpuSchedHooks | undefined): void {
    this.schedHooks = hooks;
  }
  setPirSync(sync: ((vcpuId: number, caller: string) => void) | undefined): void {
    this.pirSync = sync;
  }
  deliverPosted(vcpu: KvmVcpu, vector: number): void {
    if (this.tracing) this.trace(this.postedFn, this.postedCaller, { vcpu: vcpu.vcpuId, vector });
    if (this.posted !== undefined && this.posted(vcpu.vcpuId, vector)) return;
    // No posting backend: fall back to IRR + KVM_REQ_EVENT + kick.
    vcpu.lapic.setIrr(vector);
    vcpu.requestEvent();
    vcpu.kick();
  }

  /** The vCPUs an interrupt with this destination reaches (no delivery). */
  destinationVcpus(destId: number, logical: boolean, lowestPriority: boolean, vector: number): readonly number[] {
    const irq: LapicIrq = { vector, deliveryMode: lowestPriority ? 1 : 0, logical, level: true, levelTriggered: false, shorthand: 0, destId, msiRedirHint: false };
    return this.apicMap.destinations(irq).map((a) => a.vcpuId);
  }

  // ---- LapicBus ------------------------------------------------------------------------------
  markApicMapDirty(): void {
    this.apicMap.dirty = true;
  }
  recalculateApicMap(): void {
    this.apicMap.recalculate();
  }
  /**
   * kvm_irq_delivery_to_apic: the hub every interrupt goes through — from kvm_set_msi (an MSI
   * route), ioapic_deliver (a pin), or apic_send_ipi (an ICR write, `src` set).
   */
  deliverToApic(src: KvmLapic | null, irq: LapicIrq, destMap?: DestMap, caller = src === null ? 'kvm_set_msi' : 'apic_send_ipi'): number {
    if (this.t.on) this.trace('kvm_irq_delivery_to_apic', caller, { dest: irq.destId, vector: irq.vector, dm: irq.deliveryMode, logical: irq.logical });
    const r = this.apicMap.deliverFast(src, irq, destMap);
    if (r !== FAST_PATH_MISS) return r;
    return this.apicMap.deliverSlow(src, irq, destMap);
  }
  // ---- KVM_REQ_SCAN_IOAPIC: each vCPU's ioapic_handled_vectors ---------------------------------
  /** Per vCPU: a pending KVM_REQ_SCAN_IOAPIC and the bitmap computed at its last processing. */
  /** Indexed by vCPU id (ids are dense: 0 … nvcpus-1). */
  private readonly ioapicScan: Array<{ pending: boolean; vectors: Uint8Array; highestStale: number; entered: boolean } | undefined> = [];
  private scanState(vcpuId: number): { pending: boolean; vectors: Uint8Array; highestStale: number; entered: boolean } {
    let st = this.ioapicScan[vcpuId];
    if (st === undefined) {
      st = { pending: true, vectors: new Uint8Array(256), highestStale: -1, entered: false };
      this.ioapicScan[vcpuId] = st;
    }
    return st;
  }
  /** kvm_make_scan_ioapic_request (every vCPU) or kvm_make_scan_ioapic_request_mask (`vcpuIds`). */
  makeScanIoapicRequest(vcpuIds?: Iterable<number>): void {
    for (const id of vcpuIds ?? this.vcpuList.map((v) => v.vcpuId)) this.scanState(id).pending = true;
  }
  /** ioapic_write_indirect's request for a FIXED entry: the vCPUs its new or old destination matches. */
  scanIoapicRequestForEntry(dest: number, oldDest: number, logical: boolean, changed: boolean): void {
    const ids = new Set<number>();
    // kvm_bitmap_or_dest_vcpus: the APIC map's answer, else every present APIC that matches.
    const orDest = (destId: number): void => {
      const irq: LapicIrq = { vector: 0, deliveryMode: 0, logical, level: false, levelTriggered: false, shorthand: 0, destId, msiRedirHint: false };
      const fast = this.apicMap.fixedDestinations(irq);
      if (fast !== null) {
        for (const a of fast) ids.add(a.vcpuId);
        return;
      }
      for (const v of this.vcpuList) if (v.lapic.hwEnabled && this.matchDest(v.lapic, destId, logical)) ids.add(v.vcpuId);
    };
    orDest(dest);
    if (changed) orDest(oldDest);
    this.makeScanIoapicRequest(ids);
  }
  /**
   * A KVM_RUN entry of a vCPU driven without a run loop (golden replays: the recorder's guest
   * runs with IF=0): vcpu_enter_guest's request processing — the IOAPIC scan and
   * KVM_REQ_EVENT (INIT/SIPI, the injectable-interrupt check that recomputes PPR).
   */
  vcpuRunEntry(vcpuId: number): void {
    const v = this.vcpuOrThrow(vcpuId);
    this.scanIoapicOnEntry(v);
    v.processEventRequestAtEntry();
  }
  /** vcpu_enter_guest → vcpu_scan_ioapic when KVM_REQ_SCAN_IOAPIC is pending (kvm_ioapic_scan_entry). */
  scanIoapicOnEntry(vcpu: KvmVcpu): void {
    const st = this.scanState(vcpu.vcpuId);
    st.entered = true;
    if (!st.pending) return;
    st.pending = false;
    const io = this.ioapic;
    if (!vcpu.lapic.hwEnabled || io === undefined) return;
    st.vectors.fill(0);
    st.highestStale = -1;
    const notifier = (pin: number): boolean => this.irqHasNotifier(KVM_IRQCHIP_IOAPIC, pin);
    for (let vec = 0; vec < 256; vec++) {
      if (!io.handlesVector(vcpu.lapic, vec, notifier)) continue;
      st.vectors[vec] = 1;
      // kvm_scan_ioapic_irq: handled only because an IRQ of the old routing is still pending
      if (!io.handlesVector(vcpu.lapic, vec, notifier, false)) st.highestStale = vec;
    }
  }
  /**
   * kvm_ioapic_send_eoi: the EOI goes to the IOAPIC only for a vector in the vCPU's
   * ioapic_handled_vectors, i.e. as computed at the last vCPU entry that processed a scan
   * request (a vector pending EOI then — in IRR or ISR — still counts after the EOI cleared it).
   */
  ioapicSendEoi(apic: KvmLapic, vector: number): void {
    const io = this.ioapic;
    if (io === undefined) return;
    const v = this.vcpuOrThrow(apic.vcpuId);
    // A vCPU that never entered (driven by direct calls, no run loop) gets its scan now.
    if (!this.scanState(v.vcpuId).entered) this.scanIoapicOnEntry(v);
    const st = this.scanState(v.vcpuId);
    if (!st.vectors[vector]) return;
    // An EOI of the in-flight IRQ of an old routing: rescan at the next entry.
    if (st.highestStale === vector) st.pending = true;
    if (this.tracing) this.trace('kvm_ioapic_update_eoi', 'kvm_ioapic_send_eoi', { vcpu: apic.vcpuId, vector });
    io.updateEoi(apic, vector, apic.testVector(vector, APIC.TMR), (apic.getReg(APIC.SPIV) & SPIV_DIRECTED_EOI) !== 0);
  }
  ioapicHandlesEoi(vcpu: KvmVcpu): boolean {
    const io = this.ioapic;
    const v = vcpu.lapic.findHighestIsr();
    return io !== undefined && v !== -1 && io.handlesVector(vcpu.lapic, v, (pin) => this.irqHasNotifier(KVM_IRQCHIP_IOAPIC, pin));
  }
  rtcEoiTrackingRestoreOne(apic: KvmLapic): void {
    this.ioapic?.rtcEoiTrackingRestoreOne(apic);
  }

  // ---- IoapicHost / PicHost ------------------------------------------------------------------
  /** kvm_notify_acked_irq */
  notifyAckedIrq(irqchip: number, pin: number): void {
    if (this.tracing) this.trace('kvm_notify_acked_irq', irqchip === KVM_IRQCHIP_IOAPIC ? 'kvm_ioapic_update_eoi_one' : 'pic_clear_isr', { irqchip, pin });
    const gsi = this.routing.gsiOf(irqchip, pin);
    if (gsi === -1) return;
    for (const n of [...this.ackNotifiers]) if (n.gsi === gsi) n.irqAcked();
  }
  notifyIrqfdResampler(irqchip: number, pin: number): boolean {
    const gsi = this.routing.gsiOf(irqchip, pin);
    return gsi !== -1 && this.irqfds.notifyResampler(gsi);
  }
  irqHasNotifier(irqchip: number, pin: number): boolean {
    const gsi = this.routing.gsiOf(irqchip, pin);
    return gsi !== -1 && this.ackNotifiers.some((n) => n.gsi === gsi);
  }
  fireMaskNotifiers(irqchip: number, pin: number, masked: boolean): void {
    for (const f of this.maskNotifiers) f(irqchip, pin, masked);
  }
  matchDest(target: KvmLapic, dest: number, logical: boolean): boolean {
    return ApicMap.matchDest(target, null, 0, dest, logical, this.x2apicApi);
  }
  scheduleEoiInject(fn: () => void, delayNs: number): void {
    this.scheduler.after(delayNs, this.kworker, fn);
  }
  wakeFirstAcceptingVcpu(): boolean {
    for (const v of this.vcpuList) {
      if (v.lapic.acceptsPicInterrupts()) {
        v.requestEvent();
        v.kick();
        return true;
      }
    }
    return false;
  }
  anyVcpuAcceptsPic(): boolean {
    return this.vcpuList.some((v) => v.lapic.acceptsPicInterrupts());
  }
  picHasInterrupt(): boolean {
    return this.pic?.hasInterrupt() ?? false;
  }
  picReadIrq(): number {
    return this.pic!.readIrq();
  }

  // ---- IrqfdHost ------------------------------------------------------------------------------
  routes(gsi: number): readonly KernelRoute[] {
    return this.routing.routes(gsi);
  }
  /** kvm_register_irq_ack_notifier (then kvm_arch_post_irq_ack_notifier_list_update: a scan request). */
  registerAckNotifier(n: IrqAckNotifier): void {
    this.ackNotifiers.push(n);
    this.makeScanIoapicRequest();
  }
  unregisterAckNotifier(n: IrqAckNotifier): void {
    const i = this.ackNotifiers.indexOf(n);
    if (i >= 0) this.ackNotifiers.splice(i, 1);
    this.makeScanIoapicRequest();
  }
  scheduleWork(fn: () => void): void {
    this.scheduler.after(this.costs.ns.threadWakeup, this.kworker, fn);
  }
  /** kvm_arch_set_irq_inatomic: only MSI routes, only through the APIC map. */
  setIrqInatomic(route: KernelRoute | undefined, _sourceId: number): number {
    if (route === undefined || route.type !== KVM_IRQ_ROUTING_MSI || route.msi === undefined) {
      if (this.t.on) this.trace('kvm_arch_set_irq_inatomic', 'irqfd_wakeup', { gsi: route?.gsi ?? -1, ret: EWOULDBLOCK });
      return EWOULDBLOCK;
    }
    if (this.x2apicApi && (route.msi.addressHi & 0xff) !== 0) return -22;
    const irq = msiToLapicIrq(route.msi, this.x2apicApi, this.scratchIrq);
    if (this.t.on) this.trace('kvm_arch_set_irq_inatomic', 'irqfd_wakeup', { gsi: route.gsi });
    if (this.t.on) this.trace('kvm_set_msi_irq', 'kvm_arch_set_irq_inatomic', { dest: irq.destId, vector: irq.vector, dm: irq.deliveryMode });
    if (this.t.on) this.trace('kvm_irq_delivery_to_apic_fast', 'kvm_arch_set_irq_inatomic', { dest: irq.destId, vector: irq.vector });
    const r = this.apicMap.deliverFast(null, irq);
    return r === FAST_PATH_MISS ? EWOULDBLOCK : r;
  }

  // ---- kvm_set_irq and the ioctls -------------------------------------------------------------
  /** kvm_set_irq: every routing entry of `gsi`; the summed status (< 0 ignored, 0 coalesced, > 0 CPUs). */
  kvmSetIrq(sourceId: number, gsi: number, level: boolean, lineStatus: boolean): number {
    const routes = this.routing.routes(gsi);
    if (this.t.on) {
      this.trace('kvm_set_irq', sourceId === 0 ? 'kvm_vm_ioctl_irq_line' : 'irqfd_inject', { gsi, level, src: sourceId, entries: routes.length });
      this.trace('kvm_irq_map_gsi', 'kvm_set_irq', { gsi, entries: routes.length });
    }
    let ret = -1;
    for (let i = 0; i < routes.length; i++) {
      const r = this.routeSet(routes[i]!, sourceId, level, lineStatus);
      if (r < 0) continue;
      ret = r + (ret < 0 ? 0 : ret);
    }
    return ret;
  }

  private routeSet(e: KernelRoute, sourceId: number, level: boolean, lineStatus: boolean): number {
    if (e.type === KVM_IRQ_ROUTING_IRQCHIP) {
      if (e.irqchip === KVM_IRQCHIP_IOAPIC) {
        if (this.t.on) this.trace('kvm_set_ioapic_irq', 'kvm_set_irq', { gsi: e.gsi, pin: e.pin });
        return this.ioapic!.setIrq(e.pin, sourceId, level, lineStatus);
      }
      if (this.t.on) this.trace('kvm_set_pic_irq', 'kvm_set_irq', { gsi: e.gsi, pin: e.pin });
      return this.pic!.setIrq(e.pin, sourceId, level);
    }
    if (e.type === KVM_IRQ_ROUTING_MSI && e.msi !== undefined) return this.kvmSetMsi(e.msi, level);
    return -22; // HV_SINT without a SynIC
  }

  /** kvm_set_msi */
  kvmSetMsi(msg: MsiMessage, level: boolean): number {
    if (this.x2apicApi && (msg.addressHi & 0xff) !== 0) return -22;
    if (this.t.on) this.trace('kvm_set_msi', 'kvm_set_irq', { level });
    if (!level) return -1;
    const irq = msiToLapicIrq(msg, this.x2apicApi);
    if (this.t.on) this.trace('kvm_set_msi_irq', 'kvm_set_msi', { dest: irq.destId, vector: irq.vector, dm: irq.deliveryMode });
    return this.deliverToApic(null, irq);
  }

  private needIrqchip(what: string, errno: 'ENXIO' | 'EINVAL'): void {
    if (!this.irqchipInKernel) throw new VirqError(KvmErrorCode.NoIrqchip, `${what} needs the in-kernel irqchip (KVM_CREATE_IRQCHIP)`, { errno });
  }

  /**
   * KVM_IRQ_LINE_STATUS (`lineStatus` true, the default) or KVM_IRQ_LINE: drives `gsi` from
   * the userspace source. Any non-zero `level` asserts. Returns the status KVM writes back.
   */
  irqLine(gsi: number, level: boolean | number, lineStatus = true): number {
    this.needIrqchip('KVM_IRQ_LINE', 'ENXIO');
    if (this.t.on) this.trace('kvm_vm_ioctl_irq_line', 'kvm_vm_ioctl', { irq: gsi, level: Number(level) });
    return this.kvmSetIrq(KVM_USERSPACE_IRQ_SOURCE_ID, gsi >>> 0, level !== false && level !== 0, lineStatus);
  }

  /** KVM_SET_GSI_ROUTING: validates, swaps the table, updates irqfds (kvm_irq_routing_update). */
  setGsiRouting(entries: readonly KvmRoutingEntry[], flags = 0): void {
    this.needIrqchip('KVM_SET_GSI_ROUTING', 'EINVAL');
    const t = IrqRoutingTable.build(entries, flags, { x2apicFormat: this.x2apicApi, hyperv: this.hyperv });
    this.routing = t;
    if (this.t.on) this.trace('kvm_set_irq_routing', 'kvm_vm_ioctl', { nr: entries.length });
    this.irqfds.routingUpdate();
  }

  /** IrqRouting.routesOf: a GSI's entries as core `GsiRoute`s. */
  routesOf(gsi: number): readonly GsiRoute[] {
    const out: GsiRoute[] = [];
    for (const r of this.routing.routes(gsi)) {
      const g = toGsiRoute(r);
      if (g !== undefined) out.push(g);
    }
    return out;
  }

  /** IrqRouting.setIrq: kvm_set_irq from an in-kernel source (no line-status tracking). */
  setIrq(gsi: number, level: boolean, sourceId: number): number {
    return this.kvmSetIrq(sourceId, gsi, level, false);
  }

  /**
   * KVM_SIGNAL_MSI: returns kvm_set_msi's result (> 0 CPUs, 0 none reached via the APIC map,
   * < 0 none found by the slow path — the ioctl then fails with EPERM).
   */
  signalMsi(msg: MsiMessage, flags = msg.requesterId !== undefined ? 1 : 0): number {
    if (!this.irqchipInKernel || (flags & ~1) !== 0) {
      throw new VirqError(KvmErrorCode.MsiInvalid, !this.irqchipInKernel ? 'KVM_SIGNAL_MSI needs the in-kernel irqchip' : `KVM_SIGNAL_MSI: flags 0x${flags.toString(16)}; only KVM_MSI_VALID_DEVID (1) is allowed`, { errno: 'EINVAL' });
    }
    if (this.t.on) this.trace('kvm_send_userspace_msi', 'kvm_vm_ioctl', { addr: msg.addressLo, data: msg.data });
    return this.kvmSetMsi(msg, true);
  }

  /** MsiSink: an MSI write reaching the LAPIC bus (kvm_set_msi with the userspace source). */
  deliverMsi(msg: MsiMessage): number {
    return this.kvmSetMsi(msg, true);
  }

  /** IrqPinProvider: GSI `n` as a wire (through the routing table: PIC and/or IOAPIC pins, or an MSI). */
  pin(n: number): IrqPin {
    return { setLevel: (level: boolean, sourceId = 0) => void this.kvmSetIrq(sourceId, n, level, false) };
  }

  get irqfdCapable(): boolean {
    return this.irqchipInKernel;
  }
  readonly ioeventfdCapable = true;

  /** KVM_IRQFD (core's request shape). */
  irqfd(request: IrqfdRequest): void {
    this.kvmIrqfd({
      fd: request.fd,
      gsi: request.gsi,
      flags: (request.deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0) | (request.resampleFd !== undefined ? KVM_IRQFD_FLAG_RESAMPLE : 0),
      resampleFd: request.resampleFd ?? null,
    });
  }
  /** KVM_IRQFD at the uapi level (raw flags; `null` fds are not eventfds). */
  kvmIrqfd(args: KvmIrqfdArgs): void {
    this.irqfds.irqfd(args);
  }

  /** KVM_IOEVENTFD (core's request shape). */
  ioeventfd(request: IoeventfdRequest): void {
    this.kvmIoeventfd({
      fd: request.fd,
      addr: request.addr,
      len: request.len,
      flags: (request.space === 'pio' ? KVM_IOEVENTFD_FLAG_PIO : 0) | (request.datamatch !== undefined ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) | (request.deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0),
      ...(request.datamatch !== undefined ? { datamatch: request.datamatch } : {}),
    });
  }
  kvmIoeventfd(args: KvmIoeventfdArgs): void {
    this.ioeventfds.ioeventfd(args);
  }

  // ---- guest accesses (the in-kernel devices on the buses) ------------------------------------------
  private signalIoeventfd(fd: EventFd, caller: string): void {
    if (this.t.on) this.trace('ioeventfd_write', caller, { fd: fd.fd });
    if (this.t.on) this.trace('eventfd_signal', 'ioeventfd_write', { fd: fd.fd });
    if (fd.isClosed) return;
    try {
      fd.tryWrite(1);
    } catch (e) {
      // eventfd_signal cannot fail in the kernel; a guest write must not throw.
      if (this.t.on) this.trace('eventfd_signal', 'ioeventfd_write', { fd: fd.fd, error: e instanceof Error ? e.message : String(e) });
    }
  }
  /** kvm_pic_init (dev_master 0x20, dev_slave 0xa0, dev_elcr 0x4d0, 2 ports each) and kvm_ioapic_init (its 0x100-byte window). */
  private registerIrqchipDevices(): void {
    const pic = this.pic;
    if (pic !== undefined) {
      const dev = {
        write: (port: number, len: number, value: number): boolean => {
          if (!KvmPic.claims(port)) return false;
          pic.portWrite(port, len, value);
          return true;
        },
        read: (port: number, len: number): number | undefined => (KvmPic.claims(port) ? pic.portRead(port, len) : undefined),
      };
      for (const port of [0x20, 0xa0, 0x4d0]) this.pioBus.register(port, 2, { write: dev.write, read: dev.read });
    }
    const io = this.ioapic;
    if (io !== undefined) {
      this.mmioBus.register(io.baseAddress, IOAPIC_MEM_LENGTH, {
        write: (addr: number, len: number, value: number): boolean => {
          if (!io.inRange(addr)) return false;
          io.mmioWrite(addr, len, value);
          return true;
        },
        read: (addr: number, len: number): number | undefined => (io.inRange(addr) ? io.mmioRead(addr, len) : undefined),
      });
    }
  }
  fastMmioMatch(addr: number): boolean {
    return this.ioeventfds.match('fast-mmio', addr, 0, 0n) !== undefined;
  }
  /** kernel_pio: kvm_io_bus_write/read on KVM_PIO_BUS (PIC ports, ioeventfds); otherwise KVM_EXIT_IO. */
  guestPio(vcpu: KvmVcpu, write: boolean, port: number, len: number, value: number, applied = false): { value: number; toUserspace: boolean } {
    if (this.t.on) this.trace(write ? 'kvm_io_bus_write' : 'kvm_io_bus_read', 'kernel_pio', { port, len, write });
    if (write) {
      // An applied write was made to a userspace device already: nothing in the kernel claims it.
      if (!applied && this.pioBus.write(port, len, value)) return { value: 0, toUserspace: false };
    } else {
      const r = this.pioBus.read(port, len);
      if (r !== undefined) return { value: r, toUserspace: false };
    }
    if (this.t.on) this.trace('kvm_userspace_exit', 'kvm_vcpu_ioctl', { vcpu: vcpu.vcpuId, reason: 'KVM_EXIT_IO' });
    if (applied) return { value: 0, toUserspace: true };
    const v = this.onUserspaceExit?.(vcpu.vcpuId, { exit: 'IO', write, addr: port, len, value }) ?? 0;
    return { value: v, toUserspace: true };
  }
  /** vcpu_mmio_write/read on KVM_MMIO_BUS (after the vCPU's own LAPIC): IOAPIC, ioeventfds; else KVM_EXIT_MMIO. */
  guestMmio(vcpu: KvmVcpu, write: boolean, addr: number, len: number, value: number, applied = false): { value: number; toUserspace: boolean } {
    if (this.t.on) this.trace(write ? 'kvm_io_bus_write' : 'kvm_io_bus_read', write ? 'vcpu_mmio_write' : 'vcpu_mmio_read', { addr, len, write });
    if (write) {
      if (this.mmioBus.write(addr, len, value)) return { value: 0, toUserspace: false };
    } else {
      const r = this.mmioBus.read(addr, len);
      if (r !== undefined) return { value: r, toUserspace: false };
    }
    if (this.t.on) this.trace('kvm_userspace_exit', 'kvm_vcpu_ioctl', { vcpu: vcpu.vcpuId, reason: 'KVM_EXIT_MMIO' });
    if (applied) return { value: 0, toUserspace: true };
    const v = this.onUserspaceExit?.(vcpu.vcpuId, { exit: 'MMIO', write, addr, len, value }) ?? 0;
    return { value: v, toUserspace: true };
  }

  /**
   * One guest register access done by `vcpuId` right now, as KVM handles it (LAPIC page of
   * that vCPU first, then the buses). Returns the value read and whether it exited to
   * userspace. Used by replays and tests that drive register accesses without a run loop.
   */
  guestAccess(vcpuId: number, kind: 'mmio_write' | 'mmio_read' | 'out' | 'in', addr: number, value: number, len?: number): { value: number; toUserspace: boolean } {
    const v = this.vcpuOrThrow(vcpuId);
    if (kind === 'out' || kind === 'in') return this.guestPio(v, kind === 'out', addr, len ?? 1, value);
    const l = len ?? 4;
    const lapic = v.lapic;
    if (this.irqchipInKernel && lapic.mmioInRange(addr)) {
      if (lapic.hwEnabled && !lapic.x2apicMode) {
        if (kind === 'mmio_write') lapic.mmioWrite(addr, l, value);
        else return { value: lapic.mmioRead(addr, l), toUserspace: false };
        return { value: 0, toUserspace: false };
      }
      // KVM_X86_QUIRK_LAPIC_MMIO_HOLE: writes dropped, reads all ones.
      return { value: kind === 'mmio_read' ? 0xffffffff : 0, toUserspace: false };
    }
    return this.guestMmio(v, kind === 'mmio_write', addr, l, value);
  }

  // ---- KVM_GET/SET_IRQCHIP, KVM_GET/SET_LAPIC ----------------------------------------------
  /** KVM_GET_IRQCHIP: chip 0 PIC master, 1 PIC slave, 2 IOAPIC. */
  getIrqchip(chip: number): PicStateJson | IoapicStateJson {
    this.needIrqchip('KVM_GET_IRQCHIP', 'ENXIO');
    if (chip === 0 || chip === 1) return this.pic!.toJson(chip);
    if (chip === 2) return this.ioapic!.toJson();
    throw new VirqError(KvmErrorCode.ChipInvalid, `KVM_GET_IRQCHIP: chip_id ${chip} is not 0 (PIC master), 1 (PIC slave) or 2 (IOAPIC)`, { errno: 'EINVAL' });
  }

  /** KVM_SET_IRQCHIP for a PIC (every field written, then kvm_pic_update_irq). */
  setIrqchipPic(chip: 0 | 1, state: Partial<PicStateRaw>): void {
    this.needIrqchip('KVM_SET_IRQCHIP', 'ENXIO');
    this.pic!.setState(chip, state);
  }

  /** KVM_SET_IRQCHIP for the IOAPIC (redirection entries as lo/hi halves; `irr` is re-injected). */
  setIrqchipIoapic(state: { baseAddress?: number; id?: number; ioregsel?: number; irr: number; lo: ArrayLike<number>; hi: ArrayLike<number> }): void {
    this.needIrqchip('KVM_SET_IRQCHIP', 'ENXIO');
    const io = this.ioapic!;
    io.setState({ baseAddress: state.baseAddress ?? io.baseAddress, id: state.id ?? io.id, ioregsel: state.ioregsel ?? io.ioregsel, irr: state.irr, lo: state.lo, hi: state.hi });
    this.makeScanIoapicRequest();
  }

  /** KVM_GET_LAPIC: the vCPU's 1 KiB register page. */
  getLapic(vcpuId: number): Uint32Array {
    const v = this.vcpuOrThrow(vcpuId);
    if (!this.irqchipInKernel) throw new VirqError(KvmErrorCode.NoIrqchip, 'KVM_GET_LAPIC needs the in-kernel LAPIC (KVM_CREATE_IRQCHIP)', { errno: 'EINVAL' });
    return v.lapic.getState();
  }

  /** KVM_SET_LAPIC (kvm_apic_set_state, with its side effects: map rebuild, PPR, RTC EOI tracking). */
  setLapic(vcpuId: number, page: Uint32Array): void {
    const v = this.vcpuOrThrow(vcpuId);
    if (!this.irqchipInKernel) throw new VirqError(KvmErrorCode.NoIrqchip, 'KVM_SET_LAPIC needs the in-kernel LAPIC (KVM_CREATE_IRQCHIP)', { errno: 'EINVAL' });
    if (page.length < 256) throw new VirqError(KvmErrorCode.ChipInvalid, `KVM_SET_LAPIC: the register page has 256 32-bit words, got ${page.length}`, { errno: 'EINVAL' });
    v.lapic.setState(page);
  }

  /** Every chip's state, as KVM_GET_IRQCHIP / KVM_GET_LAPIC / KVM_GET_VCPU_EVENTS return it. */
  getState(): KvmIrqchipStateJson {
    const err = { error: 'KVM_GET_IRQCHIP failed: errno ENXIO' };
    return {
      pic: { master: this.pic?.toJson(0) ?? err, slave: this.pic?.toJson(1) ?? err },
      ioapic: this.ioapic?.toJson() ?? err,
      lapic: this.vcpuList.map((v) => (this.irqchipInKernel ? v.lapic.toJson() : { error: 'KVM_GET_LAPIC failed: errno EINVAL' })),
      vcpu_events: this.vcpuList.map((v) => v.getEvents()),
    };
  }

  /** The interrupt state (chips, lines, vCPU interrupt state, routing) as a versioned plain record. */
  snapshot(): Snapshot<KvmVmSnapshotState> {
    const pic = this.pic;
    const io = this.ioapic;
    const state: KvmVmSnapshotState = {
      pic: pic === undefined ? null : {
        chips: ([0, 1] as const).map((c) => {
          const r = {} as PicStateRaw;
          for (const f of PIC_FIELDS_ORDER) r[f] = pic.pics[c][f];
          return r;
        }),
        output: pic.output,
        lines: pic.lines.map(lineSources),
      },
      ioapic: io === undefined ? null : {
        baseAddress: io.baseAddress, id: io.id, ioregsel: io.ioregsel, irr: io.irr, irrDelivered: io.irrDelivered,
        lo: Array.from(io.lo), hi: Array.from(io.hi), irqEoi: [...io.irqEoi], lines: io.lines.map(lineSources),
        rtcPendingEoi: io.rtcPendingEoi, rtcDest: [...io.rtcDestMap.vcpus].map((v) => [v, io.rtcDestMap.vectors.get(v) ?? 0]),
      },
      vcpus: this.vcpuList.map((v) => ({
        regs: Array.from(v.lapic.regs), apicBase: v.lapic.apicBase, ...v.lapic.isrBookkeeping, pendingEvents: v.lapic.pendingEvents,
        sipiVector: v.lapic.sipiVector, arbPrio: v.lapic.arbPrio, mpState: v.mpState, nmiQueued: v.nmiQueued, nmiPending: v.nmiPending,
        nmiMasked: v.nmiMasked, nmiInjected: v.nmiInjected, pvUnhalted: v.pvUnhalted,
      })),
      routing: this.routing.all().map((r) => r.user),
    };
    return { type: KVM_VM_SNAPSHOT_TYPE, version: KVM_VM_SNAPSHOT_VERSION, state: JSON.parse(JSON.stringify(state)) as KvmVmSnapshotState };
  }

  /** Puts a `snapshot()` back (no side effects: nothing is re-delivered). irqfds stay as they are. */
  restore(snapshot: Snapshot<KvmVmSnapshotState>): void {
    const s = checkSnapshot(snapshot, KVM_VM_SNAPSHOT_TYPE, KVM_VM_SNAPSHOT_VERSION);
    if (s.vcpus.length !== this.vcpuList.length) {
      throw new VirqError(KvmErrorCode.VcpuInvalid, `snapshot has ${s.vcpus.length} vCPUs, this VM ${this.vcpuList.length}: restore into a VM of the same shape`);
    }
    if ((s.ioapic === null) !== (this.ioapic === undefined)) {
      throw new VirqError(KvmErrorCode.NoIrqchip, 'snapshot and VM differ in having the in-kernel irqchip');
    }
    this.routing = s.ioapic === null ? IrqRoutingTable.build([]) : IrqRoutingTable.build(s.routing);
    if (this.pic !== undefined && s.pic !== null) {
      ([0, 1] as const).forEach((c) => {
        for (const f of PIC_FIELDS_ORDER) this.pic!.pics[c][f] = s.pic!.chips[c]![f];
      });
      this.pic.output = s.pic.output;
      this.pic.lines.forEach((l, i) => setLineSources(l, s.pic!.lines[i] ?? []));
    }
    if (this.ioapic !== undefined && s.ioapic !== null) {
      const io = this.ioapic;
      const x = s.ioapic;
      io.baseAddress = x.baseAddress;
      io.id = x.id;
      io.ioregsel = x.ioregsel;
      io.irr = x.irr;
      io.irrDelivered = x.irrDelivered;
      io.lo.set(x.lo);
      io.hi.set(x.hi);
      x.irqEoi.forEach((n, i) => (io.irqEoi[i] = n));
      io.lines.forEach((l, i) => setLineSources(l, x.lines[i] ?? []));
      io.rtcPendingEoi = x.rtcPendingEoi;
      io.rtcDestMap.vcpus.clear();
      io.rtcDestMap.vectors.clear();
      for (const [v, vec] of x.rtcDest) {
        io.rtcDestMap.vcpus.add(v);
        io.rtcDestMap.vectors.set(v, vec);
      }
    }
    s.vcpus.forEach((x, i) => {
      const v = this.vcpuList[i]!;
      v.lapic.restoreRegisters(x.regs);
      v.lapic.apicBase = x.apicBase;
      v.lapic.isrBookkeeping = { isrCount: x.isrCount, highestIsrCache: x.highestIsrCache };
      v.lapic.pendingEvents = x.pendingEvents;
      v.lapic.sipiVector = x.sipiVector;
      v.lapic.arbPrio = x.arbPrio;
      v.mpState = x.mpState;
      v.nmiQueued = x.nmiQueued;
      v.nmiPending = x.nmiPending;
      v.nmiMasked = x.nmiMasked;
      v.nmiInjected = x.nmiInjected;
      v.pvUnhalted = x.pvUnhalted;
    });
    this.apicMap.dirty = true;
    this.apicMap.recalculate();
    this.irqfds.routingUpdate();
  }

  /** Pins of the IOAPIC (for tests and machines that wire devices straight to IOAPIC inputs). */
  ioapicPin(pin: number): IrqPin {
    if (pin < 0 || pin >= IOAPIC_NUM_PINS) throw new VirqError(KvmErrorCode.RoutingInvalid, `IOAPIC pin ${pin} is outside 0..23`);
    return { setLevel: (level: boolean, sourceId = 0) => void this.ioapic!.setIrq(pin, sourceId, level, false) };
  }
  /** Pins of the PIC pair: 0–7 master, 8–15 slave. */
  picPin(pin: number): IrqPin {
    if (pin < 0 || pin >= 16) throw new VirqError(KvmErrorCode.RoutingInvalid, `PIC pin ${pin} is outside 0..15`);
    return { setLevel: (level: boolean, sourceId = 0) => void this.pic!.setIrq(pin, sourceId, level) };
  }
}

export { KVM_IRQCHIP_PIC_SLAVE };
