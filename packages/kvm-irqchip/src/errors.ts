/** Error codes raised by @virq/kvm-irqchip. Each carries KVM's errno where KVM returns one. */
export const KvmErrorCode = {
  /** KVM_SET_GSI_ROUTING refused the table (EINVAL): bad GSI, irqchip, pin, flags or mix. */
  RoutingInvalid: 'kvm.routing-invalid',
  /** More entries than KVM_MAX_IRQ_ROUTES (EINVAL). */
  RoutingTooLarge: 'kvm.routing-too-large',
  /** KVM_IRQFD with bad flags, a non-eventfd or a VM without an irqchip (EINVAL). */
  IrqfdInvalid: 'kvm.irqfd-invalid',
  /** KVM_IRQFD on an eventfd that already backs an irqfd (EBUSY). */
  IrqfdBusy: 'kvm.irqfd-busy',
  /** KVM_IOEVENTFD with a bad length, flags or address (EINVAL). */
  IoeventfdInvalid: 'kvm.ioeventfd-invalid',
  /** KVM_IOEVENTFD overlapping an existing one (EEXIST). */
  IoeventfdExists: 'kvm.ioeventfd-exists',
  /** KVM_IOEVENTFD deassign of something never assigned (ENOENT). */
  IoeventfdNotFound: 'kvm.ioeventfd-not-found',
  /** An ioctl that needs the in-kernel irqchip on a VM without one (ENXIO / EINVAL). */
  NoIrqchip: 'kvm.no-irqchip',
  /** KVM_CREATE_IRQCHIP twice (EEXIST) or after vCPUs exist (EINVAL). */
  IrqchipExists: 'kvm.irqchip-exists',
  /** KVM_SIGNAL_MSI with flags other than KVM_MSI_VALID_DEVID (EINVAL), or delivery found no target (EPERM). */
  MsiInvalid: 'kvm.msi-invalid',
  /** KVM_GET/SET_IRQCHIP with an unknown chip id (EINVAL). */
  ChipInvalid: 'kvm.chip-invalid',
  /** A vCPU index that does not exist. */
  VcpuInvalid: 'kvm.vcpu-invalid',
  /** A bad golden scenario file (not a KVM error: the replay input is wrong). */
  GoldenInvalid: 'kvm.golden-invalid',
} as const;
export type KvmErrorCode = (typeof KvmErrorCode)[keyof typeof KvmErrorCode];
