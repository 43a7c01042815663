/**
 * Error codes raised by @virq/irqbypass. Each mirrors an errno the real kernel returns
 * (irq_bypass_register_* → EINVAL/EBUSY, VFIO_DEVICE_SET_IRQS → EINVAL/ENOTTY …) and the
 * VirqError carries that errno name, so callers can tell the kernel's answer apart from a
 * wrong configuration.
 */
export const IrqBypassErrorCode = {
  /** irq_bypass_register_*: NULL token or missing add/del_producer callback (EINVAL). */
  BypassInvalid: 'irqbypass.invalid',
  /** irq_bypass_register_*: token or object already registered (EBUSY). */
  BypassBusy: 'irqbypass.busy',
  /** irq_bypass connect: the add_producer/add_consumer callback failed. */
  BypassConnectFailed: 'irqbypass.connect-failed',
  /** VFIO_DEVICE_SET_IRQS with bad flags, index, start/count or data (EINVAL). */
  VfioSetIrqsInvalid: 'vfio.set-irqs-invalid',
  /** VFIO_DEVICE_SET_IRQS action not supported for the index (ENOTTY). */
  VfioSetIrqsUnsupported: 'vfio.set-irqs-unsupported',
  /** VFIO: no host vector left / device has no such interrupt (ENOSPC / EINVAL). */
  VfioNoVector: 'vfio.no-vector',
  /** request_irq on a host IRQ that already has a handler (EBUSY). */
  HostIrqBusy: 'host-irq.busy',
  /** free_irq / affinity change on an IRQ that has no handler (EINVAL). */
  HostIrqUnknown: 'host-irq.unknown',
  /** An IRTE that does not decode (reserved bits, not present …). */
  IrteInvalid: 'iommu.irte-invalid',
  /** A vCPU id or host CPU the model does not know. */
  VcpuUnknown: 'pi.vcpu-unknown',
  /** Configuration that cannot work (posted interrupts without APICv, …). */
  ConfigInvalid: 'irqbypass.config-invalid',
  /** A PI descriptor address the IOMMU cannot resolve (DMA remapping fault in real life). */
  PiDescriptorUnknown: 'pi.descriptor-unknown',
} as const;
export type IrqBypassErrorCode = (typeof IrqBypassErrorCode)[keyof typeof IrqBypassErrorCode];
