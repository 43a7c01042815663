import { VirqError, type GsiRoute, type MsiMessage } from '@virq/core';
import { KvmErrorCode } from './errors.js';

/** KVM_MAX_IRQ_ROUTES on current x86 kernels (KVM_CAP_IRQ_ROUTING reports 4096 on the golden host). */
export const KVM_MAX_IRQ_ROUTES = 4096;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
export const KVM_IRQ_ROUTING_HV_SINT = 4;
export const KVM_MSI_VALID_DEVID = 1;

/**
 * A routing entry in uapi terms (`struct kvm_irq_routing_entry`): core's `GsiRoute` plus
 * the entry `flags`, or a raw entry of another type (S390 adapter, Hyper-V SynIC, Xen…).
 */
export type KvmRoutingEntry =
  | (GsiRoute & { readonly flags?: number })
  | { readonly gsi: number; readonly type: 'other'; readonly typeNum: number; readonly flags?: number };

/** `struct kvm_kernel_irq_routing_entry` */
export interface KernelRoute {
  readonly gsi: number;
  readonly type: number;
  /** irqchip entries: the chip (0–2) and KVM's pin (PIC slave pins are stored + 8). */
  readonly irqchip: number;
  readonly pin: number;
  readonly msi: MsiMessage | undefined;
  /** The user's entry, as given. */
  readonly user: KvmRoutingEntry;
}

/**
 * One installed GSI routing table (`struct kvm_irq_routing_table`): per-GSI entry lists and
 * the reverse map chip[irqchip][pin] → GSI that ack and mask notifiers use. Tables are
 * immutable once built; KVM_SET_GSI_ROUTING swaps in a new one (RCU in the kernel).
 */
export class IrqRoutingTable {
  readonly nrRtEntries: number;
  private readonly map: (KernelRoute[] | undefined)[];
  /** chip[irqchip][pin] = gsi or -1 */
  readonly chip: Int32Array[];

  private constructor(nr: number) {
    this.nrRtEntries = nr;
    this.map = new Array<KernelRoute[] | undefined>(nr);
    this.chip = [new Int32Array(24).fill(-1), new Int32Array(24).fill(-1), new Int32Array(24).fill(-1)];
  }

  /** The entries of a GSI in table order (kvm_irq_map_gsi). */
  routes(gsi: number): readonly KernelRoute[] {
    if (gsi < 0 || gsi >= this.nrRtEntries) return EMPTY;
    return this.map[gsi] ?? EMPTY;
  }

  /** kvm_irq_map_chip_pin */
  gsiOf(irqchip: number, pin: number): number {
    const c = this.chip[irqchip];
    return c === undefined || pin < 0 || pin >= 24 ? -1 : c[pin]!;
  }

  /** Every entry, in table order. */
  all(): KernelRoute[] {
    const out: KernelRoute[] = [];
    for (const l of this.map) if (l !== undefined) out.push(...l);
    return out;
  }

