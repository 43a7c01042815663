import { EventFd, VirqError, type Actor, type KvmRoutingTable, type MsiMessage, type SimContext, type TraceChannel, type VmInterruptApi } from '@virq/core';
import type { MsixTable, PciDevice } from '@virq/pci';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';
import type { VfioPciCore } from './vfio-pci-core.js';
import type { VfioIrqSet } from './vfio-uapi.js';
import { VfioIrqInfoFlag, VfioIrqSetFlag, VfioPciIrqIndex } from './vfio-uapi.js';

/** QEMU's `VFIOMSIVector`: two notifiers per vector. */
export interface VfioMsiVectorState {
  readonly nr: number;
  readonly use: boolean;
  /** The KVM GSI ("virq") of the vector's MSI route, or -1. */
  readonly virq: number;
  /** Userspace notifier: QEMU's fd handler (vfio_msi_interrupt). Never an irqfd. */
  readonly interrupt: EventFd;
  /** Fast-path notifier: registered with KVM as the irqfd of `virq`. */
  readonly kvmInterrupt: EventFd | undefined;
}

class VfioMsiVector implements VfioMsiVectorState {
  use = false;
  virq = -1;
  kvmInterrupt: EventFd | undefined;
  removeHandler: (() => void) | undefined;
  constructor(
    readonly nr: number,
    readonly interrupt: EventFd,
  ) {}
}

export interface QemuVfioPciInit {
  /** The guest-visible PCI function QEMU emulates for the assigned device. */
  pdev: PciDevice;
  /** Its emulated MSI-X capability/table/PBA (@virq/pci). */
  msix: MsixTable;
  /** The kernel side (VFIO_DEVICE_SET_IRQS). */
  vfio: VfioPciCore;
  /** KVM's VM-fd interrupt ioctls. */
  kvm: VmInterruptApi;
  /** QEMU's GSI routing bookkeeping (kvm_irqchip_add_msi_route / commit). */
  routes: KvmRoutingTable;
  /** QEMU's main loop thread, where userspace fd handlers run. Created when omitted. */
  mainLoop?: Actor;
  /** x-no-kvm-msix: never use irqfds for MSI-X. */
  noKvmMsix?: boolean;
  /** The GSI the INTx pin routes to (pci_device_route_intx_to_irq). */
  intxGsi?: number;
}

/**
 * The QEMU half of VFIO PCI interrupts (hw/vfio/pci.c) for MSI-X and INTx:
 *
 * - each vector has two notifiers: `kvm_interrupt`, registered as the irqfd of the vector's
 *   MSI route (the bypass path), and `interrupt`, watched by QEMU's `vfio_msi_interrupt`;
 * - `vfio_msix_vector_use` (MSI-X use notifier, vector unmasked) → `vfio_msix_vector_do_use`:
 *   add the route + irqfd the first time, otherwise `vfio_update_kvm_msi_virq`
 *   (`kvm_irqchip_update_msi_route` + `kvm_irqchip_commit_routes` = KVM_SET_GSI_ROUTING),
 *   then SET_IRQS with `kvm_interrupt` for that vector (a vector past `nr_vectors` re-enables
 *   the whole index when the kernel reports NORESIZE); the VFIO-side pending bit is cleared;
 * - `vfio_msix_vector_release` (masked) → SET_IRQS with `interrupt` (the route and irqfd stay);
 * - `vfio_msi_interrupt`: a masked vector sets its pending bit and enables PBA emulation,
 *   then `msix_notify` (which pends it in the emulated PBA, or sends it);
 * - INTx: SET_IRQS TRIGGER with `interrupt`, then (KVM) a resampling irqfd on the INTx GSI
 *   with `unmask` as resamplefd and SET_IRQS UNMASK with the same `unmask` eventfd.
 */
