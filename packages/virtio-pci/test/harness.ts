import {
  type Actor,
  EventFd,
  type GsiRoute,
  GuestMemory,
  type IoeventfdRequest,
  IrqLine,
  type IrqfdRequest,
  KvmRoutingTable,
  type MsiMessage,
  type MsiSink,
  type SimContext,
  type VmInterruptApi,
  createSimContext,
  formatMsi,
} from '@virq/core';
import { type PciAccess, PciBus, pciBdf } from '@virq/pci';
import {
  GuestPageAllocator,
  GuestVirtioBlk,
  GuestVirtioNet,
  GuestVirtioPci,
  type GuestIrqMode,
  type NetPeer,
  type NoIrqfdPolicy,
  type VhostOps,
  type VhostVringAddr,
  VirtioBlkDevice,
  VirtioNet,
  VirtioPciProxy,
  assignBars,
} from '@virq/virtio-pci';
import { type VirtqueueDevice, createVirtqueueDevice } from '@virq/virtio-ring';

/**
 * A small stand-in for a KVM VM's interrupt ioctls, recording every call: KVM_IOEVENTFD
 * registrations (consulted by TestAccess as kvm_io_bus_write would), KVM_IRQFD (a waiter on
 * the eventfd that, like irqfd_wakeup, runs on the writer's actor and delivers the route's
 * MSI), KVM_SET_GSI_ROUTING and KVM_SIGNAL_MSI.
 */
export class RecordingVm implements VmInterruptApi {
  readonly log: string[] = [];
  routes: readonly GsiRoute[] = [];
  readonly ioeventfds: IoeventfdRequest[] = [];
  private readonly irqfds = new Map<EventFd, { gsi: number; remove: () => void }>();
  irqfdDeliveries = 0;

  private kworker: Actor | undefined;

  constructor(
    readonly sink: MsiSink,
    readonly irqfdCapable = true,
    readonly ioeventfdCapable = true,
    readonly ctx?: SimContext,
  ) {}

  setGsiRouting(entries: readonly GsiRoute[]): void {
    this.routes = entries;
    this.log.push(`KVM_SET_GSI_ROUTING ${entries.filter((e) => e.type === 'msi').map((e) => `${e.gsi}:${e.type === 'msi' ? formatMsi(e.msi) : ''}`).join(',')}`);
  }

  irqfd(r: IrqfdRequest): void {
    this.log.push(`KVM_IRQFD fd=${r.fd.name} gsi=${r.gsi}${r.deassign ? ' deassign' : ''}`);
    if (r.deassign) {
      this.irqfds.get(r.fd)?.remove();
      this.irqfds.delete(r.fd);
      return;
    }
    const inject = (fd: EventFd): void => {
      if (fd.testAndClear() === 0) return;
      const route = this.routes.find((e) => e.gsi === r.gsi);
      if (route?.type === 'msi') {
        this.irqfdDeliveries++;
        this.sink.deliverMsi(route.msi);
      }
    };
    const remove = r.fd.addWaiter({ wake: inject });
    this.irqfds.set(r.fd, { gsi: r.gsi, remove });
    // kvm_irqfd_assign: an event already pending on the eventfd is injected as if it had not been missed.
    if (r.fd.readable && this.ctx !== undefined) {
      this.kworker ??= this.ctx.scheduler.actor({ name: 'kworker/0:1', kind: 'kernel', cpu: 0 });
      this.log.push(`irqfd pending at assign: schedule_work(irqfd_inject) gsi=${r.gsi}`);
      this.ctx.scheduler.after(0, this.kworker, () => inject(r.fd));
    }
  }

  ioeventfd(r: IoeventfdRequest): void {
    this.log.push(`KVM_IOEVENTFD ${r.space} addr=0x${r.addr.toString(16)} len=${r.len}${r.datamatch === undefined ? '' : ` datamatch=${r.datamatch}`}${r.deassign ? ' deassign' : ''}`);
    if (r.deassign) {
      const i = this.ioeventfds.findIndex((e) => e.fd === r.fd && e.addr === r.addr);
      if (i >= 0) this.ioeventfds.splice(i, 1);
      return;
    }
    this.ioeventfds.push(r);
  }

