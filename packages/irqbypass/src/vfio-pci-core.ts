import { VirqError, type Actor, type EventFd, type SimContext, type TraceChannel } from '@virq/core';
import type { AssignedPciDevice } from './assigned-device.js';
import { IrqBypassErrorCode } from './errors.js';
import type { HostIrqDomain } from './host-irq.js';
import type { IrqBypassManager, IrqBypassProducer } from './irq-bypass-manager.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';
import {
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_NUM_IRQS,
  VfioIrqInfoFlag,
  VfioIrqSetFlag,
  VfioPciIrqIndex,
  type VfioIrqInfo,
  type VfioIrqSet,
} from './vfio-uapi.js';

export type VfioIrqType = 'none' | 'intx' | 'msi' | 'msix';

export interface VfioPciCoreOptions {
  /** Host CPU a vector's IRQ is affine to (the physical vector's destination). Default: CPU 0. */
  irqCpu?: (index: 'intx' | 'msi' | 'msix', vector: number) => number;
  /**
   * The host can allocate MSI-X vectors after enabling (pci_msix_can_alloc_dyn, Linux ≥ 6.5):
   * GET_IRQ_INFO then omits NORESIZE for MSI-X and QEMU adds vectors one at a time instead of
   * disabling and re-enabling the whole index. Default true.
   */
  dynamicMsix?: boolean;
}

/** One MSI/MSI-X vector's context (`struct vfio_pci_irq_ctx`), which is also its bypass producer. */
class VfioMsiVectorCtx implements IrqBypassProducer {
  token: EventFd | null = null;
  constructor(
    readonly irq: number,
    readonly trigger: EventFd,
    readonly name: string,
  ) {}
}

interface IntxCtx {
  trigger: EventFd;
  masked: boolean;
  irq: number;
  /** The virqfd on the unmask eventfd (KVM's resamplefd), if any. */
  unmask: { fd: EventFd; remove: () => void } | undefined;
}

function fail(errno: 'EINVAL' | 'ENOTTY', msg: string): never {
  throw new VirqError(errno === 'EINVAL' ? IrqBypassErrorCode.VfioSetIrqsInvalid : IrqBypassErrorCode.VfioSetIrqsUnsupported, msg, { errno: errno === 'ENOTTY' ? 'EOPNOTSUPP' : 'EINVAL', details: { errno } });
}

/**
 * The interrupt half of vfio-pci in the host kernel (drivers/vfio/pci/vfio_pci_intrs.c) for
 * one assigned function: `VFIO_DEVICE_GET_IRQ_INFO` and `VFIO_DEVICE_SET_IRQS`.
 *
 * MSI/MSI-X: `vfio_pci_set_msi_trigger` enables the index (host IRQs for the vectors) and
 * calls `vfio_msi_set_block` → `vfio_msi_set_vector_signal` per vector: unregister the old
 * producer and `free_irq`, then (fd ≥ 0) `request_irq(vfio_msihandler)` and
 * `irq_bypass_register_producer` with the trigger eventfd as token (failure only logged).
 * `vfio_msihandler` just signals the trigger. DATA_NONE/BOOL with count > 0 signal the
 * triggers (loopback); TRIGGER + DATA_NONE with count 0 disables the index.
 *
 * INTx (AUTOMASKED): `vfio_intx_handler` masks the line (DisINTx, or disable_irq without PCI
 * 2.3) and signals; UNMASK with an eventfd installs a virqfd that unmasks when signalled
 * (KVM's resamplefd) and re-signals the trigger if the device still asserts.
 * ERR/REQ: single triggers.
 */
export class VfioPciCore {
  private irqType: VfioIrqType = 'none';
  private readonly vectors = new Map<number, VfioMsiVectorCtx>();
  private readonly hostIrqs = new Map<number, number>();
  private intx: IntxCtx | undefined;
  private errTrigger: EventFd | null = null;
  private reqTrigger: EventFd | null = null;
  private readonly irqCpu: (index: 'intx' | 'msi' | 'msix', vector: number) => number;
  private readonly dynamicMsix: boolean;
  private readonly workqueue: Actor;
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  /** Producer registrations that failed (logged by the kernel, token cleared). */
  producerRegistrationFailures = 0;
  /** vfio_msihandler runs. */
  msiHandled = 0;