export class QemuVfioPci {
  readonly pdev: PciDevice;
  readonly msix: MsixTable;
  readonly vfio: VfioPciCore;
  private readonly kvm: VmInterruptApi;
  private readonly routes: KvmRoutingTable;
  readonly mainLoop: Actor;
  private readonly vectors: VfioMsiVector[] = [];
  private nrVectors = 0;
  private interruptMode: 'none' | 'intx' | 'msix' = 'none';
  /** vdev->msix->pending: vectors that fired while masked. */
  private readonly vfioPending = new Set<number>();
  /** memory_region_set_enabled(&pdev->msix_pba_mmio, …): PBA reads are emulated. */
  pbaEmulated = false;
  private msixWasEnabled = false;
  /** vdev->msix->noresize: the kernel cannot add MSI-X vectors to an enabled index. */
  private msixNoResize = true;
  private readonly noKvmMsix: boolean;
  private intx: { interrupt: EventFd; unmask: EventFd | undefined; kvmAccel: boolean; pending: boolean; remove: (() => void) | undefined } | undefined;
  private readonly intxGsi: number | undefined;
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  /** Interrupts QEMU handled in userspace (vfio_msi_interrupt / vfio_intx_interrupt). */
  userspaceInterrupts = 0;
  /** Failed ioctls QEMU reported with error_report and survived (guest-driven paths never throw). */
  errors = 0;

  constructor(
    private readonly ctx: SimContext,
    init: QemuVfioPciInit,
  ) {
    this.pdev = init.pdev;
    this.msix = init.msix;
    this.vfio = init.vfio;
    this.kvm = init.kvm;
    this.routes = init.routes;
    this.noKvmMsix = init.noKvmMsix ?? false;
    this.intxGsi = init.intxGsi;
    this.mainLoop = init.mainLoop ?? ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('qemu-vfio');
    for (let i = 0; i < this.msix.vectors; i++) this.vectors.push(new VfioMsiVector(i, new EventFd(ctx.scheduler, { name: `vfio-msix${i}-interrupt` })));
    // vfio_pci_write_config: MSI-X enable transitions switch QEMU's interrupt mode.
    this.pdev.addConfigWriteHook(() => this.configWritten());
  }

  /** A vector's notifier state. */
  vector(nr: number): VfioMsiVectorState {
    return this.vectors[nr]!;
  }

  get mode(): 'none' | 'intx' | 'msix' {
    return this.interruptMode;
  }

  /** Whether QEMU's own pending bit (vdev->msix->pending) is set. */
  vfioPendingBit(nr: number): boolean {
    return this.vfioPending.has(nr);
  }

  private configWritten(): void {
    const en = this.msix.enabled;
    if (!this.msixWasEnabled && en) this.msixEnable();
    else if (this.msixWasEnabled && !en) this.msixDisable();
    this.msixWasEnabled = en;
  }

  // --- MSI-X ------------------------------------------------------------------------------

  /** vfio_msix_enable. */
  msixEnable(): void {
    this.disableInterrupts();
    this.interruptMode = 'msix';
    this.msixNoResize = (this.vfio.getIrqInfo(VfioPciIrqIndex.MSIX).flags & VfioIrqInfoFlag.NORESIZE) !== 0;
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_enable', 'vfio_pci_write_config', { dev: this.pdev.name });
    // Put the physical device in MSI-X mode with no vector enabled, like the guest's view.
    this.doUse(0, undefined);
    this.vectorRelease(0);
    this.msix.setVectorNotifiers({ use: (nr, msg) => this.vectorUse(nr, msg), release: (nr) => this.vectorRelease(nr) });
  }

  /** vfio_msix_disable. */
  msixDisable(): void {
    if (this.interruptMode !== 'msix') return;
    this.msix.unsetVectorNotifiers();
    for (let i = 0; i < this.nrVectors; i++) {
      const v = this.vectors[i]!;
      if (v.use) {
        this.vectorRelease(i);
        this.msix.vectorUnuse(i);
      }
    }
    if (this.nrVectors > 0) this.disableIrqIndex(VfioPciIrqIndex.MSIX);
    for (let i = 0; i < this.nrVectors; i++) {
      const v = this.vectors[i]!;
      if (!v.use) continue;
      if (v.virq >= 0) this.removeKvmMsiVirq(v);
      v.removeHandler?.();
      v.removeHandler = undefined;
      v.use = false;
    }
    this.nrVectors = 0;
    this.vfioPending.clear();
    this.pbaEmulated = false;
    this.interruptMode = 'none';
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_disable', 'vfio_pci_write_config', { dev: this.pdev.name });
  }

