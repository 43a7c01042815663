import type { EventFd } from './eventfd.js';
import { CoreErrorCode, VirqError } from './errors.js';
import type { GsiRoute } from './interfaces.js';
import type { MsiMessage } from './msi.js';

/** KVM_IRQFD's arguments (`struct kvm_irqfd`). */
export interface IrqfdRequest {
  readonly fd: EventFd;
  readonly gsi: number;
  /** KVM_IRQFD_FLAG_RESAMPLE: level-triggered emulation, signalled on EOI. */
  readonly resampleFd?: EventFd;
  /** KVM_IRQFD_FLAG_DEASSIGN. */
  readonly deassign?: boolean;
}

/** KVM_IOEVENTFD's arguments (`struct kvm_ioeventfd`). */
export interface IoeventfdRequest {
  readonly fd: EventFd;
  readonly addr: number;
  /** 0 (any length, the FAST_MMIO bus for MMIO), 1, 2, 4 or 8 bytes. */
  readonly len: 0 | 1 | 2 | 4 | 8;
  /** KVM_IOEVENTFD_FLAG_DATAMATCH with this value. */
  readonly datamatch?: bigint | number;
  /** KVM_IOEVENTFD_FLAG_PIO vs MMIO. */
  readonly space: 'pio' | 'mmio';
  readonly deassign?: boolean;
}

/**
 * The interrupt ioctls of a KVM VM fd, as a VMM (QEMU) uses them: what a device model or
 * QEMU's notifier wiring needs from whatever in-kernel irqchip stands behind the VM (x86
 * kvm-irqchip, ARM vGIC). Errors are VirqErrors with KVM's errno.
 */
export interface VmInterruptApi {
  /** KVM_CAP_IRQFD with an in-kernel irqchip: irqfds and MSI routes can be used. */
  readonly irqfdCapable: boolean;
  /** KVM_CAP_IOEVENTFD. */
  readonly ioeventfdCapable: boolean;
  /** KVM_SET_GSI_ROUTING: replaces the whole table. */
  setGsiRouting(entries: readonly GsiRoute[]): void;
  /** KVM_IRQFD. */
  irqfd(request: IrqfdRequest): void;
  /** KVM_IOEVENTFD. */
  ioeventfd(request: IoeventfdRequest): void;
  /** KVM_SIGNAL_MSI: returns the number of CPUs reached (0 coalesced, < 0 ignored). */
  signalMsi(msg: MsiMessage): number;
  /** KVM_IRQ_LINE_STATUS: returns the status KVM writes back. */
  irqLine(gsi: number, level: boolean): number;
}

/**
 * QEMU's bookkeeping of the GSI routing table it owns (accel/kvm: `kvm_irqchip_add_msi_route`,
 * `kvm_irqchip_update_msi_route`, `kvm_irqchip_release_virq`, `kvm_irqchip_commit_routes`):
 * routes are edited in userspace and only reach the kernel, all at once, on `commit`.
 * A "virq" is the GSI number QEMU allocated for an MSI route.
 */
export class KvmRoutingTable {
  private readonly routes = new Map<number, GsiRoute[]>();
  private readonly used = new Set<number>();
  private dirty = false;
  /** How many times the table reached the kernel (KVM_SET_GSI_ROUTING calls). */
  commits = 0;

  constructor(
    private readonly api: VmInterruptApi,
    /** First GSI free for MSI routes (24 on x86 after the IOAPIC pins; 32+ on ARM). */
    private readonly firstFreeGsi: number,
    /** GSIs above this are refused (KVM_MAX_IRQ_ROUTES - 1). */
    private readonly maxGsi = 4095,
  ) {}

  /** Adds an irqchip route (QEMU's kvm_irqchip_add_irq_route at machine setup). */
  addIrqchipRoute(gsi: number, irqchip: number, pin: number): void {
    const list = this.routes.get(gsi) ?? [];
    list.push({ gsi, type: 'irqchip', irqchip, pin });
    this.routes.set(gsi, list);
    this.used.add(gsi);
    this.dirty = true;
  }

  /** kvm_irqchip_add_msi_route: allocates a virq for `msg`; call `commit` to make it live. */
  addMsiRoute(msg: MsiMessage): number {
    if (!this.api.irqfdCapable) {
      throw new VirqError(CoreErrorCode.ArgumentInvalid, 'MSI routes need an in-kernel irqchip with irqfd support (KVM_CAP_IRQFD); this VM has none', { errno: 'ENOSYS' });
    }
    let gsi = this.firstFreeGsi;
    while (this.used.has(gsi)) gsi++;
    if (gsi > this.maxGsi) {
      throw new VirqError(CoreErrorCode.ArgumentInvalid, `no free GSI for an MSI route (all ${this.maxGsi + 1} in use)`, { errno: 'ENOSPC' });
    }
    this.used.add(gsi);
    this.routes.set(gsi, [{ gsi, type: 'msi', msi: msg }]);
    this.dirty = true;
    return gsi;
  }

  /** kvm_irqchip_update_msi_route: changes the message of an allocated virq (not committed). */
  updateMsiRoute(virq: number, msg: MsiMessage): void {
    const r = this.routes.get(virq);
    if (r === undefined || r.length !== 1 || r[0]!.type !== 'msi') {
      throw new VirqError(CoreErrorCode.ArgumentInvalid, `virq ${virq} is not an MSI route`, { errno: 'EINVAL' });
    }
    this.routes.set(virq, [{ gsi: virq, type: 'msi', msi: msg }]);
    this.dirty = true;
  }

  /** kvm_irqchip_release_virq. */
  releaseVirq(virq: number): void {
    if (this.routes.delete(virq)) {
      this.used.delete(virq);
      this.dirty = true;
    }
  }

  /** The message of an MSI virq, if any. */
  msiOf(virq: number): MsiMessage | undefined {
    const r = this.routes.get(virq);
    return r !== undefined && r[0]!.type === 'msi' ? r[0]!.msi : undefined;
  }

  /** Every route, ordered by GSI. */
  entries(): GsiRoute[] {
    return [...this.routes.keys()].sort((a, b) => a - b).flatMap((g) => this.routes.get(g)!);
  }

  get pending(): boolean {
    return this.dirty;
  }

  /** kvm_irqchip_commit_routes: KVM_SET_GSI_ROUTING with the whole table. */
  commit(): void {
    this.api.setGsiRouting(this.entries());
    this.dirty = false;
    this.commits++;
  }
}
