import type { TraceEvent } from '@virq/core';

/** Every event kind this package emits (one channel per component, one union for all). */
export type IrqBypassPkgTraceKind =
  // host interrupt entry and handlers
  | 'host.irq_enter'
  | 'host.irq_handler'
  | 'host.sysvec'
  | 'host.request_irq'
  | 'host.free_irq'
  | 'host.irq_set_vcpu_affinity'
  // remapping hardware
  | 'iommu.irte_write'
  | 'iommu.remap'
  | 'iommu.post'
  | 'iommu.fault'
  | 'iommu.ga_log'
  // posted interrupts (VMX) / AVIC
  | 'pi.deliver'
  | 'pi.notify'
  | 'pi.hw_sync'
  | 'pi.wakeup'
  | 'pi.load'
  | 'pi.put'
  | 'pi.sync_pir_to_irr'
  | 'avic.doorbell'
  | 'avic.is_running'
  // KVM consumer
  | 'kvm.add_producer'
  | 'kvm.del_producer'
  | 'kvm.update_irqfd_routing'
  | 'kvm.pi_update_irte'
  | 'kvm.irte_update'
  // VFIO kernel
  | 'vfio.ioctl'
  | 'vfio.set_msi_trigger'
  | 'vfio.set_vector_signal'
  | 'vfio.msihandler'
  | 'vfio.intx_handler'
  | 'vfio.intx_unmask'
  | 'vfio.eventfd_signal'
  // QEMU VFIO
  | 'qemu.vfio'
  | 'qemu.msix';

export type IrqBypassPkgTraceEvent = TraceEvent<IrqBypassPkgTraceKind>;
