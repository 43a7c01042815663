import { KvmRoutingTable, TraceRecorder, createSimContext, type SimContext, type TraceEvent } from '@virq/core';
import { IrqBypassHost, QemuVfioPci, VfioPciCore, x86MsiFixed } from '@virq/irqbypass';
import { MsixTable, PciCommand, PciDevice, PciReg, Msix } from '@virq/pci';
import { MiniKvm } from './mini-kvm.js';

export interface RigOptions {
  vcpus?: number;
  apicv?: boolean;
  vendor?: 'vmx' | 'avic';
  devicePosting?: boolean;
  msixVectors?: number;
  hostCpus?: number;
  seed?: number;
  /** Host CPU of each physical vector's IRQ. */
  irqCpu?: (vector: number) => number;
  intxGsi?: number;
  /** vfio-pci can add MSI-X vectors to an enabled index (no NORESIZE). Default true. */
  dynamicMsix?: boolean;
  /** Highest GSI QEMU may allocate for MSI routes. */
  maxGsi?: number;
}

/** A host with one VM (MiniKvm), one assigned device, QEMU's VFIO side and a guest driver. */
export class Rig {
  readonly ctx: SimContext;
  readonly kvm: MiniKvm;
  readonly host: IrqBypassHost;
  readonly vfio: VfioPciCore;
  readonly pdev: PciDevice;
  readonly msix: MsixTable;
  readonly routes: KvmRoutingTable;
  readonly qemu: QemuVfioPci;
  readonly recorder: TraceRecorder<TraceEvent>;

  constructor(o: RigOptions = {}) {
    this.ctx = createSimContext({ seed: o.seed ?? 1 });
    this.recorder = new TraceRecorder(this.ctx.trace.events$);
    this.kvm = new MiniKvm(this.ctx, o.vcpus ?? 8, o.apicv ?? true);
    this.host = new IrqBypassHost(this.ctx, { kvm: this.kvm, hostCpus: o.hostCpus ?? 16, vendor: o.vendor ?? 'vmx', devicePosting: o.devicePosting ?? true });
    const n = o.msixVectors ?? 3;
    const irqCpu = o.irqCpu ?? (() => 0);
    this.vfio = this.host.assignDevice({ name: '0000:3b:00.0', requesterId: 0x3b00, msixVectors: n }, { irqCpu: (_k, v) => irqCpu(v), dynamicMsix: o.dynamicMsix ?? true });
    this.pdev = new PciDevice(this.ctx, { name: 'vfio-pci.0', vendorId: 0x8086, deviceId: 0x1572, classCode: 0x020000, msiSink: this.kvm, configSize: 4096 });
    this.msix = MsixTable.exclusiveBar(this.pdev, n, 0);
    this.routes = new KvmRoutingTable(this.kvm, 24, o.maxGsi ?? 4095);
    this.qemu = new QemuVfioPci(this.ctx, { pdev: this.pdev, msix: this.msix, vfio: this.vfio, kvm: this.kvm, routes: this.routes, ...(o.intxGsi === undefined ? {} : { intxGsi: o.intxGsi }) });
  }

  /** Guest driver: bus master on, MSI-X on, each vector programmed to (apic id, vector) and unmasked. */
  guestEnableMsix(targets: readonly { apicId: number; vector: number }[]): void {
    this.pdev.configWrite(PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
    this.pdev.configWrite(this.msix.capOffset + Msix.CONTROL_OFFSET, 1, Msix.ENABLE_MASK);
    targets.forEach((t, i) => this.guestProgramVector(i, t.apicId, t.vector));
  }

  /** pci_msi_domain_write_msg for an unmasked MSI-X entry: mask, write address/data, unmask. */
  guestProgramVector(nr: number, apicId: number, vector: number): void {
    const msg = x86MsiFixed(apicId, vector);
    const o = nr * Msix.ENTRY_SIZE;
    this.guestMask(nr);
    this.msix.tableWrite(o + Msix.ENTRY_LOWER_ADDR, 4, msg.addressLo);
    this.msix.tableWrite(o + Msix.ENTRY_UPPER_ADDR, 4, msg.addressHi);
    this.msix.tableWrite(o + Msix.ENTRY_DATA, 4, msg.data);
    this.guestUnmask(nr);
  }

  guestMask(nr: number): void {
    this.msix.tableWrite(nr * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL, 4, Msix.ENTRY_CTRL_MASKBIT);
  }

  guestUnmask(nr: number): void {
    this.msix.tableWrite(nr * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL, 4, 0);
  }

  /** The guest on vCPU `id` touches an emulated register: MMIO exit, QEMU runs `fn`, re-entry. */
  onVcpu(id: number, fn: () => void): void {
    const v = this.kvm.vcpu(id)!;
    this.ctx.scheduler.after(0, v.actor, () => v.mmioExit(fn));
    this.ctx.scheduler.runUntilIdle();
  }

  /** Runs `fn` as an event on the actor (e.g. the vCPU thread that trapped the MMIO write). */
  on(actorName: string, fn: () => void): void {
    const a = this.ctx.scheduler.allActors().find((x) => x.name === actorName);
    if (a === undefined) throw new Error(`no actor ${actorName}`);
    this.ctx.scheduler.after(0, a, fn);
    this.ctx.scheduler.runUntilIdle();
  }

  run(): void {
    this.ctx.scheduler.runUntilIdle();
  }

  /** Function names of events recorded from index `from`. */
  fns(from = 0, filter?: ReadonlySet<string>): string[] {
    return this.recorder.events.slice(from).map((e) => e.fn).filter((f) => filter === undefined || filter.has(f));
  }

  mark(): number {
    return this.recorder.events.length;
  }
}