  constructor(
    private readonly ctx: SimContext,
    readonly device: AssignedPciDevice,
    private readonly irqs: HostIrqDomain,
    private readonly bypass: IrqBypassManager,
    options: VfioPciCoreOptions = {},
  ) {
    this.irqCpu = options.irqCpu ?? (() => 0);
    this.dynamicMsix = options.dynamicMsix ?? true;
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('vfio-pci');
    this.workqueue = ctx.scheduler.actor({ name: 'kworker/vfio-irqfd-cleanup', kind: 'kernel', cpu: 0 });
    device.connect({ msi: (k, n) => this.deviceMsi(k, n), intx: () => this.deviceIntx() });
  }

  get type(): VfioIrqType {
    return this.irqType;
  }

  /** The trigger eventfd of an MSI/MSI-X vector, if set. */
  triggerOf(vector: number): EventFd | undefined {
    return this.vectors.get(vector)?.trigger;
  }

  /** The host IRQ of an MSI/MSI-X vector, if allocated. */
  hostIrqOf(vector: number): number | undefined {
    return this.hostIrqs.get(vector);
  }

  /** The producer of a vector (registered with irqbypass unless its registration failed). */
  producerOf(vector: number): IrqBypassProducer | undefined {
    return this.vectors.get(vector);
  }

  get intxMasked(): boolean {
    return this.intx?.masked ?? false;
  }

  get intxHostIrq(): number | undefined {
    return this.intx?.irq;
  }

  /** vfio_pci_get_irq_count. */
  irqCount(index: number): number {
    switch (index) {
      case VfioPciIrqIndex.INTX:
        return this.device.hasIntx ? 1 : 0;
      case VfioPciIrqIndex.MSI:
        return this.device.msiVectors;
      case VfioPciIrqIndex.MSIX:
        return this.device.msixVectors;
      case VfioPciIrqIndex.ERR:
        return this.device.pcie ? 1 : 0;
      case VfioPciIrqIndex.REQ:
        return 1;
      default:
        return 0;
    }
  }

  /** VFIO_DEVICE_GET_IRQ_INFO. */
  getIrqInfo(index: number): VfioIrqInfo {
    if (!Number.isInteger(index) || index < 0 || index >= VFIO_PCI_NUM_IRQS) {
      fail('EINVAL', `VFIO_DEVICE_GET_IRQ_INFO: index ${index} is not a vfio-pci IRQ index (0–${VFIO_PCI_NUM_IRQS - 1})`);
    }
    let flags = VfioIrqInfoFlag.EVENTFD;
    if (index === VfioPciIrqIndex.INTX) flags |= VfioIrqInfoFlag.MASKABLE | VfioIrqInfoFlag.AUTOMASKED;
    else if (index !== VfioPciIrqIndex.MSIX || !this.dynamicMsix) flags |= VfioIrqInfoFlag.NORESIZE;
    return { index, flags, count: this.irqCount(index) };
  }

