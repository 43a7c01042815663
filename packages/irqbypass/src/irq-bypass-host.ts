import { VirqError, type SimContext } from '@virq/core';
import { AssignedPciDevice, type AssignedDeviceInit } from './assigned-device.js';
import { AmdIommuGaRemapper, AvicPostedInterrupts } from './avic.js';
import { IrqBypassErrorCode } from './errors.js';
import { HostCpus } from './host-cpus.js';
import { HostIrqDomain } from './host-irq.js';
import { IntelInterruptRemapper } from './intel-ir.js';
import type { InterruptRemapper } from './interrupt-remapper.js';
import { IrqBypassManager } from './irq-bypass-manager.js';
import { KvmIrqBypass, type IrteDecision } from './kvm-irq-bypass.js';
import type { KvmIrqfdView, KvmPiPort } from './kvm-port.js';
import type { IrqPostingBackend } from './posting-backend.js';
import { VfioPciCore, type VfioPciCoreOptions } from './vfio-pci-core.js';
import { VmxPostedInterrupts } from './vmx-posted-intr.js';

export interface IrqBypassHostOptions {
  /** The VM's irqchip (an adapter over @virq/kvm-irqchip, or any KvmPiPort). */
  kvm: KvmPiPort;
  /** Host CPUs. Default 16. */
  hostCpus?: number;
  /** Intel (VMX posted interrupts + VT-d) or AMD (AVIC + AMD-Vi GA mode). Default 'vmx'. */
  vendor?: 'vmx' | 'avic';
  /**
   * kvm_arch_has_irq_bypass / enable_device_posted_irqs: KVM registers irqfds as bypass
   * consumers and posts device interrupts. Default true. With false, device interrupts
   * always go host IRQ → VFIO → eventfd → irqfd.
   */
  devicePosting?: boolean;
  /** x2APIC host (NDST format). Default true. */
  x2apic?: boolean;
}

/**
 * One host running one VM with assigned devices: host CPUs, the irqbypass manager, the
 * IOMMU's interrupt remapping, the host IRQ layer, the vendor posting backend and KVM's
 * bypass consumer, composed and hooked into the VM's irqchip. `assignDevice` adds a
 * physical function with its vfio-pci interrupt side.
 */
export class IrqBypassHost {
  readonly cpus: HostCpus;
  readonly manager: IrqBypassManager;
  readonly remapper: InterruptRemapper;
  readonly irqs: HostIrqDomain;
  readonly backend: IrqPostingBackend;
  readonly vmx: VmxPostedInterrupts | undefined;
  readonly avic: AvicPostedInterrupts | undefined;
  readonly kvmBypass: KvmIrqBypass;
  readonly devicePosting: boolean;
  private readonly devices: VfioPciCore[] = [];

  constructor(
    private readonly ctx: SimContext,
    readonly options: IrqBypassHostOptions,
  ) {
    const vendor = options.vendor ?? 'vmx';
    if (vendor !== 'vmx' && vendor !== 'avic') {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, `vendor must be 'vmx' (Intel VT-x + VT-d) or 'avic' (AMD AVIC + AMD-Vi), got '${String(vendor)}'`, { errno: 'EINVAL' });
    }
    this.cpus = new HostCpus(ctx, { count: options.hostCpus ?? 16, x2apic: options.x2apic ?? true });
    this.manager = new IrqBypassManager(ctx);
    this.devicePosting = options.devicePosting ?? true;
    if (vendor === 'vmx') {
      let vmx: VmxPostedInterrupts | undefined;
      const ir = new IntelInterruptRemapper(ctx, this.cpus, { descriptorAt: (a) => vmx?.descriptorAt(a) });
      vmx = new VmxPostedInterrupts(ctx, this.cpus, options.kvm, { iommuPostingCapable: this.devicePosting });
      this.vmx = vmx;
      this.avic = undefined;
      this.remapper = ir;
      this.backend = vmx;
    } else {
      const ir = new AmdIommuGaRemapper(ctx, this.cpus);
      const avic = new AvicPostedInterrupts(ctx, this.cpus, options.kvm, ir);
      this.vmx = undefined;
      this.avic = avic;
      this.remapper = ir;
      this.backend = avic;
    }
    this.irqs = new HostIrqDomain(ctx, this.cpus, this.remapper);
    this.kvmBypass = new KvmIrqBypass(ctx, this.manager, options.kvm, this.backend, this.irqs);
    this.vmx?.attach();
    this.avic?.attach();
    if (this.devicePosting) this.kvmBypass.attach();
  }

  /** A physical function passed through with vfio-pci. */
  assignDevice(init: AssignedDeviceInit, vfio: VfioPciCoreOptions = {}): VfioPciCore {
    const dev = new AssignedPciDevice(this.ctx, init);
    const core = new VfioPciCore(this.ctx, dev, this.irqs, this.manager, vfio);
    this.devices.push(core);
    return core;
  }

  /**
   * The invariant the property tests hold the model to: for every irqfd, its host IRQ's IRTE
   * (if a VFIO producer is connected) is posted exactly to what the irqfd's current routes
   * resolve to, and remapped otherwise; IRTEs of vectors with no connected consumer are
   * remapped. Returns the list of violations (empty when consistent).
   */
  irteViolations(irqfds: readonly KvmIrqfdView[]): string[] {
    const out: string[] = [];
    const connectedIrqs = new Set<number>();
    for (const f of irqfds) {
      const p = this.kvmBypass.producerOf(f.eventfd);
      if (p === undefined) continue;
      connectedIrqs.add(p.irq);
      const idx = this.irqs.irteIndexOf(p.irq);
      const want: IrteDecision = this.kvmBypass.expectedDecision(this.options.kvm.routesOf(f.gsi));
      const mode = this.remapper.modeOf(idx);
      if (want.mode === 'posted') {
        const t = this.remapper.postedTarget(idx);
        if (mode !== 'posted' || t?.vcpuId !== want.vcpuId || t?.vector !== want.vector) {
          out.push(`gsi ${f.gsi} irq ${p.irq}: IRTE ${mode} ${t === undefined ? '' : `vcpu ${t.vcpuId} vector ${t.vector}`} but the route posts to vcpu ${want.vcpuId} vector ${want.vector}`);
        }
      } else if (mode !== 'remapped') {
        out.push(`gsi ${f.gsi} irq ${p.irq}: IRTE ${mode} but the route is not postable (${want.reason})`);
      }
    }
    for (const d of this.devices) {
      for (let v = 0; v < d.device.msixVectors; v++) {
        const irq = d.hostIrqOf(v);
        if (irq === undefined || connectedIrqs.has(irq)) continue;
        const mode = this.remapper.modeOf(this.irqs.irteIndexOf(irq));
        if (mode !== 'remapped') out.push(`${d.device.name} vector ${v} irq ${irq}: IRTE ${mode} with no connected irqfd`);
      }
    }
    return out;
  }
}