  /** vfio_msix_vector_use (MSI-X use notifier). */
  vectorUse(nr: number, msg: MsiMessage): number {
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_vector_use', 'msix_fire_vector_notifier', { dev: this.pdev.name, nr });
    return this.doUse(nr, msg);
  }

  /** vfio_msix_vector_do_use. */
  private doUse(nr: number, msg: MsiMessage | undefined): number {
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_vector_do_use', msg === undefined ? 'vfio_msix_enable' : 'vfio_msix_vector_use', { dev: this.pdev.name, nr });
    const v = this.vectors[nr]!;
    if (!v.use) {
      v.virq = -1;
      v.use = true;
      this.msix.vectorUse(nr);
    }
    // qemu_set_fd_handler(interrupt, vfio_msi_interrupt)
    v.removeHandler?.();
    v.removeHandler = msg === undefined ? undefined : v.interrupt.addWaiter({ actor: this.mainLoop, delayNs: this.ctx.costs.ns.threadWakeup, wake: () => this.msiInterrupt(nr) });
    if (v.virq >= 0) {
      if (msg === undefined) this.removeKvmMsiVirq(v);
      else this.updateKvmMsiVirq(v, msg);
    } else if (msg !== undefined) {
      this.addKvmMsiVirq(v, msg);
    }
    const resizing = this.nrVectors < nr + 1;
    if (resizing) this.nrVectors = nr + 1;
    if (resizing && this.msixNoResize) {
      // The host cannot grow an enabled index: shut it down and enable nr_vectors at once.
      this.disableIrqIndex(VfioPciIrqIndex.MSIX);
      this.enableVectors();
    } else {
      const fd = v.virq >= 0 ? v.kvmInterrupt! : v.interrupt;
      this.setIrqSignaling(VfioPciIrqIndex.MSIX, nr, fd, 'vfio_msix_vector_do_use');
    }
    // Disable PBA emulation when nothing more is pending.
    this.vfioPending.delete(nr);
    if (this.vfioPending.size === 0 && this.pbaEmulated) {
      this.pbaEmulated = false;
      if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_pba_disable', 'vfio_msix_vector_do_use', { dev: this.pdev.name });
    }
    return 0;
  }

  /** vfio_msix_vector_release (MSI-X release notifier, vector masked). */
  vectorRelease(nr: number): void {
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_vector_release', 'msix_fire_vector_notifier', { dev: this.pdev.name, nr });
    const v = this.vectors[nr]!;
    // Keep the KVM route and irqfd; just point VFIO at the userspace notifier so a masked
    // vector's interrupt comes through QEMU and lands in the PBA.
    if (v.virq >= 0) this.setIrqSignaling(VfioPciIrqIndex.MSIX, nr, v.interrupt, 'vfio_msix_vector_release');
  }

  /** vfio_msi_interrupt: QEMU's fd handler of `vector->interrupt`. */
  private msiInterrupt(nr: number): void {
    const v = this.vectors[nr]!;
    if (v.interrupt.testAndClear() === 0) return;
    this.userspaceInterrupts++;
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msi_interrupt', 'aio_dispatch_handler', { dev: this.pdev.name, nr });
    if (this.msix.isMasked(nr)) {
      this.vfioPending.add(nr);
      this.pbaEmulated = true;
      if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_msix_pba_enable', 'vfio_msi_interrupt', { dev: this.pdev.name });
    }
    this.msix.notify(nr, 'vfio_msi_interrupt');
  }

  /** vfio_add_kvm_msi_virq. */
  private addKvmMsiVirq(v: VfioMsiVector, msg: MsiMessage): void {
    if (this.noKvmMsix || !this.kvm.irqfdCapable) return;
    const fd = new EventFd(this.ctx.scheduler, { name: `vfio-msix${v.nr}-kvm_interrupt` });
    let virq = -1;
    try {
      virq = this.routes.addMsiRoute(msg);
      if (this.trace.on) this.trace.emit('qemu.vfio', 'kvm_irqchip_add_msi_route', 'vfio_add_kvm_msi_virq', { nr: v.nr, virq });
      // kvm_irqchip_add_msi_route commits lazily; the irqfd needs the route live.
      this.routes.commit();
    } catch (e) {
      // No GSI left, or KVM refused the table: stay on the userspace notifier.
      if (!VirqError.is(e)) throw e;
      this.report('vfio_add_kvm_msi_virq', e);
      if (virq >= 0) this.routes.releaseVirq(virq);
      fd.close();
      return;
    }
    try {
      if (this.trace.on) this.trace.emit('qemu.vfio', 'kvm_irqchip_add_irqfd_notifier_gsi', 'vfio_add_kvm_msi_virq', { nr: v.nr, virq });
      this.kvm.irqfd({ fd, gsi: virq });
    } catch {
      this.routes.releaseVirq(virq);
      fd.close();
      return;
    }
    v.kvmInterrupt = fd;
    v.virq = virq;
  }

