import type { KvmRoutingTable } from '@virq/core';

/**
 * QEMU's kvm_pc_setup_irq_routing: PIC pins for GSI 0–15 except 2 (the cascade), IOAPIC pins
 * for GSI 0–23 with GSI 0 on IOAPIC pin 2 (the timer override) and nothing for GSI 2. Added to
 * QEMU's routing table, not committed.
 */
export function addPcIrqRoutes(routes: KvmRoutingTable): void {
  for (let i = 0; i < 8; i++) if (i !== 2) routes.addIrqchipRoute(i, 0, i);
  for (let i = 8; i < 16; i++) routes.addIrqchipRoute(i, 1, i - 8);
  for (let i = 0; i < 24; i++) {
    if (i === 0) routes.addIrqchipRoute(0, 2, 2);
    else if (i !== 2) routes.addIrqchipRoute(i, 2, i);
  }
}
