/**
 * What KVM hands the IOMMU driver through `irq_set_vcpu_affinity(host_irq, info)` to post a
 * host interrupt straight into a vCPU: `struct vcpu_data` on Intel (descriptor address and
 * guest vector), `struct amd_iommu_pi_data` on AMD (GA tag, guest vector, the vCPU's host
 * APIC id and whether it runs).
 */
export type VcpuAffinityInfo =
  | { readonly kind: 'vmx'; readonly piDescAddr: number; readonly vector: number }
  | {
      readonly kind: 'avic';
      readonly gaTag: number;
      readonly vector: number;
      readonly vcpuId: number;
      /** Host APIC id of the CPU the vCPU is loaded on (or the last one). */
      readonly hostApicId: number;
      readonly isRunning: boolean;
    };

/**
 * The IOMMU's interrupt-remapping unit as the host IRQ layer uses it (Intel VT-d IR or AMD-Vi
 * with GA mode). `index` is the interrupt's remapping-table entry (handle).
 */
export interface InterruptRemapper {
  readonly kind: 'intel-vtd' | 'amd-vi';
  /** Programs the entry in remapped mode: the interrupt goes to `hostApicId` with `hostVector`. */
  setRemapped(index: number, hostVector: number, hostApicId: number, sourceId: number): void;
  /** Clears the entry (free of the IRQ). */
  clear(index: number): void;
  /** irq_set_vcpu_affinity: posted (info) or back to remapped (null). */
  setVcpuAffinity(index: number, info: VcpuAffinityInfo | null): void;
  /** A device's MSI in remappable format with this handle reaches the IOMMU. */
  handleMsi(index: number): void;
  /** 'remapped' | 'posted' | 'absent', for tests and invariants. */
  modeOf(index: number): 'remapped' | 'posted' | 'absent';
  /** The vCPU and guest vector a posted entry targets. */
  postedTarget(index: number): { vcpuId: number; vector: number } | undefined;
}
