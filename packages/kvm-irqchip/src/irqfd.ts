import { VirqError, type EventFd, type GsiRoute } from '@virq/core';
import { KvmErrorCode } from './errors.js';
import { toGsiRoute, type KernelRoute } from './irq-routing.js';

export const KVM_IRQFD_FLAG_DEASSIGN = 1;
export const KVM_IRQFD_FLAG_RESAMPLE = 2;
export const KVM_USERSPACE_IRQ_SOURCE_ID = 0;
export const KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID = 1;
/** kvm_arch_set_irq_inatomic's "cannot do it here" answer. */
export const EWOULDBLOCK = -11;

/** One irqfd as the irqbypass consumer sees it (`struct kvm_kernel_irqfd`). */
export interface KvmIrqfdView {
  readonly gsi: number;
  readonly eventfd: EventFd;
  /** The cached route (`irqfd->irq_entry`): set only when the GSI has exactly one entry. */
  readonly route: GsiRoute | undefined;
}

/** irqbypass hook points of virt/kvm/eventfd.c (installed by @virq/irqbypass). */
export interface IrqfdBypassHooks {
  /** End of kvm_irqfd_assign (irq_bypass_register_consumer). */
  irqfdAssigned(irqfd: KvmIrqfdView): void;
  /** irqfd_shutdown (irq_bypass_unregister_consumer). */
  irqfdDeassigned(irqfd: KvmIrqfdView): void;
  /** kvm_irq_routing_update → irqfd_update (kvm_arch_update_irqfd_routing). */
  irqfdRoutingUpdated(irqfd: KvmIrqfdView): void;
}

/** An ack notifier (`struct kvm_irq_ack_notifier`). */
export interface IrqAckNotifier {
  readonly gsi: number;
  irqAcked(): void;
}

/** What irqfds need of the VM. */
export interface IrqfdHost {
  readonly irqchipInKernel: boolean;
  routes(gsi: number): readonly KernelRoute[];
  /** kvm_set_irq */
  kvmSetIrq(sourceId: number, gsi: number, level: boolean, lineStatus: boolean): number;
  /** kvm_arch_set_irq_inatomic: MSI through the APIC map only; EWOULDBLOCK otherwise. */
  setIrqInatomic(route: KernelRoute | undefined, sourceId: number): number;
  registerAckNotifier(n: IrqAckNotifier): void;
  unregisterAckNotifier(n: IrqAckNotifier): void;
  /** schedule_work on the system workqueue (a kworker actor). */
  scheduleWork(fn: () => void): void;
  readonly bypassHooks: IrqfdBypassHooks | undefined;
  readonly tracing: boolean;
  trace(fn: string, caller: string, args: Readonly<Record<string, number | string | boolean>>): void;
}

/** A resampler (`struct kvm_kernel_irqfd_resampler`): one per GSI, shared by its resampling irqfds. */
export class IrqfdResampler implements IrqAckNotifier {
  readonly list: KvmIrqfd[] = [];
  constructor(
    readonly gsi: number,
    private readonly host: IrqfdHost,
  ) {}

  /** irqfd_resampler_ack: de-assert the shared source-1 line once, then signal every resamplefd. */
  irqAcked(): void {
    if (this.host.tracing) this.host.trace('irqfd_resampler_ack', 'kvm_notify_acked_gsi', { gsi: this.gsi });
    this.host.kvmSetIrq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, this.gsi, false, false);
    this.notify();
  }

  /** irqfd_resampler_notify */
  notify(): void {
    for (const i of this.list) {
      const fd = i.resampleFd;
      if (fd === undefined || fd.isClosed) continue;
      try {
        fd.tryWrite(1);
      } catch (e) {
        // eventfd_signal cannot fail in the kernel; keep a guest EOI from throwing.
        if (this.host.tracing) this.host.trace('eventfd_signal', 'irqfd_resampler_notify', { fd: fd.fd, error: e instanceof Error ? e.message : String(e) });
      }
    }
  }
}

/** `struct kvm_kernel_irqfd` */
export class KvmIrqfd implements KvmIrqfdView {
  /** irq_entry (type 0 = invalid is `undefined`). */
  kernelRoute: KernelRoute | undefined;
  route: GsiRoute | undefined;
  resampler: IrqfdResampler | undefined;
  active = true;
  private injectPending = false;
  removeWaiter: () => void = () => undefined;
  /** Injections done (wake-ups that delivered or queued work). */
  injections = 0;

