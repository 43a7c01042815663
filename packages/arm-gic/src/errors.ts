/**
 * Error codes of @virq/arm-gic. Thrown `VirqError`s are for bad input from a user or a VMM
 * (a wrong constructor option, a KVM ioctl with bad arguments); bad input from a guest (an
 * ITS command naming an unmapped device, a CWRITER beyond the queue) never throws: it becomes
 * a typed trace event (`gic.error`) and the component carries on as the real one does.
 */
export const GicErrorCode = {
  /** A constructor option or a method argument is out of range. */
  ConfigInvalid: 'gic.config-invalid',
  /** A register offset that this frame does not decode (user/test access). */
  RegisterUnknown: 'gic.register-unknown',
  /** KVM_SET_GSI_ROUTING / KVM_IRQFD / KVM_IRQ_LINE / KVM_SIGNAL_MSI rejected (errno set). */
  IoctlInvalid: 'gic.ioctl-invalid',
  /** kvm_vgic_v4_set_forwarding could not resolve the route to a guest LPI. */
  ForwardingFailed: 'gic.forwarding-failed',
  /** A vCPU index that does not exist. */
  VcpuUnknown: 'gic.vcpu-unknown',
  /** A host interrupt already has a handler (request_irq -EBUSY). */
  IrqBusy: 'gic.irq-busy',
} as const;
export type GicErrorCode = (typeof GicErrorCode)[keyof typeof GicErrorCode];

/**
 * Guest-caused faults, reported as events (never thrown). ITS command errors carry the
 * architectural error number of FACTS §13.4 as well.
 */
export const GicGuestFault = {
  ItsCommandError: 'its.command-error',
  ItsCommandUnsupported: 'its.command-unsupported',
  ItsCommandReadFault: 'its.command-read-fault',
  ItsCwriterOutOfRange: 'its.cwriter-out-of-range',
  ItsTranslationDropped: 'its.translation-dropped',
  ItsStalled: 'its.stalled',
  LpiTableFault: 'gic.lpi-table-fault',
} as const;
export type GicGuestFault = (typeof GicGuestFault)[keyof typeof GicGuestFault];
