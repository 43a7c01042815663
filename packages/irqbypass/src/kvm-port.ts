import type { Actor, EventFd, GsiRoute } from '@virq/core';

/**
 * `vcpu->mode` (include/linux/kvm_host.h): whether a vCPU executes guest code right now. The
 * posted-interrupt decision (`kvm_vcpu_trigger_posted_interrupt`) and the host-interrupt
 * accounting hinge on it.
 */
export type VcpuMode = 'outside-guest' | 'in-guest' | 'exiting-guest';

/**
 * What the posted-interrupt code needs of one KVM vCPU. @virq/kvm-irqchip owns the vCPU
 * (run loop, LAPIC, exits); an adapter (`kvmIrqchipPiPort`) maps its vCPU onto this.
 */
export interface PiVcpu {
  readonly vcpuId: number;
  /** The vCPU's (guest) APIC id. */
  readonly apicId: number;
  /** The vCPU thread (`CPU n/KVM`). */
  readonly actor: Actor;
  readonly mode: VcpuMode;
  /** Host CPU the vCPU is loaded on (`vcpu->cpu`), or -1. */
  readonly hostCpu: number;
  /**
   * The CPU's posted-interrupt processing while the vCPU is in guest mode: OR the vectors
   * into the virtual-APIC IRR and re-evaluate RVI — the guest takes the interrupt with no exit.
   */
  syncPirToIrr(vectors: readonly number[]): void;
  /** kvm_vcpu_wake_up: make a blocked vCPU runnable. */
  wakeUp(): void;
  /** A host interrupt arrived while this vCPU ran in guest mode on its host CPU. */
  externalInterruptExit(hostVector: number): void;
}

/** One irqfd as KVM's bypass consumer sees it (`struct kvm_kernel_irqfd`). */
export interface KvmIrqfdView {
  readonly gsi: number;
  readonly eventfd: EventFd;
  /** The cached route (`irqfd->irq_entry`), or undefined when the GSI has 0 or > 1 routes. */
  readonly route: GsiRoute | undefined;
}

/** The irqfd lifecycle points where Linux calls into irqbypass (virt/kvm/eventfd.c). */
export interface IrqfdBypassHooks {
  /** End of kvm_irqfd_assign: irq_bypass_register_consumer. */
  irqfdAssigned(irqfd: KvmIrqfdView): void;
  /** irqfd_shutdown: irq_bypass_unregister_consumer. */
  irqfdDeassigned(irqfd: KvmIrqfdView): void;
  /** kvm_irq_routing_update, after irqfd_update: kvm_arch_update_irqfd_routing. */
  irqfdRoutingUpdated(irqfd: KvmIrqfdView): void;
}

/** vCPU scheduling points (vmx_vcpu_pi_load / vmx_vcpu_pi_put). */
export interface VcpuSchedHooks {
  vcpuLoad(vcpu: PiVcpu, hostCpu: number): void;
  vcpuPut(vcpu: PiVcpu, reason: 'preempted' | 'blocking' | 'exit'): void;
}

/**
 * The adapter interface this package needs from KVM's x86 irqchip (@virq/kvm-irqchip). It is
 * small on purpose: everything posted-interrupt specific (descriptors, IRTEs, wakeup lists)
 * lives here; the irqchip only exposes its vCPUs, its routing table, its APIC map and three
 * hook points.
 */
export interface KvmPiPort {
  /** kvm_vcpu_apicv_active: APICv / virtual-interrupt delivery in use. */
  readonly apicvActive: boolean;
  vcpu(vcpuId: number): PiVcpu | undefined;
  vcpus(): readonly PiVcpu[];
  /** The routing entries of a GSI (irq_rt->map[gsi]). */
  routesOf(gsi: number): readonly GsiRoute[];
  /**
   * The vCPUs an interrupt with this destination reaches (kvm_intr_is_single_vcpu's APIC-map
   * lookup). `lowestPriority` asks for lowest-priority arbitration (vector hashing).
   */
  destinationVcpus(destId: number, logical: boolean, lowestPriority: boolean, vector: number): readonly number[];
  /** Installs the irqfd bypass hooks (kvm_irqfd_assign / irqfd_shutdown / kvm_irq_routing_update). */
  setIrqfdBypassHooks(hooks: IrqfdBypassHooks | undefined): void;
  /** Installs vmx_deliver_posted_interrupt as __apic_accept_irq's APICv path. */
  /** `fn`/`caller`: the vendor's delivery function as traces name it (default VMX's). */
  setPostedInterruptDelivery(deliver: ((vcpuId: number, vector: number) => boolean) | undefined, fn?: string, caller?: string): void;
  /** Installs the vcpu_load / vcpu_put hooks. */
  setVcpuSchedHooks(hooks: VcpuSchedHooks | undefined): void;
  /**
   * Installs vmx_sync_pir_to_irr: run by vcpu_enter_guest before entry, and by
   * apic_has_interrupt_for_ppr whenever KVM asks whether an APICv vCPU has an interrupt (the
   * block check of a halting vCPU among them). `caller` names who asked.
   */
  setPirSync(sync: ((vcpuId: number, caller: string) => void) | undefined): void;
}