  constructor(
    readonly gsi: number,
    readonly eventfd: EventFd,
    readonly resampleFd: EventFd | undefined,
    private readonly host: IrqfdHost,
  ) {}

  /** irqfd_update: cache the GSI's route when it has exactly one. */
  update(): void {
    const rs = this.host.routes(this.gsi);
    this.kernelRoute = rs.length === 1 ? rs[0] : undefined;
    this.route = this.kernelRoute === undefined ? undefined : toGsiRoute(this.kernelRoute);
  }

  /** irqfd_wakeup (EPOLLIN), in the writer's context: consume the count, inject or defer. */
  wakeup(): void {
    if (!this.active) return;
    this.eventfd.testAndClear();
    this.injections++;
    const host = this.host;
    if (host.tracing) host.trace('irqfd_wakeup', '__wake_up_common', { gsi: this.gsi, fd: this.eventfd.fd });
    if (host.setIrqInatomic(this.kernelRoute, KVM_USERSPACE_IRQ_SOURCE_ID) === EWOULDBLOCK) this.scheduleInject();
  }

  /** schedule_work(&irqfd->inject) (a no-op when already queued). */
  scheduleInject(): void {
    if (this.injectPending) return;
    this.injectPending = true;
    if (this.host.tracing) this.host.trace('schedule_work', 'irqfd_wakeup', { gsi: this.gsi });
    this.host.scheduleWork(() => this.inject());
  }

  /** irqfd_inject: an edge pulse on source 0, or a level assert on source 1 for resampling irqfds. */
  inject(): void {
    this.injectPending = false;
    if (!this.active) return;
    const host = this.host;
    if (host.tracing) host.trace('irqfd_inject', 'process_one_work', { gsi: this.gsi });
    if (this.resampler === undefined) {
      host.kvmSetIrq(KVM_USERSPACE_IRQ_SOURCE_ID, this.gsi, true, false);
      host.kvmSetIrq(KVM_USERSPACE_IRQ_SOURCE_ID, this.gsi, false, false);
    } else {
      host.kvmSetIrq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, this.gsi, true, false);
    }
  }
}

/** KVM_IRQFD's arguments at the uapi level: `null` stands for an fd that is not an eventfd. */
export interface KvmIrqfdArgs {
  readonly fd: EventFd | null;
  readonly gsi: number;
  readonly flags: number;
  readonly resampleFd?: EventFd | null;
}

/** The VM's irqfds and resamplers (`kvm->irqfds`), with KVM_IRQFD's assign/deassign. */
export class IrqfdRegistry {
  readonly items: KvmIrqfd[] = [];
  readonly resamplers: IrqfdResampler[] = [];
  private readonly byFd = new Map<EventFd, KvmIrqfd>();

  constructor(private readonly host: IrqfdHost) {}

  /** KVM_IRQFD */
  irqfd(args: KvmIrqfdArgs): void {
    if ((args.flags & ~(KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE)) !== 0) {
      throw new VirqError(KvmErrorCode.IrqfdInvalid, `KVM_IRQFD: unknown flags 0x${args.flags.toString(16)}; only DEASSIGN (1) and RESAMPLE (2) exist`, { errno: 'EINVAL' });
    }
    if (args.flags & KVM_IRQFD_FLAG_DEASSIGN) this.deassign(args);
    else this.assign(args);
  }