  signalMsi(msg: MsiMessage): number {
    this.log.push(`KVM_SIGNAL_MSI ${formatMsi(msg)}`);
    return this.sink.deliverMsi(msg);
  }

  irqLine(): number {
    return 1;
  }

  /** kvm_io_bus_write's ioeventfd match. */
  match(space: 'pio' | 'mmio', addr: number, size: number, value: number): EventFd | undefined {
    for (const e of this.ioeventfds) {
      if (e.space !== space || e.addr !== addr) continue;
      if (e.len !== 0 && e.len !== size) continue;
      if (e.datamatch !== undefined && Number(e.datamatch) !== value) continue;
      return e.fd;
    }
    return undefined;
  }
}

/** Guest accesses: ioeventfd first (no exit to userspace), else the PCI bus (QEMU). */
export class TestAccess implements PciAccess {
  exitsToUserspace = 0;
  ioeventfdHits = 0;
  constructor(
    readonly bus: PciBus,
    readonly vm: RecordingVm | undefined,
  ) {}
  configRead(bdf: number, o: number, s: number): number {
    return this.bus.configRead(bdf, o, s);
  }
  configWrite(bdf: number, o: number, s: number, v: number): void {
    this.bus.configWrite(bdf, o, s, v);
  }
  mmioRead(a: number, s: 1 | 2 | 4 | 8): number {
    this.exitsToUserspace++;
    return this.bus.mmioRead(a, s);
  }
  mmioWrite(a: number, s: 1 | 2 | 4 | 8, v: number): void {
    const fd = this.vm?.match('mmio', a, s, v);
    if (fd !== undefined) {
      this.ioeventfdHits++;
      fd.write(1);
      return;
    }
    this.exitsToUserspace++;
    this.bus.mmioWrite(a, s, v);
  }
  pioRead(p: number, s: 1 | 2 | 4): number {
    this.exitsToUserspace++;
    return this.bus.pioRead(p, s);
  }
  pioWrite(p: number, s: 1 | 2 | 4, v: number): void {
    const fd = this.vm?.match('pio', p, s, v);
    if (fd !== undefined) {
      this.ioeventfdHits++;
      fd.write(1);
      return;
    }
    this.exitsToUserspace++;
    this.bus.pioWrite(p, s, v);
  }
}

/** Delivers MSIs to the guest driver's handler on the vCPU (the LAPIC stand-in). */
export class GuestMsiSink implements MsiSink {
  driver: GuestVirtioPci | undefined;
  vcpu: Actor | undefined;
  readonly delivered: MsiMessage[] = [];
  constructor(readonly ctx: SimContext) {}
  deliverMsi(msg: MsiMessage): number {
    this.delivered.push(msg);
    const d = this.driver;
    if (d === undefined || this.vcpu === undefined) return 1;
    const entry = d.entryForMessage(msg);
    if (entry === undefined) return -1;
    this.ctx.scheduler.after(this.ctx.costs.ns.injectIrq, this.vcpu, () => d.msixInterrupt(entry));
    return 1;
  }
}

export interface MachineOptions {
  kvm?: boolean;
  irqfd?: boolean;
  ioeventfd?: boolean;
  legacy?: boolean;
  modern?: boolean;
  irqModes?: GuestIrqMode[];
  pairs?: number;
  noIrqfdPolicy?: NoIrqfdPolicy;
  seed?: number;
  vectors?: number;
  queueSize?: number;
  /** Host feature bits of the device model (replacing its defaults). */
  hostFeatures?: bigint;
  /** Features the guest driver asks for (replacing its defaults). */
  guestFeatures?: bigint;
}

