import type { VcpuAffinityInfo } from './interrupt-remapper.js';

/**
 * The vendor half of KVM's IRTE management: Intel (`vmx_pi_update_irte`, VMX posted
 * interrupts + VT-d) or AMD (`avic_pi_update_irte`, AVIC + AMD-Vi GA mode). The KVM consumer
 * makes the common decision (which vCPU, if any); the backend says whether posting is
 * possible at all and what to hand the IOMMU.
 */
export interface IrqPostingBackend {
  readonly vendor: 'vmx' | 'avic';
  /** The function name that appears in traces (`vmx_pi_update_irte` / `avic_pi_update_irte`). */
  readonly updateIrteFn: string;
  /** vmx_can_use_vtd_pi / avic + GA mode: APICv on, IOMMU posting, an assigned device. */
  canPost(): boolean;
  /** kvm_arch_start_assignment / kvm_arch_end_assignment. */
  startAssignment(): void;
  endAssignment(): void;
  /** The posting information for (vcpu, guest vector). */
  postingInfo(vcpuId: number, vector: number): VcpuAffinityInfo;
  /** Called after the IRTE of `hostIrq` went posted to vcpuId (AVIC: svm_ir_list_add) or not (undefined). */
  irteTargetChanged?(hostIrq: number, irteIndex: number, vcpuId: number | undefined): void;
}
