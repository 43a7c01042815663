import { VirqError, type Actor, type SimContext } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';

export interface AssignedDeviceInit {
  /** `0000:03:00.0`-style name for traces. */
  name: string;
  /** PCI requester id (bus << 8 | devfn): the IRTE's SID. */
  requesterId: number;
  /** MSI-X table size (0: no MSI-X). */
  msixVectors: number;
  /** MSI vectors (0: no MSI capability). */
  msiVectors?: number;
  /** Has an INTx pin. Default true. */
  intx?: boolean;
  /** PCI 2.3 DisINTx masking. Default true. */
  pci23?: boolean;
  /** PCIe (has AER / the ERR index). Default true. */
  pcie?: boolean;
}

/** Where the physical function's interrupts go: the host IRQ layer behind the IOMMU. */
export interface AssignedDeviceSink {
  /** The device wrote its MSI/MSI-X message for `vector` (the host set it up). */
  msi(kind: 'msi' | 'msix', vector: number): void;
  /** The INTx line as the host sees it (after DisINTx) went high. */
  intx(): void;
}

/**
 * The physical PCI function behind VFIO: its interrupt sources only. MSI-X vectors fire as
 * messages that the host's IOMMU remaps or posts; INTx is a level with the PCI 2.3
 * Interrupt Status bit and the DisINTx command bit the host uses to mask it.
 */
export class AssignedPciDevice {
  readonly name: string;
  readonly requesterId: number;
  readonly msixVectors: number;
  readonly msiVectors: number;
  readonly hasIntx: boolean;
  readonly pci23: boolean;
  readonly pcie: boolean;
  readonly actor: Actor;
  private sink: AssignedDeviceSink | undefined;
  /** INTx: device asserts (Interrupt Status), host masked (DisINTx). */
  private intxStatus = false;
  private disIntx = false;
  /** Messages raised while nothing was set up to take them (lost, as on hardware with MSI-X off). */
  dropped = 0;

  constructor(ctx: SimContext, init: AssignedDeviceInit) {
    if (!Number.isInteger(init.msixVectors) || init.msixVectors < 0 || init.msixVectors > 2048) {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, `an MSI-X table has 0–2048 entries, got ${init.msixVectors}`, { errno: 'EINVAL' });
    }
    const msi = init.msiVectors ?? 0;
    if (![0, 1, 2, 4, 8, 16, 32].includes(msi)) {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, `MSI supports 1, 2, 4, 8, 16 or 32 vectors, got ${msi}`, { errno: 'EINVAL' });
    }
    this.name = init.name;
    this.requesterId = init.requesterId;
    this.msixVectors = init.msixVectors;
    this.msiVectors = msi;
    this.hasIntx = init.intx ?? true;
    this.pci23 = init.pci23 ?? true;
    this.pcie = init.pcie ?? true;
    this.actor = ctx.scheduler.actor({ name: `dev/${init.name}`, kind: 'device', cpu: 0 });
  }

  connect(sink: AssignedDeviceSink | undefined): void {
    this.sink = sink;
  }

  /** The device signals MSI-X vector `n` (a completion, a packet …). */
  fireMsix(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n >= this.msixVectors) {
      throw new VirqError(IrqBypassErrorCode.VfioNoVector, `${this.name} has MSI-X vectors 0–${this.msixVectors - 1}, not ${n}`, { errno: 'EINVAL' });
    }
    if (this.sink === undefined) this.dropped++;
    else this.sink.msi('msix', n);
  }

  fireMsi(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n >= this.msiVectors) {
      throw new VirqError(IrqBypassErrorCode.VfioNoVector, `${this.name} has MSI vectors 0–${this.msiVectors - 1}, not ${n}`, { errno: 'EINVAL' });
    }
    if (this.sink === undefined) this.dropped++;
    else this.sink.msi('msi', n);
  }

  /** The device raises or lowers its INTx level. */
  setIntx(level: boolean): void {
    const before = this.intxOut;
    this.intxStatus = level;
    if (!before && this.intxOut) this.sink?.intx();
  }

  /** PCI_STATUS Interrupt Status. */
  get intxPending(): boolean {
    return this.intxStatus;
  }

  /** The level the host interrupt controller sees. */
  get intxOut(): boolean {
    return this.hasIntx && this.intxStatus && !this.disIntx;
  }

  get intxMasked(): boolean {
    return this.disIntx;
  }

  /** pci_check_and_mask_intx: masks if the device asserts; returns whether it did. */
  checkAndMaskIntx(): boolean {
    if (!this.intxStatus) return false;
    this.disIntx = true;
    return true;
  }

  /**
   * pci_check_and_unmask_intx: unmasks unless the device still asserts. Returns false
   * (leaving it masked) when an interrupt is pending.
   */
  checkAndUnmaskIntx(): boolean {
    if (this.intxStatus) return false;
    this.disIntx = false;
    return true;
  }

  /** Sets DisINTx directly (vfio's mask/unmask without the check). */
  setDisIntx(masked: boolean): void {
    const before = this.intxOut;
    this.disIntx = masked;
    if (!before && this.intxOut) this.sink?.intx();
  }
}