export class RecordingPeer implements NetPeer {
  readonly frames: Uint8Array[] = [];
  send(frame: Uint8Array): void {
    this.frames.push(frame.slice());
  }
}

function base(opts: MachineOptions) {
  const ctx = createSimContext({ seed: opts.seed ?? 1 });
  const mem = new GuestMemory([{ gpa: 0, size: 32 << 20, name: 'ram' }]);
  const sink = new GuestMsiSink(ctx);
  const kvm = opts.kvm ?? true;
  const vm = kvm ? new RecordingVm(sink, opts.irqfd ?? true, opts.ioeventfd ?? true, ctx) : undefined;
  const routes = vm !== undefined ? new KvmRoutingTable(vm, 24) : undefined;
  const bus = new PciBus(0);
  const access = new TestAccess(bus, vm);
  const intx = new IrqLine('gsi11');
  const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
  const mainLoop = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  return { ctx, mem, sink, vm, routes, bus, access, intx, vcpu, mainLoop };
}

/** The MSI sink the proxy writes to: KVM_SIGNAL_MSI when there is a VM, else straight to the guest. */
function proxySink(b: ReturnType<typeof base>): MsiSink {
  return b.vm !== undefined ? { deliverMsi: (m) => b.vm!.signalMsi(m) } : b.sink;
}

function wireIntx(b: ReturnType<typeof base>, driver: () => GuestVirtioPci | undefined): void {
  // Level-triggered line: while it is high the guest keeps taking the interrupt.
  b.intx.onChange((c) => {
    if (!c.rose) return;
    const take = (): void => {
      driver()?.intxInterrupt();
      if (b.intx.level) b.ctx.scheduler.after(1000, b.vcpu, take);
    };
    b.ctx.scheduler.after(b.ctx.costs.ns.injectIrq, b.vcpu, take);
  });
}

/** A machine with one virtio-net-pci at 00:03.0 and the guest's virtio_net driver, probed on the vCPU. */
export function netMachine(opts: MachineOptions = {}) {
  const b = base(opts);
  const peer = new RecordingPeer();
  const net = new VirtioNet(b.ctx, { name: 'net0', mem: b.mem, mainLoop: b.mainLoop, queuePairs: opts.pairs ?? 1, peer, ...(opts.noIrqfdPolicy === undefined ? {} : { noIrqfdPolicy: opts.noIrqfdPolicy }), ...(opts.queueSize === undefined ? {} : { queueSize: opts.queueSize }), ...(opts.hostFeatures === undefined ? {} : { hostFeatures: opts.hostFeatures }) });
  const proxy = new VirtioPciProxy(b.ctx, {
    device: net,
    ...(b.vm === undefined ? {} : { vm: b.vm }),
    ...(b.routes === undefined ? {} : { routes: b.routes }),
    msiSink: proxySink(b),
    intx: b.intx,
    ...(opts.legacy === undefined ? {} : { legacy: opts.legacy }),
    ...(opts.modern === undefined ? {} : { modern: opts.modern }),
    ...(opts.vectors === undefined ? {} : { vectors: opts.vectors }),
  });
  const bdf = pciBdf(0, 3);
  b.bus.attach(proxy.pci, bdf & 0xff);
  assignBars(b.access, bdf, { mmio: 0xfe00_0000, pio: 0xc000 });
  const alloc = new GuestPageAllocator(b.mem, 1 << 20, 32 << 20);
  const pci = new GuestVirtioPci(b.ctx, { access: b.access, bdf, mem: b.mem, alloc, vcpu: b.vcpu, transport: opts.modern === false ? 'legacy' : 'modern' });
  b.sink.driver = pci;
  b.sink.vcpu = b.vcpu;
  wireIntx(b, () => pci);
  const received: Uint8Array[] = [];
  let driver: GuestVirtioNet | undefined;
  const probe = (): GuestVirtioNet => {
    driver = new GuestVirtioNet(b.ctx, { pci, alloc, onReceive: (f) => received.push(f), ...(opts.irqModes === undefined ? {} : { irqModes: opts.irqModes }), ...(opts.guestFeatures === undefined ? {} : { features: opts.guestFeatures }) });
    return driver;
  };
  return { ...b, peer, net, proxy, bdf, alloc, pci, received, probe, get driver() { return driver; } };
}

