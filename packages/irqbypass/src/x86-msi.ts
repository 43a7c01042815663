import type { MsiMessage } from '@virq/core';

/** An x86 MSI decoded as `kvm_set_msi_irq` does (FACTS §4.2). */
export interface X86MsiIrq {
  readonly destId: number;
  readonly vector: number;
  /** Address bit 2: logical destination mode. */
  readonly logical: boolean;
  /** Address bit 3: redirection hint (KVM treats RH=1 as lowest priority). */
  readonly redirHint: boolean;
  /** Data bits 10:8: 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT. */
  readonly deliveryMode: number;
  /** Data bit 15: level-triggered. */
  readonly level: boolean;
}

/**
 * Decodes address/data. Destination bits 7:0 come from address bits 19:12; with KVM's
 * x2APIC API the upper 24 bits come from address_hi[31:8].
 */
export function decodeX86Msi(msg: MsiMessage): X86MsiIrq {
  const lo = msg.addressLo >>> 0;
  const destId = ((lo >>> 12) & 0xff) | ((msg.addressHi >>> 0) & 0xffffff00);
  return {
    destId: destId >>> 0,
    vector: msg.data & 0xff,
    logical: (lo & 4) !== 0,
    redirHint: (lo & 8) !== 0,
    deliveryMode: (msg.data >>> 8) & 7,
    level: (msg.data & 0x8000) !== 0,
  };
}

/** kvm_irq_is_postable: fixed or lowest-priority delivery only. */
export function isPostableDeliveryMode(irq: X86MsiIrq): boolean {
  return irq.deliveryMode === 0 || irq.deliveryMode === 1;
}

/** Lowest-priority arbitration is asked for (delivery mode 1 or RH=1). */
export function isLowestPriority(irq: X86MsiIrq): boolean {
  return irq.deliveryMode === 1 || irq.redirHint;
}

/** An MSI message for a fixed, physical-destination, edge interrupt (what guests program). */
export function x86MsiFixed(apicId: number, vector: number): MsiMessage {
  return { addressLo: (0xfee00000 | ((apicId & 0xff) << 12)) >>> 0, addressHi: 0, data: vector & 0xff };
}
