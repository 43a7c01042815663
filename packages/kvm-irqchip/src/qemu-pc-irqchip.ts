import { VirqError, type IrqPin, type IrqPinProvider, type MsiMessage, type MsiSink, type SimContext, type TraceChannel } from '@virq/core';
import { KvmErrorCode } from './errors.js';
import { CPU_INTERRUPT_HARD, QEMU_APIC_DEFAULT_ADDRESS, QEMU_APIC_SPACE_SIZE, QemuApicBus } from './qemu-apic.js';
import { QemuIoapic } from './qemu-ioapic.js';
import { QemuKvmCpu } from './qemu-kvm-vcpu-loop.js';
import { PcGsi, QemuPic } from './userspace-irqchip.js';
import type { KvmVm, UserspaceExit } from './vm.js';

/**
 * A PC's interrupt controllers when QEMU runs KVM with `kernel-irqchip=off`: the VM has no
 * in-kernel irqchip (KVM_CREATE_IRQCHIP was not called) and QEMU emulates them all — the
 * 8259 pair (`QemuPic`), the IOAPIC (`QemuIoapic`), one local APIC per vCPU (`QemuApic`),
 * wired by `gsi_handler` (`PcGsi.userspace`) — and drives each vCPU through KVM_INTERRUPT and
 * the interrupt window (`QemuKvmCpu`). Devices send MSIs by writing into the "apic-msi"
 * region (`deliverMsi`); guest accesses to the APIC and IOAPIC pages exit to userspace
 * (KVM_EXIT_MMIO) and reach `mmio`, the 8259 ports (KVM_EXIT_IO) reach `pio`.
 */
export class QemuPcIrqchip implements MsiSink, IrqPinProvider {
  readonly apicBus: QemuApicBus;
  readonly ioapic: QemuIoapic;
  readonly pic: QemuPic;
  readonly gsi: PcGsi;
  readonly cpus: QemuKvmCpu[];
  private readonly t: TraceChannel;

  constructor(ctx: SimContext, vm: KvmVm) {
    if (vm.irqchipInKernel) {
      throw new VirqError(KvmErrorCode.NoIrqchip, "QemuPcIrqchip is QEMU's kernel-irqchip=off: create the KvmVm with irqchip: false");
    }
    const t = (this.t = ctx.trace.channel('qemu-irq'));
    const bus = (this.apicBus = new QemuApicBus(t));
    // ioapic_service → stl_le_phys(ioapic_as, addr, data) → apic_mem_write → apic_send_msi
    // ioapic_service's stl_le_phys to the APIC's MSI window: the memory dispatch ends in apic_mem_write.
    this.ioapic = new QemuIoapic(t, (addr, data) => {
      if (t.on) t.emit('qemu.apic_mem_write', 'apic_mem_write', 'memory_region_write_accessor', { addr, data });
      bus.sendMsi({ addressLo: addr, addressHi: 0, data }, 'apic_mem_write');
    });
    bus.eoiBroadcastHandler = (v) => this.ioapic.eoiBroadcast(v);
    this.gsi = PcGsi.userspace(ctx, (level) => this.picIrqRequest(level), (n, level) => this.ioapic.setIrq(n, level));
    this.pic = this.gsi.pic!;
    bus.hasPic = true;
    bus.picOutput = () => this.pic.intLevel;
    this.cpus = vm.vcpus().map((v) => new QemuKvmCpu(v, bus, ctx.scheduler, ctx.costs, t, () => this.pic.readIrq()));
  }

  /** pic_irq_request: the 8259's INT to every APIC whose LINT0 accepts it (apic_deliver_pic_intr, ExtINT). */
  private picIrqRequest(level: boolean): void {
    if (this.t.on) this.t.emit('qemu.pic_irq_request', 'pic_irq_request', 'pic_update_irq', { level });
    for (const c of this.cpus) {
      if (!c.apic.acceptPicIntr()) continue;
      if (level) c.interrupt(CPU_INTERRUPT_HARD, 'apic_deliver_pic_intr');
      else c.apic.updateIrq('apic_deliver_pic_intr');
    }
  }

  /**
   * MsiSink: a device's MSI write (msi_send_message → address_space_stl_le) landing in the
   * "apic-msi" region → apic_send_msi. Returns the number of APICs it reached.
   */
  deliverMsi(msg: MsiMessage): number {
    if (this.t.on) this.t.emit('qemu.apic_mem_write', 'apic_mem_write', 'memory_region_write_accessor', { addr: msg.addressLo >>> 0, data: msg.data });
    return this.apicBus.sendMsi(msg, 'apic_mem_write');
  }

  /** IrqPinProvider: GSI `n` as a wire into gsi_handler (the 8259 for ISA IRQs and the IOAPIC). */
  pin(n: number): IrqPin {
    const line = this.gsi.gsi[n];
    if (line === undefined) throw new VirqError(KvmErrorCode.RoutingInvalid, `GSI ${n} is outside 0..${this.gsi.gsi.length - 1} (the PC's IOAPIC inputs)`);
    return { setLevel: (level: boolean) => line.set(level, 'qemu_set_irq') };
  }

  /** A KVM_EXIT_MMIO for the APIC or IOAPIC window, on vCPU `vcpuId`'s thread; undefined when neither owns `addr`. */
  mmio(vcpuId: number, write: boolean, addr: number, len: number, value: number): number | undefined {
    const a = addr >>> 0;
    if (a >= QEMU_APIC_DEFAULT_ADDRESS && a < QEMU_APIC_DEFAULT_ADDRESS + QEMU_APIC_SPACE_SIZE) {
      const apic = this.cpus[vcpuId]?.apic;
      if (write) {
        this.apicBus.memWrite(apic, a, value, len);
        return 0;
      }
      return this.apicBus.memRead(apic, a, len);
    }
    if (this.ioapic.inRange(a)) {
      if (write) {
        this.ioapic.memWrite(a, value);
        return 0;
      }
      return this.ioapic.memRead(a);
    }
    return undefined;
  }

  /** A KVM_EXIT_IO for the 8259s or the ELCR; undefined for other ports. */
  pio(write: boolean, port: number, value: number): number | undefined {
    if (!QemuPic.claims(port)) return undefined;
    if (write) {
      this.pic.ioportWrite(port, value);
      return 0;
    }
    return this.pic.ioportRead(port);
  }

  /**
   * A `KvmVm.onUserspaceExit` handler: the APIC/IOAPIC windows and the 8259 ports first (QEMU's
   * memory and I/O dispatch finds their regions), then `other` (the machine's devices).
   */
  exitHandler(other?: (vcpuId: number, exit: UserspaceExit) => number): (vcpuId: number, exit: UserspaceExit) => number {
    return (vcpuId, exit) => {
      const r = exit.exit === 'MMIO' ? this.mmio(vcpuId, exit.write, exit.addr, exit.len, exit.value) : this.pio(exit.write, exit.addr, exit.value);
      if (r !== undefined) return r;
      return other?.(vcpuId, exit) ?? 0;
    };
  }

  /** The CPU (and APIC) of vCPU `vcpuId`. */
  cpu(vcpuId: number): QemuKvmCpu {
    const c = this.cpus[vcpuId];
    if (c === undefined) throw new VirqError(KvmErrorCode.VcpuInvalid, `no vCPU ${vcpuId}: this VM has vCPUs 0..${this.cpus.length - 1}`, { errno: 'EINVAL' });
    return c;
  }
}