  private assign(args: KvmIrqfdArgs): void {
    const resample = (args.flags & KVM_IRQFD_FLAG_RESAMPLE) !== 0;
    if (!this.host.irqchipInKernel) {
      throw new VirqError(KvmErrorCode.IrqfdInvalid, 'KVM_IRQFD needs the in-kernel irqchip (KVM_CREATE_IRQCHIP)', { errno: 'EINVAL' });
    }
    if (args.fd === null || args.fd.isClosed) {
      throw new VirqError(KvmErrorCode.IrqfdInvalid, 'KVM_IRQFD: fd is not an eventfd', { errno: 'EINVAL' });
    }
    let rfd: EventFd | undefined;
    if (resample) {
      if (args.resampleFd === null || args.resampleFd === undefined || args.resampleFd.isClosed) {
        throw new VirqError(KvmErrorCode.IrqfdInvalid, 'KVM_IRQFD with RESAMPLE: resamplefd is not an eventfd', { errno: 'EINVAL' });
      }
      rfd = args.resampleFd;
    }
    const irqfd = new KvmIrqfd(args.gsi, args.fd, rfd, this.host);
    if (resample) {
      let r = this.resamplers.find((x) => x.gsi === args.gsi);
      if (r === undefined) {
        r = new IrqfdResampler(args.gsi, this.host);
        this.resamplers.push(r);
        this.host.registerAckNotifier(r);
      }
      irqfd.resampler = r;
      r.list.push(irqfd);
    }
    if (this.byFd.has(args.fd)) {
      if (irqfd.resampler !== undefined) this.resamplerShutdown(irqfd);
      throw new VirqError(KvmErrorCode.IrqfdBusy, `KVM_IRQFD: ${args.fd.name} already backs an irqfd; use another eventfd or deassign the first`, { errno: 'EBUSY' });
    }
    irqfd.update();
    this.items.push(irqfd);
    this.byFd.set(args.fd, irqfd);
    // irqfd_wakeup is a wait-queue callback: it runs inside eventfd_signal, in the writer's context.
    irqfd.removeWaiter = args.fd.addWaiter({ inline: true, wake: () => irqfd.wakeup() });
    if (this.host.tracing) this.host.trace('kvm_irqfd_assign', 'kvm_irqfd', { gsi: args.gsi, fd: args.fd.fd, resample });
    // An event signalled before registration is not lost (its count is left in place).
    if (args.fd.readable) irqfd.scheduleInject();
    this.host.bypassHooks?.irqfdAssigned(irqfd);
  }

  private deassign(args: KvmIrqfdArgs): void {
    if (args.fd === null) {
      throw new VirqError(KvmErrorCode.IrqfdInvalid, 'KVM_IRQFD deassign: fd is not an eventfd', { errno: 'EINVAL' });
    }
    const irqfd = this.byFd.get(args.fd);
    if (irqfd !== undefined && irqfd.gsi === args.gsi) {
      irqfd.kernelRoute = undefined;
      irqfd.route = undefined;
      this.shutdown(irqfd);
    }
  }

  /** irqfd_deactivate + irqfd_shutdown (run synchronously: the ioctl flushes the cleanup queue). */
  shutdown(irqfd: KvmIrqfd): void {
    const i = this.items.indexOf(irqfd);
    if (i >= 0) this.items.splice(i, 1);
    if (this.byFd.get(irqfd.eventfd) === irqfd) this.byFd.delete(irqfd.eventfd);
    irqfd.active = false;
    irqfd.removeWaiter();
    if (!irqfd.eventfd.isClosed) irqfd.eventfd.testAndClear();
    if (irqfd.resampler !== undefined) this.resamplerShutdown(irqfd);
    if (this.host.tracing) this.host.trace('irqfd_shutdown', 'process_one_work', { gsi: irqfd.gsi });
    this.host.bypassHooks?.irqfdDeassigned(irqfd);
  }

  /** irqfd_resampler_shutdown */
  private resamplerShutdown(irqfd: KvmIrqfd): void {
    const r = irqfd.resampler!;
    const j = r.list.indexOf(irqfd);
    if (j >= 0) r.list.splice(j, 1);
    irqfd.resampler = undefined;
    if (r.list.length === 0) {
      this.host.unregisterAckNotifier(r);
      this.host.kvmSetIrq(KVM_IRQFD_RESAMPLE_IRQ_SOURCE_ID, r.gsi, false, false);
      const k = this.resamplers.indexOf(r);
      if (k >= 0) this.resamplers.splice(k, 1);
    }
  }

  /** kvm_irq_routing_update: refresh every irqfd's cached route. */
  routingUpdate(): void {
    const tracing = this.host.tracing;
    if (tracing) this.host.trace('kvm_irq_routing_update', 'kvm_set_irq_routing', { irqfds: this.items.length });
    for (const irqfd of this.items) {
      if (tracing) this.host.trace('irqfd_update', 'kvm_irq_routing_update', { gsi: irqfd.gsi });
      irqfd.update();
      this.host.bypassHooks?.irqfdRoutingUpdated(irqfd);
    }
  }

  /** kvm_notify_irqfd_resampler */
  notifyResampler(gsi: number): boolean {
    const r = this.resamplers.find((x) => x.gsi === gsi);
    if (r === undefined) return false;
    r.notify();
    return true;
  }
}
