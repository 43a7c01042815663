import type { GicIrq } from './gic-irq.js';

/**
 * The per-INTID register arrays that the distributor (GICD, INTIDs ≥ 32) and the
 * redistributor's SGI_base frame (GICR, INTIDs 0–31) share, at the same offsets
 * (FACTS §12.3/§12.4): IGROUPR 0x080, IS/ICENABLER 0x100/0x180, IS/ICPENDR 0x200/0x280,
 * IS/ICACTIVER 0x300/0x380, IPRIORITYR 0x400 (1 byte per INTID), ICFGR 0xC00 (2 bits).
 */
export type IrqBankKind = 'group' | 'isenable' | 'icenable' | 'ispend' | 'icpend' | 'isactive' | 'icactive' | 'priority' | 'config';

export interface IrqBankAccess {
  readonly kind: IrqBankKind;
  /** First INTID the 32-bit register covers. */
  readonly firstIntid: number;
}

/** Decodes a 32-bit access in the shared range 0x080–0xCFF, or undefined. */
export function decodeIrqBank(offset: number): IrqBankAccess | undefined {
  const bit = (base: number, kind: IrqBankKind): IrqBankAccess | undefined =>
    offset >= base && offset < base + 0x80 ? { kind, firstIntid: ((offset - base) >>> 2) * 32 } : undefined;
  if (offset >= 0x400 && offset < 0x800) return { kind: 'priority', firstIntid: (offset - 0x400) & ~3 };
  if (offset >= 0xc00 && offset < 0xd00) return { kind: 'config', firstIntid: ((offset - 0xc00) >>> 2) * 16 };
  return bit(0x080, 'group') ?? bit(0x100, 'isenable') ?? bit(0x180, 'icenable') ?? bit(0x200, 'ispend') ?? bit(0x280, 'icpend') ?? bit(0x300, 'isactive') ?? bit(0x380, 'icactive');
}

/** The vgic-mmio.c handler KVM runs for a guest write to each register of the bank. */
export const VGIC_MMIO_WRITE_HANDLER: Readonly<Record<IrqBankKind, string>> = {
  group: 'vgic_mmio_write_group',
  isenable: 'vgic_mmio_write_senable',
  icenable: 'vgic_mmio_write_cenable',
  ispend: 'vgic_mmio_write_spending',
  icpend: 'vgic_mmio_write_cpending',
  isactive: 'vgic_mmio_write_sactive',
  icactive: 'vgic_mmio_write_cactive',
  priority: 'vgic_mmio_write_priority',
  config: 'vgic_mmio_write_config',
};

export type IrqLookup = (intid: number) => GicIrq | undefined;

/** Reads one register of the bank. INTIDs without a record read as zero (RAZ). */
export function readIrqBank(a: IrqBankAccess, lookup: IrqLookup): number {
  let v = 0;
  if (a.kind === 'priority') {
    for (let i = 0; i < 4; i++) {
      const irq = lookup(a.firstIntid + i);
      if (irq !== undefined) v |= irq.priority << (8 * i);
    }
    return v >>> 0;
  }
  if (a.kind === 'config') {
    for (let i = 0; i < 16; i++) {
      const irq = lookup(a.firstIntid + i);
      if (irq !== undefined && irq.trigger === 'edge') v |= 2 << (2 * i);
    }
    return v >>> 0;
  }
  for (let i = 0; i < 32; i++) {
    const irq = lookup(a.firstIntid + i);
    if (irq === undefined) continue;
    let b = false;
    switch (a.kind) {
      case 'group': b = irq.group === 1; break;
      case 'isenable': case 'icenable': b = irq.enabled; break;
      case 'ispend': case 'icpend': b = irq.pending; break;
      case 'isactive': case 'icactive': b = irq.active; break;
    }
    if (b) v |= 1 << i;
  }
  return v >>> 0;
}

/**
 * Writes one register of the bank; `changed` is called for every interrupt whose
 * deliverability may have changed. `priorityMask` clears unimplemented priority bits;
 * `configWritable` says whether an INTID's ICFGR bits may change (SGIs are always edge).
 */
export function writeIrqBank(
  a: IrqBankAccess,
  value: number,
  lookup: IrqLookup,
  changed: (irq: GicIrq) => void,
  priorityMask: number,
  configWritable: (intid: number) => boolean,
): void {
  if (a.kind === 'priority') {
    for (let i = 0; i < 4; i++) {
      const irq = lookup(a.firstIntid + i);
      if (irq === undefined) continue;
      irq.priority = (value >>> (8 * i)) & priorityMask;
      changed(irq);
    }
    return;
  }
  if (a.kind === 'config') {
    for (let i = 0; i < 16; i++) {
      const irq = lookup(a.firstIntid + i);
      if (irq === undefined || !configWritable(irq.intid)) continue;
      irq.trigger = ((value >>> (2 * i)) & 2) !== 0 ? 'edge' : 'level';
      changed(irq);
    }
    return;
  }
  for (let i = 0; i < 32; i++) {
    const set = ((value >>> i) & 1) !== 0;
    const irq = lookup(a.firstIntid + i);
    if (irq === undefined) continue;
    if (a.kind === 'group') {
      irq.group = set ? 1 : 0;
      changed(irq);
      continue;
    }
    if (!set) continue; // every other register is write-1-to-set / write-1-to-clear
    switch (a.kind) {
      case 'isenable': irq.enabled = true; break;
      case 'icenable': irq.enabled = false; break;
      case 'ispend': irq.pendingLatch = true; break;
      case 'icpend': irq.pendingLatch = false; break;
      case 'isactive': irq.active = true; break;
      case 'icactive': irq.active = false; break;
    }
    changed(irq);
  }
}
