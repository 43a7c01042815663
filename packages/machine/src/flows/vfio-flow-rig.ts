import { KvmRoutingTable, type SimContext } from '@virq/core';
import { IrqBypassHost, QemuVfioPci, x86MsiFixed, type VfioPciCore } from '@virq/irqbypass';
import { APIC, KvmVm, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { Msix, MsixTable, PciCommand, PciDevice, PciReg } from '@virq/pci';

/** Guest MMIO address of the assigned function's MSI-X table (BAR 0 of QEMU's vfio-pci device). */
export const MSIX_TABLE_GPA = 0xfe000000;

/** A guest whose vCPUs compute, run queued register writes, and handle interrupts (body, EOI). */
export class VfioGuest implements GuestModel {
  readonly taken: { vcpu: number; vector: number; time: number }[] = [];
  private readonly queues = new Map<number, GuestOp[]>();
  constructor(private readonly ctx: SimContext) {}
  queue(vcpu: number, ...ops: GuestOp[]): void {
    const q = this.queues.get(vcpu) ?? [];
    q.push(...ops);
    this.queues.set(vcpu, q);
  }
  next(vcpu: number): GuestOp {
    return this.queues.get(vcpu)?.shift() ?? { op: 'compute', ns: 20_000 };
  }
  interrupt(vcpu: number, vector: number): readonly GuestOp[] {
    this.taken.push({ vcpu, vector, time: this.ctx.scheduler.now });
    // The assigned NIC's guest driver handler: an Intel 82599 VF's (ixgbevf), the usual VFIO NIC.
    return [{ op: 'compute', ns: 300, fn: 'ixgbevf_msix_clean_rings' }, { op: 'eoi' }];
  }
}

/**
 * A KVM VM (in-kernel irqchip, APICv) with one assigned PCI function: the host side is
 * @virq/irqbypass's VFIO core, irqbypass manager and VT-d posted interrupts (or AMD AVIC),
 * the QEMU side its vfio-pci MSI-X emulation over @virq/pci's MSI-X table, whose MMIO the
 * guest reaches through trapped writes (EPT_MISCONFIG exits to QEMU). vCPU n's thread runs
 * on host CPU n + 6 (vCPU 5 on CPU 11, as in seed 002).
 */
export class VfioFlowRig {
  readonly vm: KvmVm;
  readonly guest: VfioGuest;
  readonly host: IrqBypassHost;
  readonly vfio: VfioPciCore;
  readonly pdev: PciDevice;
  readonly msix: MsixTable;
  readonly routes: KvmRoutingTable;
  readonly qemu: QemuVfioPci;

  constructor(
    readonly ctx: SimContext,
    o: { vcpus?: number; vectors?: number; devicePosting?: boolean } = {},
  ) {
    this.vm = new KvmVm(ctx, { nvcpus: o.vcpus ?? 8, hostCpuOf: (n) => n + 6 });
    this.vm.setApicv(true);
    this.host = new IrqBypassHost(ctx, { kvm: this.vm, hostCpus: 16, devicePosting: o.devicePosting ?? true, vendor: 'vmx' });
    const n = o.vectors ?? 3;
    this.vfio = this.host.assignDevice({ name: '0000:3b:00.0', requesterId: 0x3b00, msixVectors: n });
    this.pdev = new PciDevice(ctx, { name: 'vfio-pci.0', vendorId: 0x8086, deviceId: 0x1572, classCode: 0x020000, msiSink: this.vm, configSize: 4096 });
    this.msix = MsixTable.exclusiveBar(this.pdev, n, 0);
    this.routes = new KvmRoutingTable(this.vm, 24);
    this.qemu = new QemuVfioPci(ctx, { pdev: this.pdev, msix: this.msix, vfio: this.vfio, kvm: this.vm, routes: this.routes });
    this.vm.onUserspaceExit = (_id, exit) => {
      if (exit.exit !== 'MMIO' || exit.addr < MSIX_TABLE_GPA || exit.addr >= MSIX_TABLE_GPA + 4096) return 0;
      const off = exit.addr - MSIX_TABLE_GPA;
      if (exit.write) this.msix.tableWrite(off, 4, exit.value);
      return exit.write ? 0 : this.msix.tableRead(off, 4);
    };
    this.guest = new VfioGuest(ctx);
    for (const v of this.vm.vcpus()) {
      v.lapic.regWrite(APIC.SPIV, 0x1ff);
      v.setGuest(this.guest);
      v.run();
    }
    this.advance(1000);
  }

  advance(ns: number): void {
    this.ctx.scheduler.runUntil(this.ctx.scheduler.now + ns);
  }

  /** QEMU enables MSI-X in config space; the guest driver programs each vector from `vcpu`. */
  enableMsix(vcpu: number, targets: readonly { apicId: number; vector: number }[]): void {
    const main = this.ctx.scheduler.allActors().find((a) => a.name === 'qemu-system-x86')!;
    this.ctx.scheduler.after(0, main, () => {
      this.pdev.configWrite(PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
      this.pdev.configWrite(this.msix.capOffset + Msix.CONTROL_OFFSET, 1, Msix.ENABLE_MASK);
    });
    targets.forEach((t, i) => this.programVector(vcpu, i, t.apicId, t.vector));
    this.advance(200_000);
  }

  /** Linux's __pci_write_msi_msg on vCPU `vcpu`: mask, address, data, unmask — trapped writes. */
  programVector(vcpu: number, nr: number, apicId: number, vector: number): void {
    const msg = x86MsiFixed(apicId, vector);
    const e = MSIX_TABLE_GPA + nr * Msix.ENTRY_SIZE;
    this.guest.queue(
      vcpu,
      { op: 'mmio-write', addr: e + Msix.ENTRY_VECTOR_CTRL, len: 4, value: 1 },
      { op: 'mmio-write', addr: e + Msix.ENTRY_LOWER_ADDR, len: 4, value: msg.addressLo },
      { op: 'mmio-write', addr: e + Msix.ENTRY_UPPER_ADDR, len: 4, value: msg.addressHi },
      { op: 'mmio-write', addr: e + Msix.ENTRY_DATA, len: 4, value: msg.data },
      { op: 'mmio-write', addr: e + Msix.ENTRY_VECTOR_CTRL, len: 4, value: 0 },
    );
  }

  /** The guest sets or clears vector `nr`'s Mask bit from `vcpu`. */
  maskVector(vcpu: number, nr: number, masked: boolean): void {
    this.guest.queue(vcpu, { op: 'mmio-write', addr: MSIX_TABLE_GPA + nr * Msix.ENTRY_SIZE + Msix.ENTRY_VECTOR_CTRL, len: 4, value: masked ? 1 : 0 });
  }

  /** The device raises MSI-X vector `nr` (a DMA write to the host's interrupt address). */
  fire(nr: number): void {
    const d = this.vfio.device;
    this.ctx.scheduler.after(0, d.actor, () => d.fireMsix(nr));
  }

  totalExits(vcpu: number): number {
    return [...this.vm.vcpu(vcpu)!.exits.values()].reduce((a, b) => a + b, 0);
  }
}