export function blkMachine(opts: MachineOptions & { sectors?: number; ioLatencyNs?: number } = {}) {
  const b = base(opts);
  const backing = new Uint8Array((opts.sectors ?? 2048) * 512);
  for (let i = 0; i < backing.length; i += 512) backing[i] = (i / 512) & 0xff;
  const blk = new VirtioBlkDevice(b.ctx, { name: 'blk0', mem: b.mem, mainLoop: b.mainLoop, backing, serial: 'VIRQ-SERIAL-0001', ...(opts.ioLatencyNs === undefined ? {} : { ioLatencyNs: opts.ioLatencyNs }) });
  const proxy = new VirtioPciProxy(b.ctx, { device: blk, ...(b.vm === undefined ? {} : { vm: b.vm }), ...(b.routes === undefined ? {} : { routes: b.routes }), msiSink: proxySink(b), intx: b.intx });
  const bdf = pciBdf(0, 4);
  b.bus.attach(proxy.pci, bdf & 0xff);
  assignBars(b.access, bdf, { mmio: 0xfe00_0000, pio: 0xc000 });
  const alloc = new GuestPageAllocator(b.mem, 1 << 20, 32 << 20);
  const pci = new GuestVirtioPci(b.ctx, { access: b.access, bdf, mem: b.mem, alloc, vcpu: b.vcpu });
  b.sink.driver = pci;
  b.sink.vcpu = b.vcpu;
  wireIntx(b, () => pci);
  let driver: GuestVirtioBlk | undefined;
  const probe = (): GuestVirtioBlk => {
    driver = new GuestVirtioBlk(b.ctx, { pci, alloc, ...(opts.irqModes === undefined ? {} : { irqModes: opts.irqModes }) });
    return driver;
  };
  return { ...b, blk, backing, proxy, bdf, alloc, pci, probe, get driver() { return driver; } };
}

/** Runs `fn` as guest code on the vCPU and the scheduler until idle. */
export function onVcpu<T>(m: { ctx: SimContext; vcpu: Actor }, fn: () => T): T {
  let out: T | undefined;
  m.ctx.scheduler.after(0, m.vcpu, () => {
    out = fn();
  });
  m.ctx.scheduler.runUntilIdle(1_000_000);
  return out as T;
}

/**
 * A vhost back end for tests (kernel vhost-net or vhost-user): records every VhostOps call,
 * serves the tx rings on its own worker when the kick fd fires, and signals the call fd.
 */
export class FakeVhost implements VhostOps {
  readonly log: string[] = [];
  readonly name: string;
  private mem: GuestMemory | undefined;
  private features = 0n;
  private readonly num = new Map<number, number>();
  private readonly base = new Map<number, number>();
  private readonly addr = new Map<number, VhostVringAddr>();
  readonly kick = new Map<number, EventFd | undefined>();
  readonly call = new Map<number, EventFd | undefined>();
  readonly rings = new Map<number, VirtqueueDevice>();
  private readonly unwatch = new Map<number, () => void>();
  readonly txFrames: Uint8Array[] = [];
  failOn: string | undefined;

  constructor(
    readonly ctx: SimContext,
    readonly backendType: 'kernel' | 'user',
    readonly worker: Actor,
    readonly supportedFeatures = 0xffff_ffff_ffffn,
  ) {
    this.name = backendType === 'kernel' ? 'vhost-net' : 'vhost-user';
  }