  /**
   * kvm_set_irq_routing's validation and construction. Throws a VirqError (errno EINVAL)
   * naming the offending entry; nothing is installed then.
   */
  static build(entries: readonly KvmRoutingEntry[], flags = 0, opts: { splitIrqchip?: boolean; x2apicFormat?: boolean; hyperv?: boolean } = {}): IrqRoutingTable {
    if (entries.length > KVM_MAX_IRQ_ROUTES) {
      throw new VirqError(KvmErrorCode.RoutingTooLarge, `KVM_SET_GSI_ROUTING: ${entries.length} entries exceed KVM_MAX_IRQ_ROUTES (${KVM_MAX_IRQ_ROUTES}); split the table or use fewer GSIs`, { errno: 'EINVAL' });
    }
    if (flags !== 0) {
      throw new VirqError(KvmErrorCode.RoutingInvalid, `KVM_SET_GSI_ROUTING: flags must be 0, got ${flags}`, { errno: 'EINVAL' });
    }
    let nr = 0;
    for (const e of entries) {
      if (!Number.isInteger(e.gsi) || e.gsi < 0 || e.gsi >= KVM_MAX_IRQ_ROUTES) {
        throw new VirqError(KvmErrorCode.RoutingInvalid, `KVM_SET_GSI_ROUTING: GSI ${e.gsi} is outside 0..${KVM_MAX_IRQ_ROUTES - 1}`, { errno: 'EINVAL', details: { gsi: e.gsi } });
      }
      nr = Math.max(nr, e.gsi);
    }
    const t = new IrqRoutingTable(nr + 1);
    entries.forEach((ue, i) => {
      const bad = (why: string): never => {
        throw new VirqError(KvmErrorCode.RoutingInvalid, `KVM_SET_GSI_ROUTING: entry ${i} (GSI ${ue.gsi}): ${why}`, { errno: 'EINVAL', details: { index: i, gsi: ue.gsi } });
      };
      const type = ue.type === 'irqchip' ? KVM_IRQ_ROUTING_IRQCHIP : ue.type === 'msi' ? KVM_IRQ_ROUTING_MSI : ue.typeNum;
      const fl = ue.flags ?? (ue.type === 'msi' && ue.msi.requesterId !== undefined ? KVM_MSI_VALID_DEVID : 0);
      if (type === KVM_IRQ_ROUTING_MSI ? (fl & ~KVM_MSI_VALID_DEVID) !== 0 : fl !== 0) bad(`flags 0x${fl.toString(16)} are not allowed for this entry type`);
      const list = t.map[ue.gsi] ?? [];
      for (const ei of list) {
        if (ei.type !== KVM_IRQ_ROUTING_IRQCHIP || type !== KVM_IRQ_ROUTING_IRQCHIP || (ue.type === 'irqchip' && ue.irqchip === ei.irqchip)) {
          bad('a GSI may have several irqchip entries only on different chips, and an MSI or other entry must be its only entry');
        }
      }
      let route: KernelRoute;
      if (ue.type === 'irqchip') {
        if (opts.splitIrqchip) bad('irqchip routes need the full in-kernel irqchip (not split)');
        let pin = ue.pin;
        if (ue.irqchip === KVM_IRQCHIP_PIC_MASTER || ue.irqchip === KVM_IRQCHIP_PIC_SLAVE) {
          if (!(ue.pin >= 0 && ue.pin < 8)) bad(`PIC pin ${ue.pin} is outside 0..7`);
          if (ue.irqchip === KVM_IRQCHIP_PIC_SLAVE) pin += 8;
        } else if (ue.irqchip === KVM_IRQCHIP_IOAPIC) {
          if (!(ue.pin >= 0 && ue.pin < 24)) bad(`IOAPIC pin ${ue.pin} is outside 0..23`);
        } else {
          bad(`irqchip ${ue.irqchip} is not 0 (PIC master), 1 (PIC slave) or 2 (IOAPIC)`);
        }
        route = { gsi: ue.gsi, type, irqchip: ue.irqchip, pin, msi: undefined, user: ue };
        t.chip[ue.irqchip]![pin] = ue.gsi;
      } else if (ue.type === 'msi') {
        if (opts.x2apicFormat && (ue.msi.addressHi & 0xff) !== 0) bad('address_hi bits 7:0 must be 0 with the x2APIC API');
        route = { gsi: ue.gsi, type, irqchip: -1, pin: -1, msi: ue.msi, user: ue };
      } else if (type === KVM_IRQ_ROUTING_HV_SINT && opts.hyperv === true) {
        // kvm_set_routing_entry has this case only with CONFIG_KVM_HYPERV (KVM_CAP_HYPERV).
        route = { gsi: ue.gsi, type, irqchip: -1, pin: -1, msi: undefined, user: ue };
      } else {
        return bad(`routing type ${type} is not supported on x86 KVM`);
      }
      list.push(route);
      t.map[ue.gsi] = list;
    });
    return t;
  }

  /** KVM_CREATE_IRQCHIP's default table: GSI 0–15 → PIC + IOAPIC, 16–23 → IOAPIC. */
  static defaultTable(): IrqRoutingTable {
    const entries: KvmRoutingEntry[] = [];
    for (let gsi = 0; gsi < 24; gsi++) {
      if (gsi < 8) entries.push({ gsi, type: 'irqchip', irqchip: KVM_IRQCHIP_PIC_MASTER, pin: gsi });
      else if (gsi < 16) entries.push({ gsi, type: 'irqchip', irqchip: KVM_IRQCHIP_PIC_SLAVE, pin: gsi - 8 });
      entries.push({ gsi, type: 'irqchip', irqchip: KVM_IRQCHIP_IOAPIC, pin: gsi });
    }
    return IrqRoutingTable.build(entries);
  }
}

const EMPTY: readonly KernelRoute[] = [];

/** The route as core's `GsiRoute` (undefined for other types). */
export function toGsiRoute(r: KernelRoute): GsiRoute | undefined {
  if (r.type === KVM_IRQ_ROUTING_IRQCHIP) return { gsi: r.gsi, type: 'irqchip', irqchip: r.irqchip, pin: r.irqchip === KVM_IRQCHIP_PIC_SLAVE ? r.pin - 8 : r.pin };
  if (r.type === KVM_IRQ_ROUTING_MSI && r.msi !== undefined) return { gsi: r.gsi, type: 'msi', msi: r.msi };
  return undefined;
}