  /** vfio_remove_kvm_msi_virq. */
  private removeKvmMsiVirq(v: VfioMsiVector): void {
    if (v.kvmInterrupt !== undefined) this.kvm.irqfd({ fd: v.kvmInterrupt, gsi: v.virq, deassign: true });
    this.routes.releaseVirq(v.virq);
    v.virq = -1;
    v.kvmInterrupt?.close();
    v.kvmInterrupt = undefined;
  }

  /** vfio_update_kvm_msi_virq: one entry changed, then the whole table committed. */
  private updateKvmMsiVirq(v: VfioMsiVector, msg: MsiMessage): void {
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_update_kvm_msi_virq', 'vfio_msix_vector_do_use', { nr: v.nr, virq: v.virq });
    if (this.trace.on) this.trace.emit('qemu.vfio', 'kvm_irqchip_update_msi_route', 'vfio_update_kvm_msi_virq', { virq: v.virq });
    this.routes.updateMsiRoute(v.virq, msg);
    if (this.trace.on) this.trace.emit('qemu.vfio', 'kvm_irqchip_commit_routes', 'vfio_update_kvm_msi_virq', {});
    try {
      this.routes.commit();
    } catch (e) {
      if (!VirqError.is(e)) throw e;
      this.report('kvm_irqchip_commit_routes', e);
    }
  }

  /** vfio_enable_vectors(msix): one SET_IRQS for vectors 0..nr_vectors-1. */
  private enableVectors(): void {
    const fds: (EventFd | null)[] = [];
    for (let i = 0; i < this.nrVectors; i++) {
      const v = this.vectors[i]!;
      let fd: EventFd | null = null;
      if (v.use) fd = v.virq < 0 || this.msix.isMasked(i) ? v.interrupt : v.kvmInterrupt!;
      fds.push(fd);
    }
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_enable_vectors', 'vfio_msix_vector_do_use', { count: this.nrVectors });
    this.ioctl({ flags: VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER, index: VfioPciIrqIndex.MSIX, start: 0, count: this.nrVectors, data: fds }, 'vfio_enable_vectors');
  }

  /** vfio_set_irq_signaling(index, subindex, ACTION_TRIGGER, fd). */
  private setIrqSignaling(index: number, nr: number, fd: EventFd, caller: string): void {
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_set_irq_signaling', caller, { index, nr, fd: fd.name });
    this.ioctl({ flags: VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER, index, start: nr, count: 1, data: [fd] }, 'vfio_set_irq_signaling');
  }

  /** vfio_disable_irqindex: TRIGGER + DATA_NONE, count 0. */
  private disableIrqIndex(index: number): void {
    if (this.vfio.type === 'none') return;
    this.ioctl({ flags: VfioIrqSetFlag.DATA_NONE | VfioIrqSetFlag.ACTION_TRIGGER, index, start: 0, count: 0 }, 'vfio_disable_irqindex');
  }

  private disableInterrupts(): void {
    if (this.interruptMode === 'intx') this.intxDisable();
    else if (this.interruptMode === 'msix') this.msixDisable();
  }

  // --- INTx -------------------------------------------------------------------------------

