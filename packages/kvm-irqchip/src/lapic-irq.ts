/**
 * `struct kvm_lapic_irq`: an interrupt message on KVM's APIC bus, whatever produced it (an
 * IOAPIC redirection entry, an MSI, an ICR write). Everything reaches the LAPICs through
 * `kvm_irq_delivery_to_apic` in this shape.
 */
export interface LapicIrq {
  vector: number;
  /** Delivery mode 0–7 (fixed, lowest, SMI, remote read, NMI, INIT, startup, ExtINT). */
  deliveryMode: number;
  /** APIC_DEST_LOGICAL when true, physical otherwise. */
  logical: boolean;
  /** Level (assert) bit. */
  level: boolean;
  /** Trigger mode: true = level-triggered. */
  levelTriggered: boolean;
  /** 0 none, 1 self, 2 all including self, 3 all excluding self. */
  shorthand: number;
  destId: number;
  /** MSI redirection hint: makes fixed delivery behave as lowest priority. */
  msiRedirHint: boolean;
}

/** `struct dest_map`: which vCPUs an RTC interrupt reached, with the vector each got. */
export interface DestMap {
  readonly vcpus: Set<number>;
  readonly vectors: Map<number, number>;
}

export function lowestPriorityDelivery(irq: LapicIrq): boolean {
  return irq.deliveryMode === 1 || irq.msiRedirHint;
}