  /** VFIO_DEVICE_SET_IRQS (vfio_pci_core_ioctl → vfio_set_irqs_validate_and_prepare → vfio_pci_set_irqs_ioctl). */
  setIrqs(set: VfioIrqSet): void {
    const { flags, index, start, count } = set;
    if (this.trace.on) this.trace.emit('vfio.ioctl', 'vfio_pci_core_ioctl', '__x64_sys_ioctl', { cmd: 'VFIO_DEVICE_SET_IRQS', index, start, count, flags });
    if (!Number.isInteger(index) || index < 0 || index >= VFIO_PCI_NUM_IRQS) fail('EINVAL', `VFIO_DEVICE_SET_IRQS: index ${index} is not a vfio-pci IRQ index (0–${VFIO_PCI_NUM_IRQS - 1})`);
    if ((flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) !== 0) fail('EINVAL', `VFIO_DEVICE_SET_IRQS: unknown flag bits 0x${(flags & ~0x3f).toString(16)}`);
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0) fail('EINVAL', `VFIO_DEVICE_SET_IRQS: start and count must be unsigned integers (got ${start}, ${count})`);
    const max = this.irqCount(index);
    if (start >= max || start + count > max) fail('EINVAL', `VFIO_DEVICE_SET_IRQS: sub-indexes ${start}..${start + count - 1} are outside the ${max} interrupt(s) of index ${index}`);
    const dataType = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    if (dataType !== VfioIrqSetFlag.DATA_NONE && dataType !== VfioIrqSetFlag.DATA_BOOL && dataType !== VfioIrqSetFlag.DATA_EVENTFD) {
      fail('EINVAL', 'VFIO_DEVICE_SET_IRQS: set exactly one of DATA_NONE, DATA_BOOL, DATA_EVENTFD');
    }
    if (dataType !== VfioIrqSetFlag.DATA_NONE) {
      const data = set.data;
      if (data === undefined || data.length < count) fail('EINVAL', `VFIO_DEVICE_SET_IRQS: ${count} data element(s) needed, got ${data?.length ?? 0} (argsz too small)`);
      for (let i = 0; i < count; i++) {
        const d = data[i];
        if (dataType === VfioIrqSetFlag.DATA_BOOL ? typeof d !== 'boolean' : !(d === null || (typeof d === 'object' && d !== null))) {
          fail('EINVAL', `VFIO_DEVICE_SET_IRQS: data[${i}] must be ${dataType === VfioIrqSetFlag.DATA_BOOL ? 'a boolean' : 'an EventFd or null (-1)'}`);
        }
      }
    }
    const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    switch (index) {
      case VfioPciIrqIndex.INTX:
        if (action === VfioIrqSetFlag.ACTION_MASK) return this.setIntxMask(set, dataType);
        if (action === VfioIrqSetFlag.ACTION_UNMASK) return this.setIntxUnmask(set, dataType);
        if (action === VfioIrqSetFlag.ACTION_TRIGGER) return this.setIntxTrigger(set, dataType);
        break;
      case VfioPciIrqIndex.MSI:
      case VfioPciIrqIndex.MSIX:
        if (action === VfioIrqSetFlag.ACTION_TRIGGER) return this.setMsiTrigger(set, dataType, index === VfioPciIrqIndex.MSIX);
        break;
      case VfioPciIrqIndex.ERR:
        if (action === VfioIrqSetFlag.ACTION_TRIGGER) {
          this.errTrigger = this.setCtxTriggerSingle(this.errTrigger, set, dataType);
          return;
        }
        break;
      case VfioPciIrqIndex.REQ:
        if (action === VfioIrqSetFlag.ACTION_TRIGGER) {
          this.reqTrigger = this.setCtxTriggerSingle(this.reqTrigger, set, dataType);
          return;
        }
        break;
    }
    fail('ENOTTY', `VFIO_DEVICE_SET_IRQS: action 0x${action.toString(16)} is not supported on index ${index} (MSI/MSI-X/ERR/REQ take only ACTION_TRIGGER; set exactly one action)`);
  }

  /** The device reports an error (AER): vfio_pci_aer_err_detected signals the ERR trigger. */
  reportError(): void {
    if (this.errTrigger !== null) this.signal(this.errTrigger, 'vfio_pci_aer_err_detected');
  }

  /** The host wants the device back (unbind): vfio_pci_core_request signals the REQ trigger. */
  requestRelease(): void {
    if (this.reqTrigger !== null) this.signal(this.reqTrigger, 'vfio_pci_core_request');
  }

  // --- MSI / MSI-X ----------------------------------------------------------------------

  /** vfio_pci_set_msi_trigger. */
  private setMsiTrigger(set: VfioIrqSet, dataType: number, msix: boolean): void {
    const kind: VfioIrqType = msix ? 'msix' : 'msi';
    if (this.trace.on) this.trace.emit('vfio.set_msi_trigger', 'vfio_pci_set_msi_trigger', 'vfio_pci_core_ioctl', { index: msix ? 'MSIX' : 'MSI', start: set.start, count: set.count });
    if (this.irqType === kind && set.count === 0 && dataType === VfioIrqSetFlag.DATA_NONE) {
      this.msiDisable(msix);
      return;
    }
    if (!(this.irqType === kind || this.irqType === 'none')) {
      fail('EINVAL', `VFIO_DEVICE_SET_IRQS: ${kind.toUpperCase()} cannot be enabled while ${this.irqType.toUpperCase()} is; disable it first (TRIGGER, DATA_NONE, count 0)`);
    }
    if (dataType === VfioIrqSetFlag.DATA_EVENTFD) {
      const fds = set.data as readonly (EventFd | null)[];
      if (this.irqType === kind) {
        this.msiSetBlock(set.start, set.count, fds, msix);
        return;
      }
      this.msiEnable(set.start + set.count, msix);
      try {
        this.msiSetBlock(set.start, set.count, fds, msix);
      } catch (e) {
        this.msiDisable(msix);
        throw e;
      }
      return;
    }
    if (this.irqType !== kind) fail('EINVAL', `VFIO_DEVICE_SET_IRQS: ${kind.toUpperCase()} is not enabled; loopback needs it enabled`);
    for (let i = set.start; i < set.start + set.count; i++) {
      const c = this.vectors.get(i);
      if (c === undefined) continue;
      if (dataType === VfioIrqSetFlag.DATA_NONE || (set.data as readonly boolean[])[i - set.start] === true) this.signal(c.trigger, 'vfio_pci_set_msi_trigger');
    }
  }

  /** vfio_msi_enable: pci_alloc_irq_vectors for `nvec` vectors. */
  private msiEnable(nvec: number, msix: boolean): void {
    const kind = msix ? 'msix' : 'msi';
    for (let v = 0; v < nvec; v++) this.allocIrq(v, kind);
    this.irqType = kind;
  }

  /** vfio_msi_disable. */
  private msiDisable(msix: boolean): void {
    const n = Math.max(0, ...this.hostIrqs.keys()) + 1;
    for (let v = 0; v < n; v++) this.msiSetVectorSignal(v, null, msix);
    for (const irq of this.hostIrqs.values()) this.irqs.freeMsiIrq(irq);
    this.hostIrqs.clear();
    this.irqType = 'none';
  }

  /** vfio_msi_set_block: per vector; on failure unwinds the vectors already set. */
  private msiSetBlock(start: number, count: number, fds: readonly (EventFd | null)[], msix: boolean): void {
    for (let j = start; j < start + count; j++) {
      try {
        this.msiSetVectorSignal(j, fds[j - start] ?? null, msix);
      } catch (e) {
        for (let i = start; i < j; i++) this.msiSetVectorSignal(i, null, msix);
        throw e;
      }
    }
  }

  /** vfio_msi_set_vector_signal. */
  private msiSetVectorSignal(vector: number, fd: EventFd | null, msix: boolean): void {
    const caller = 'vfio_msi_set_vector_signal';
    if (this.trace.on) this.trace.emit('vfio.set_vector_signal', caller, 'vfio_msi_set_block', { vector, fd: fd === null ? -1 : fd.fd });
    const old = this.vectors.get(vector);
    if (old !== undefined) {
      this.bypass.unregisterProducer(old, caller);
      this.irqs.freeIrq(old.irq, caller);
      this.vectors.delete(vector);
    }
    if (fd === null) return;
    const irq = this.allocIrq(vector, msix ? 'msix' : 'msi');
    const name = `vfio-msi${msix ? 'x' : ''}[${vector}](${this.device.name})`;
    const c = new VfioMsiVectorCtx(irq, fd, name);
    this.irqs.requestIrq(irq, (_irq, on) => this.msihandler(c, on), name, caller);
    c.token = fd;
    try {
      this.bypass.registerProducer(c, caller);
    } catch (e) {
      if (!VirqError.is(e)) throw e;
      // "irq bypass producer (token %p) registration fails: %d" — logged; token cleared.
      this.producerRegistrationFailures++;
      c.token = null;
    }
    this.vectors.set(vector, c);
  }

  /** vfio_msi_alloc_irq: the vector's host IRQ (allocated dynamically for MSI-X when the host can). */
  private allocIrq(vector: number, kind: 'msi' | 'msix'): number {
    let irq = this.hostIrqs.get(vector);
    if (irq === undefined) {
      if (this.irqType === kind && (kind === 'msi' || !this.dynamicMsix)) {
        throw new VirqError(IrqBypassErrorCode.VfioNoVector, `vector ${vector} was not allocated when ${kind.toUpperCase()} was enabled and this host cannot add vectors dynamically; disable the index and enable it with more vectors`, { errno: 'EINVAL' });
      }
      irq = this.irqs.allocMsiIrq(this.irqCpu(kind, vector), this.device.requesterId);
      this.hostIrqs.set(vector, irq);
    }
    return irq;
  }

  /** vfio_msihandler: eventfd_signal(trigger). */
  private msihandler(c: VfioMsiVectorCtx, on: Actor): void {
    this.msiHandled++;
    if (this.trace.on) this.trace.emit('vfio.msihandler', 'vfio_msihandler', '__handle_irq_event_percpu', { irq: c.irq }, undefined, on);
    this.signal(c.trigger, 'vfio_msihandler', on);
  }

  private deviceMsi(kind: 'msi' | 'msix', vector: number): void {
    const irq = this.irqType === kind ? this.hostIrqs.get(vector) : undefined;
    if (irq === undefined) {
      this.device.dropped++;
      return;
    }
    this.irqs.deviceMsi(irq);
  }

  // --- INTx -------------------------------------------------------------------------------

  /** vfio_pci_set_intx_trigger. */
  private setIntxTrigger(set: VfioIrqSet, dataType: number): void {
    if (this.irqType === 'intx' && set.count === 0 && dataType === VfioIrqSetFlag.DATA_NONE) {
      this.intxDisable();
      return;
    }
    if (!(this.irqType === 'intx' || this.irqType === 'none') || set.start !== 0 || set.count !== 1) {
      fail('EINVAL', `VFIO_DEVICE_SET_IRQS: INTx trigger needs start 0, count 1 and no MSI/MSI-X enabled (now ${this.irqType})`);
    }
    if (dataType === VfioIrqSetFlag.DATA_EVENTFD) {
      const fd = (set.data as readonly (EventFd | null)[])[0] ?? null;
      if (this.irqType === 'intx') {
        if (fd === null) this.intxDisable();
        else this.intx!.trigger = fd;
        return;
      }
      if (fd === null) return;
      this.intxEnable(fd);
      return;
    }
    if (this.irqType !== 'intx') fail('EINVAL', 'VFIO_DEVICE_SET_IRQS: INTx is not enabled; loopback needs it enabled');
    if (dataType === VfioIrqSetFlag.DATA_NONE || (set.data as readonly boolean[])[0] === true) this.sendIntxEventfd('vfio_pci_set_intx_trigger');
  }

  private intxEnable(trigger: EventFd): void {
    const irq = this.irqs.allocMsiIrq(this.irqCpu('intx', 0), this.device.requesterId);
    this.intx = { trigger, masked: false, irq, unmask: undefined };
    this.irqType = 'intx';
    // Devices with PCI 2.3 masking start masked if the line is already asserted.
    this.irqs.requestIrq(irq, (_i, on) => this.intxHandler(on), `vfio-intx(${this.device.name})`, 'vfio_intx_enable');
    if (this.device.intxOut) this.irqs.deviceMsi(irq);
  }

  private intxDisable(): void {
    const c = this.intx;
    if (c === undefined) return;
    c.unmask?.remove();
    this.irqs.freeIrq(c.irq, 'vfio_intx_disable');
    this.irqs.freeMsiIrq(c.irq);
    this.device.setDisIntx(false);
    this.intx = undefined;
    this.irqType = 'none';
  }

  /** vfio_intx_handler (AUTOMASKED). */
  private intxHandler(on: Actor): void {
    const c = this.intx;
    if (c === undefined) return;
    let handled = false;
    if (!this.device.pci23) {
      this.device.setDisIntx(true); // disable_irq_nosync
      c.masked = true;
      handled = true;
    } else if (!c.masked && this.device.checkAndMaskIntx()) {
      c.masked = true;
      handled = true;
    }
    if (this.trace.on) this.trace.emit('vfio.intx_handler', 'vfio_intx_handler', '__handle_irq_event_percpu', { handled, masked: c.masked }, undefined, on);
    if (handled) this.sendIntxEventfd('vfio_intx_handler', on);
  }

  private sendIntxEventfd(caller: string, on?: Actor): void {
    if (this.intx !== undefined) this.signal(this.intx.trigger, caller, on);
  }

  /** vfio_pci_set_intx_mask. */
  private setIntxMask(set: VfioIrqSet, dataType: number): void {
    if (this.irqType !== 'intx' || set.start !== 0 || set.count !== 1) fail('EINVAL', 'VFIO_DEVICE_SET_IRQS: INTx mask needs INTx enabled, start 0, count 1');
    if (dataType === VfioIrqSetFlag.DATA_EVENTFD) fail('ENOTTY', 'VFIO_DEVICE_SET_IRQS: INTx mask with an eventfd is not implemented by vfio-pci');
    if (dataType === VfioIrqSetFlag.DATA_NONE || (set.data as readonly boolean[])[0] === true) this.intxMask();
  }

  /** vfio_pci_intx_mask. */
  private intxMask(): void {
    const c = this.intx!;
    if (c.masked) return;
    this.device.setDisIntx(true);
    c.masked = true;
  }

  /** vfio_pci_set_intx_unmask. */
  private setIntxUnmask(set: VfioIrqSet, dataType: number): void {
    if (this.irqType !== 'intx' || set.start !== 0 || set.count !== 1) fail('EINVAL', 'VFIO_DEVICE_SET_IRQS: INTx unmask needs INTx enabled, start 0, count 1');
    const c = this.intx!;
    if (dataType === VfioIrqSetFlag.DATA_EVENTFD) {
      const fd = (set.data as readonly (EventFd | null)[])[0] ?? null;
      c.unmask?.remove();
      c.unmask = undefined;
      if (fd === null) return; // vfio_virqfd_disable
      // vfio_virqfd_enable: virqfd_wakeup runs in the signaller's context, consumes the count,
      // runs the handler; a non-zero return schedules the thread function.
      const remove = fd.addWaiter({
        wake: (f) => {
          if (f.tryRead() === undefined) return;
          if (this.intxUnmaskHandler('virqfd_wakeup')) {
            this.ctx.scheduler.after(0, this.workqueue, () => this.sendIntxEventfd('virqfd_inject'));
          }
        },
      });
      c.unmask = { fd, remove };
      return;
    }
    if (dataType === VfioIrqSetFlag.DATA_NONE || (set.data as readonly boolean[])[0] === true) {
      if (this.intxUnmaskHandler('vfio_pci_intx_unmask')) this.sendIntxEventfd('vfio_pci_intx_unmask');
    }
  }

  /**
   * vfio_pci_intx_unmask_handler: unmask unless the device still asserts, in which case stay
   * masked and return true (the caller re-signals the trigger instead of taking a new IRQ).
   */
  private intxUnmaskHandler(caller: string): boolean {
    const c = this.intx;
    if (c === undefined || !c.masked) return false;
    let pending = false;
    if (this.device.pci23) pending = !this.device.checkAndUnmaskIntx();
    else this.device.setDisIntx(false);
    c.masked = pending;
    if (this.trace.on) this.trace.emit('vfio.intx_unmask', 'vfio_pci_intx_unmask_handler', caller, { pending });
    return pending;
  }

  private deviceIntx(): void {
    if (this.intx !== undefined) this.irqs.deviceMsi(this.intx.irq);
  }

  // --- ERR / REQ --------------------------------------------------------------------------

  /** vfio_pci_set_ctx_trigger_single. */
  private setCtxTriggerSingle(cur: EventFd | null, set: VfioIrqSet, dataType: number): EventFd | null {
    if (set.start !== 0 || set.count > 1) fail('EINVAL', 'VFIO_DEVICE_SET_IRQS: ERR/REQ take start 0 and count ≤ 1');
    if (dataType === VfioIrqSetFlag.DATA_NONE) {
      if (cur !== null && set.count > 0) {
        this.signal(cur, 'vfio_pci_set_ctx_trigger_single');
        return cur;
      }
      return set.count === 0 ? null : cur;
    }
    if (set.count === 0) fail('EINVAL', 'VFIO_DEVICE_SET_IRQS: ERR/REQ with data need count 1');
    if (dataType === VfioIrqSetFlag.DATA_BOOL) {
      if ((set.data as readonly boolean[])[0] === true && cur !== null) this.signal(cur, 'vfio_pci_set_ctx_trigger_single');
      return cur;
    }
    return (set.data as readonly (EventFd | null)[])[0] ?? null;
  }

  /** eventfd_signal (saturating, never fails in the kernel). */
  private signal(fd: EventFd, caller: string, on?: Actor): void {
    if (this.trace.on) this.trace.emit('vfio.eventfd_signal', 'eventfd_signal', caller, { fd: fd.name }, undefined, on);
    if (!fd.isClosed) fd.tryWrite(1);
  }
}
