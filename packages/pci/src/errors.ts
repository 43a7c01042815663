/** Codes of the VirqErrors @virq/pci throws (bad input from a user or a machine, never from a guest). */
export const PciErrorCode = {
  ConfigAccessInvalid: 'pci.config-access-invalid',
  CapabilityNoSpace: 'pci.capability-no-space',
  BarInvalid: 'pci.bar-invalid',
  DevfnInUse: 'pci.devfn-in-use',
  NoDevice: 'pci.no-device',
  MsixInvalid: 'pci.msix-invalid',
  MsixNotifiersInstalled: 'pci.msix-notifiers-installed',
  MsixNotifierFailed: 'pci.msix-notifier-failed',
  MsiInvalid: 'pci.msi-invalid',
  SnapshotInvalid: 'pci.snapshot-invalid',
} as const;
export type PciErrorCode = (typeof PciErrorCode)[keyof typeof PciErrorCode];
