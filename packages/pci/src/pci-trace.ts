import type { TraceEvent } from '@virq/core';

/** Kinds of the events @virq/pci emits on its `pci` trace channel. */
export type PciTraceKind =
  | 'pci.config_write'
  | 'pci.bar_map'
  | 'pci.set_irq'
  | 'pci.msi_send'
  | 'pci.msi_dropped'
  | 'msix.table_write'
  | 'msix.mask_update'
  | 'msix.fire_notifier'
  | 'msix.notifier_error'
  | 'msix.notify'
  | 'msix.set_pending'
  | 'msix.clr_pending'
  | 'msix.pba_read'
  | 'msix.write_config'
  | 'msi.notify';

export type PciTraceEvent = TraceEvent<PciTraceKind>;