  private rec(s: string): void {
    if (this.failOn !== undefined && s.startsWith(this.failOn)) throw new Error(`${this.name} refused ${s}`);
    this.log.push(s);
  }
  setOwner(): void {
    this.rec('SET_OWNER');
  }
  getFeatures(): bigint {
    return this.supportedFeatures;
  }
  setFeatures(f: bigint): void {
    this.rec('SET_FEATURES');
    this.features = f;
  }
  setMemTable(mem: GuestMemory): void {
    this.rec('SET_MEM_TABLE');
    this.mem = mem;
  }
  setVringNum(i: number, n: number): void {
    this.rec(`SET_VRING_NUM ${i} ${n}`);
    this.num.set(i, n);
  }
  setVringBase(i: number, b: number): void {
    this.rec(`SET_VRING_BASE ${i} ${b}`);
    this.base.set(i, b);
  }
  setVringAddr(a: VhostVringAddr): void {
    this.rec(`SET_VRING_ADDR ${a.index}`);
    this.addr.set(a.index, a);
    this.start(a.index);
  }
  setVringKick(i: number, fd: EventFd | undefined): void {
    this.rec(`SET_VRING_KICK ${i} ${fd === undefined ? 'nofd' : 'fd'}`);
    this.unwatch.get(i)?.();
    this.kick.set(i, fd);
    if (fd !== undefined) this.unwatch.set(i, fd.addWaiter({ actor: this.worker, wake: (f) => this.onKick(i, f) }));
  }
  setVringCall(i: number, fd: EventFd | undefined): void {
    this.rec(`SET_VRING_CALL ${i} ${fd === undefined ? 'nofd' : fd.name}`);
    this.call.set(i, fd);
  }
  getVringBase(i: number): number {
    const r = this.rings.get(i);
    const b = r?.getVringBase() ?? this.base.get(i) ?? 0;
    this.rec(`GET_VRING_BASE ${i} ${b}`);
    this.unwatch.get(i)?.();
    this.unwatch.delete(i);
    this.rings.delete(i);
    return b;
  }
  setVringEnable(i: number, e: boolean): void {
    if (this.backendType === 'user') this.rec(`SET_VRING_ENABLE ${i} ${e ? 1 : 0}`);
  }
  setNetBackend(i: number, attach: boolean): void {
    if (this.backendType === 'kernel') this.rec(`NET_SET_BACKEND ${i} ${attach ? 'tap' : '-1'}`);
  }

  private start(i: number): void {
    const a = this.addr.get(i)!;
    const ring = createVirtqueueDevice(this.mem!, {
      desc: a.desc,
      driver: a.avail,
      device: a.used,
      size: this.num.get(i)!,
      features: this.features,
      index: i,
      flavor: this.backendType === 'kernel' ? 'vhost-kernel' : 'dpdk',
      call: () => this.call.get(i)?.tryWrite(1),
    });
    ring.setVringBase(this.base.get(i) ?? 0);
    this.rings.set(i, ring);
  }

  private onKick(i: number, fd: EventFd): void {
    if (fd.testAndClear() === 0) return;
    this.serve(i);
  }

  /** handle_tx: pop every chain, record the frame, push, then the call decision. */
  serve(i: number): number {
    const ring = this.rings.get(i);
    if (ring === undefined || i % 2 === 0) return 0;
    let n = 0;
    for (;;) {
      const c = ring.pop();
      if (c === null) break;
      const buf = new Uint8Array(c.outBytes);
      ring.readFromChain(c, buf);
      this.txFrames.push(buf.subarray(12));
      ring.fill(c, 0);
      n++;
    }
    if (n > 0) {
      ring.flush();
      ring.notify();
    }
    return n;
  }

  /** Puts a frame into the guest's rx ring (i even) and signals the call fd. */
  receive(i: number, frame: Uint8Array): boolean {
    const ring = this.rings.get(i);
    if (ring === undefined) return false;
    const c = ring.pop();
    if (c === null) return false;
    const data = new Uint8Array(12 + frame.length);
    data[10] = 1;
    data.set(frame, 12);
    const n = ring.writeToChain(c, data);
    ring.push(c, n);
    ring.notify();
    return true;
  }
}

export { EventFd };