  /** vfio_intx_enable (+ vfio_intx_enable_kvm when KVM has resampling irqfds and a GSI). */
  intxEnable(): void {
    this.disableInterrupts();
    const interrupt = new EventFd(this.ctx.scheduler, { name: 'vfio-intx-interrupt' });
    const remove = interrupt.addWaiter({ actor: this.mainLoop, delayNs: this.ctx.costs.ns.threadWakeup, wake: () => this.intxInterrupt() });
    this.intx = { interrupt, unmask: undefined, kvmAccel: false, pending: false, remove };
    this.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER, index: VfioPciIrqIndex.INTX, start: 0, count: 1, data: [interrupt] });
    this.interruptMode = 'intx';
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_intx_enable', 'vfio_pci_realize', { dev: this.pdev.name });
    this.intxEnableKvm();
  }

  /** Whether INTx goes through KVM's resampling irqfd. */
  get intxKvmAccel(): boolean {
    return this.intx?.kvmAccel ?? false;
  }

  private intxEnableKvm(): void {
    const c = this.intx;
    if (c === undefined || this.intxGsi === undefined || !this.kvm.irqfdCapable) return;
    // Known state: handler off, masked, deasserted.
    c.remove?.();
    c.remove = undefined;
    this.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_NONE | VfioIrqSetFlag.ACTION_MASK, index: VfioPciIrqIndex.INTX, start: 0, count: 1 });
    c.pending = false;
    this.pdev.setIrq(false);
    const unmask = new EventFd(this.ctx.scheduler, { name: 'vfio-intx-unmask' });
    this.kvm.irqfd({ fd: c.interrupt, gsi: this.intxGsi, resampleFd: unmask });
    this.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_UNMASK, index: VfioPciIrqIndex.INTX, start: 0, count: 1, data: [unmask] });
    this.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_NONE | VfioIrqSetFlag.ACTION_UNMASK, index: VfioPciIrqIndex.INTX, start: 0, count: 1 });
    c.unmask = unmask;
    c.kvmAccel = true;
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_intx_enable_kvm', 'vfio_intx_enable', { dev: this.pdev.name, gsi: this.intxGsi });
  }

  /** vfio_intx_disable. */
  intxDisable(): void {
    const c = this.intx;
    if (c === undefined) return;
    if (c.kvmAccel) {
      this.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_NONE | VfioIrqSetFlag.ACTION_MASK, index: VfioPciIrqIndex.INTX, start: 0, count: 1 });
      this.kvm.irqfd({ fd: c.interrupt, gsi: this.intxGsi!, deassign: true });
      c.unmask?.close();
    }
    this.disableIrqIndex(VfioPciIrqIndex.INTX);
    c.remove?.();
    this.pdev.setIrq(false);
    c.interrupt.close();
    this.intx = undefined;
    this.interruptMode = 'none';
  }

  /** vfio_intx_interrupt (userspace INTx path). */
  private intxInterrupt(): void {
    const c = this.intx;
    if (c === undefined || c.interrupt.testAndClear() === 0) return;
    this.userspaceInterrupts++;
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_intx_interrupt', 'aio_dispatch_handler', { dev: this.pdev.name });
    c.pending = true;
    this.pdev.setIrq(true);
  }

  /** vfio_intx_eoi: the guest serviced INTx (userspace path): deassert and unmask. */
  intxEoi(): void {
    const c = this.intx;
    if (c === undefined || !c.pending) return;
    if (this.trace.on) this.trace.emit('qemu.vfio', 'vfio_intx_eoi', 'vfio_region_write', { dev: this.pdev.name });
    c.pending = false;
    this.pdev.setIrq(false);
    this.ioctl({ flags: VfioIrqSetFlag.DATA_NONE | VfioIrqSetFlag.ACTION_UNMASK, index: VfioPciIrqIndex.INTX, start: 0, count: 1 }, 'vfio_intx_eoi');
  }

  /** VFIO_DEVICE_SET_IRQS from a guest-driven path: failures are reported, never thrown (error_report). */
  private ioctl(set: VfioIrqSet, caller: string): boolean {
    try {
      this.vfio.setIrqs(set);
      return true;
    } catch (e) {
      if (!VirqError.is(e)) throw e;
      this.report(caller, e);
      return false;
    }
  }

  private report(caller: string, e: VirqError): void {
    this.errors++;
    if (this.trace.on) this.trace.emit('qemu.vfio', 'error_report', caller, { dev: this.pdev.name, code: e.code, errno: e.errno ?? '', message: e.message });
  }
}
