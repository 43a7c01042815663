import type { MsiMessage } from '@virq/core';
import type { LapicIrq } from './lapic-irq.js';

/**
 * kvm_msi_to_lapic_irq (kvm_set_msi_irq): decode an x86 MSI (FACTS §4.2) into an APIC-bus
 * message. Address bits 31:20 and address_hi are ignored unless the x2APIC API
 * (`x2apicFormat`) extends the destination with address_hi[31:8]. The level bit is forced.
 */
export function msiToLapicIrq(msg: MsiMessage, x2apicFormat: boolean, out?: LapicIrq): LapicIrq {
  const lo = msg.addressLo >>> 0;
  const data = msg.data >>> 0;
  let dest = (lo >>> 12) & 0xff;
  if (x2apicFormat) dest = (dest | ((msg.addressHi >>> 8) << 8)) >>> 0;
  const irq = out ?? ({} as LapicIrq);
  irq.destId = dest;
  irq.vector = data & 0xff;
  irq.logical = (lo & 0x4) !== 0;
  irq.levelTriggered = (data & 0x8000) !== 0;
  irq.deliveryMode = (data >> 8) & 7;
  irq.msiRedirHint = (lo & 0x8) !== 0;
  irq.level = true;
  irq.shorthand = 0;
  return irq;
}
