import { KvmRoutingTable, TraceRecorder, createSimContext, type SimContext, type TraceEvent } from '@virq/core';
import { IrqBypassHost, QemuVfioPci, VfioPciCore, x86MsiFixed, type KvmPiPort } from '@virq/irqbypass';
import { APIC, KvmVm, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { Msix, MsixTable, PciCommand, PciDevice, PciReg } from '@virq/pci';

/** Guest MMIO address of the assigned device's MSI-X table (BAR 0 of the emulated function). */
export const MSIX_BAR = 0xfe000000;

/** A guest that computes, runs queued operations, and handles interrupts (body then EOI). */
export class ScriptedGuest implements GuestModel {
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
    return [{ op: 'compute', ns: 300, fn: 'vfio_test_handler' }, { op: 'eoi' }];
  }
}

/** The real @virq/kvm-irqchip VM behind the package's KvmPiPort, with one assigned device. */
export class KvmRig {
  readonly ctx: SimContext;
  readonly vm: KvmVm;
  readonly guest: ScriptedGuest;
  readonly host: IrqBypassHost;
  readonly vfio: VfioPciCore;
  readonly pdev: PciDevice;
  readonly msix: MsixTable;
  readonly routes: KvmRoutingTable;
  readonly qemu: QemuVfioPci;
  readonly recorder: TraceRecorder<TraceEvent>;

  constructor(o: { vcpus?: number; apicv?: boolean; devicePosting?: boolean; vectors?: number; vendor?: 'vmx' | 'avic' } = {}) {
    this.ctx = createSimContext({ seed: 1 });
    this.recorder = new TraceRecorder(this.ctx.trace.events$);
    // vCPU n's thread on host CPU n + 6 (vCPU 5 on CPU 11, as in seed 002).
    this.vm = new KvmVm(this.ctx, { nvcpus: o.vcpus ?? 8, hostCpuOf: (n) => n + 6 });
    this.vm.setApicv(o.apicv ?? true);
    const port: KvmPiPort = this.vm;
    this.host = new IrqBypassHost(this.ctx, { kvm: port, hostCpus: 16, devicePosting: o.devicePosting ?? true, vendor: o.vendor ?? 'vmx' });
    const n = o.vectors ?? 3;
    this.vfio = this.host.assignDevice({ name: '0000:3b:00.0', requesterId: 0x3b00, msixVectors: n });
    this.pdev = new PciDevice(this.ctx, { name: 'vfio-pci.0', vendorId: 0x8086, deviceId: 0x1572, classCode: 0x020000, msiSink: this.vm, configSize: 4096 });
    this.msix = MsixTable.exclusiveBar(this.pdev, n, 0);
    this.routes = new KvmRoutingTable(this.vm, 24);
    this.qemu = new QemuVfioPci(this.ctx, { pdev: this.pdev, msix: this.msix, vfio: this.vfio, kvm: this.vm, routes: this.routes });
    // QEMU's MMIO dispatch for the MSI-X BAR (the rest of guest MMIO is not modelled).
    this.vm.onUserspaceExit = (_id, exit) => {
      if (exit.exit !== 'MMIO' || exit.addr < MSIX_BAR || exit.addr >= MSIX_BAR + 4096) return 0;
      const off = exit.addr - MSIX_BAR;
      if (exit.write) this.msix.tableWrite(off, 4, exit.value);
      return exit.write ? 0 : this.msix.tableRead(off, 4);
    };
    this.guest = new ScriptedGuest(this.ctx);
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

  /** QEMU enables MSI-X (config writes on the main loop) and programs each vector via `vcpu`'s MMIO. */
  enableMsix(vcpu: number, targets: readonly { apicId: number; vector: number }[]): void {
    const a = this.ctx.scheduler.allActors().find((x) => x.name === 'qemu-system-x86')!;
    this.ctx.scheduler.after(0, a, () => {
      this.pdev.configWrite(PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
      this.pdev.configWrite(this.msix.capOffset + Msix.CONTROL_OFFSET, 1, Msix.ENABLE_MASK);
    });
    targets.forEach((t, i) => this.programVector(vcpu, i, t.apicId, t.vector));
    this.advance(200_000);
  }

  /** Linux's MSI-X write on vCPU `vcpu`: mask, address, data, unmask — four trapped MMIO writes. */
  programVector(vcpu: number, nr: number, apicId: number, vector: number): void {
    const msg = x86MsiFixed(apicId, vector);
    const e = MSIX_BAR + nr * Msix.ENTRY_SIZE;
    this.guest.queue(
      vcpu,
      { op: 'mmio-write', addr: e + Msix.ENTRY_VECTOR_CTRL, len: 4, value: 1 },
      { op: 'mmio-write', addr: e + Msix.ENTRY_LOWER_ADDR, len: 4, value: msg.addressLo },
      { op: 'mmio-write', addr: e + Msix.ENTRY_UPPER_ADDR, len: 4, value: msg.addressHi },
      { op: 'mmio-write', addr: e + Msix.ENTRY_DATA, len: 4, value: msg.data },
      { op: 'mmio-write', addr: e + Msix.ENTRY_VECTOR_CTRL, len: 4, value: 0 },
    );
  }

  fire(nr: number): void {
    const d = this.vfio.device;
    this.ctx.scheduler.after(0, d.actor, () => d.fireMsix(nr));
  }

  exits(vcpu: number): Record<string, number> {
    return Object.fromEntries(this.vm.vcpu(vcpu)!.exits);
  }

  mark(): number {
    return this.recorder.events.length;
  }
}
