import type { KvmLapic } from './lapic.js';
import { lowestPriorityDelivery, type DestMap, type LapicIrq } from './lapic-irq.js';
import { APIC, APIC_DFR_CLUSTER, APIC_DFR_FLAT } from './lapic-registers.js';

/** kvm_apic_map.logical_mode */
export type ApicLogicalMode = 'sw-disabled' | 'xapic-flat' | 'xapic-cluster' | 'x2apic' | 'map-disabled';

/** Returned by `deliverFast` when the optimised map cannot decide (KVM falls back to the slow path). */
export const FAST_PATH_MISS = -2;

const X2APIC_BROADCAST = 0xffffffff;

/**
 * KVM's optimised APIC map (`struct kvm_apic_map`, kvm_recalculate_apic_map) and the two
 * delivery paths of `kvm_irq_delivery_to_apic`: the map lookup (`kvm_irq_delivery_to_apic_fast`,
 * O(1) for physical destinations) and the walk over every vCPU (the slow path). Lowest
 * priority uses vector hashing (`kvm.vector_hashing=Y`, the default and the golden host's).
 */
export class ApicMap {
  dirty = true;
  /** phys_map, or null when the map is disabled (aliased physical IDs). */
  private phys: (KvmLapic | undefined)[] | null = null;
  maxApicId = 255;
  logicalMode: ApicLogicalMode = 'sw-disabled';
  private flat: (KvmLapic | undefined)[] = new Array<KvmLapic | undefined>(8);
  private cluster: (KvmLapic | undefined)[][] = [];
  /** Recalculations done (a rebuild is O(vCPUs); deliveries are not). */
  rebuilds = 0;

  constructor(
    private readonly lapics: () => readonly KvmLapic[],
    private readonly opts: { vectorHashing: boolean; x2apicFormat: () => boolean; x2apicBroadcastQuirkDisabled: () => boolean; onRebuilt?: () => void },
  ) {}

  get enabled(): boolean {
    return this.phys !== null;
  }

  /** kvm_recalculate_apic_map (only when dirty). */
  recalculate(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.rebuilds++;
    this.rebuild();
    // kvm_recalculate_apic_map ends with kvm_make_scan_ioapic_request
    this.opts.onRebuilt?.();
  }

  private rebuild(): void {
    const all = this.lapics();
    let maxId = 255;
    for (const a of all) if (a.hwEnabled && a.x2apicId > maxId) maxId = a.x2apicId;
    this.maxApicId = maxId;
    const phys = new Array<KvmLapic | undefined>(maxId + 1);
    this.flat = new Array<KvmLapic | undefined>(8);
    this.cluster = [];
    for (let i = 0; i < 16; i++) this.cluster.push(new Array<KvmLapic | undefined>(4));
    this.logicalMode = 'sw-disabled';
    const x2fmt = this.opts.x2apicFormat();
    for (const a of all) {
      if (!a.hwEnabled) continue;
      // kvm_recalculate_phys_map
      if (x2fmt) {
        if (a.x2apicMode || a.x2apicId > 0xff) phys[a.x2apicId] = a;
        if (!a.x2apicMode && phys[a.xapicId] === undefined) phys[a.xapicId] = a;
      } else {
        const pid = a.x2apicMode ? a.x2apicId : a.xapicId;
        if (phys[pid] !== undefined) {
          this.phys = null;
          this.logicalMode = 'map-disabled';
          return;
        }
        phys[pid] = a;
      }
      this.recalculateLogical(a, phys);
    }
    this.phys = phys;
  }

  private recalculateLogical(a: KvmLapic, phys: (KvmLapic | undefined)[]): void {
    if (this.logicalMode === 'map-disabled') return;
    if (!a.swEnabled) return;
    let ldr = a.getReg(APIC.LDR);
    if (ldr === 0) return;
    let mode: ApicLogicalMode;
    if (a.x2apicMode) mode = 'x2apic';
    else {
      ldr = ldr >>> 24;
      mode = a.getReg(APIC.DFR) === APIC_DFR_FLAT ? 'xapic-flat' : 'xapic-cluster';
    }
    if (this.logicalMode === 'sw-disabled') this.logicalMode = mode;
    else if (this.logicalMode !== mode) {
      this.logicalMode = 'map-disabled';
      return;
    }
    if (a.x2apicMode) return;
    const dest = this.logicalDest(ldr, phys);
    if (dest === null) {
      this.logicalMode = 'map-disabled';
      return;
    }
    const { cluster, mask } = dest;
    if (mask === 0) return;
    const bit = 31 - Math.clz32(mask & -mask);
    if ((mask & (mask - 1)) !== 0 || cluster[bit] !== undefined) this.logicalMode = 'map-disabled';
    else cluster[bit] = a;
  }

  /** kvm_apic_map_get_logical_dest */
  private logicalDest(destId: number, phys: (KvmLapic | undefined)[]): { cluster: (KvmLapic | undefined)[]; mask: number; offset: number } | null {
    switch (this.logicalMode) {
      case 'sw-disabled':
        return { cluster: this.flat, mask: 0, offset: 0 };
      case 'x2apic': {
        const offset = (destId >>> 16) * 16;
        if (offset <= this.maxApicId) {
          const size = Math.min(this.maxApicId - offset + 1, 16);
          return { cluster: phys, mask: destId & (0xffff >> (16 - size)), offset };
        }
        return { cluster: phys, mask: 0, offset: 0 };
      }
      case 'xapic-flat':
        return { cluster: this.flat, mask: destId & 0xff, offset: 0 };
      case 'xapic-cluster':
        return { cluster: this.cluster[(destId >> 4) & 0xf]!, mask: destId & 0xf, offset: 0 };
      default:
        return null;
    }
  }

  private isBroadcastDest(src: KvmLapic | null, irq: LapicIrq): boolean {
    if (this.opts.x2apicBroadcastQuirkDisabled()) {
      if (irq.destId === 0xff && this.logicalMode !== 'x2apic') return true;
      return irq.destId === X2APIC_BROADCAST;
    }
    const x2ipi = src !== null && src.x2apicMode;
    return irq.destId === (x2ipi ? X2APIC_BROADCAST : 0xff);
  }

  /**
   * kvm_irq_delivery_to_apic_fast: returns the delivery count, or FAST_PATH_MISS when the
   * slow path must decide (shorthands, broadcast, disabled map).
   */
  deliverFast(src: KvmLapic | null, irq: LapicIrq, destMap?: DestMap): number {
    if (irq.shorthand === 1) {
      if (src === null) return 0;
      return src.setIrq(irq, destMap);
    }
    this.recalculate();
    if (irq.shorthand !== 0) return FAST_PATH_MISS;
    const phys = this.phys;
    if (phys === null || this.isBroadcastDest(src, irq)) return FAST_PATH_MISS;
    if (!irq.logical) {
      if (irq.destId > this.maxApicId) return 0;
      const a = phys[irq.destId];
      return a === undefined ? 0 : a.setIrq(irq, destMap);
    }
    const dest = this.logicalDest(irq.destId, phys);
    if (dest === null) return FAST_PATH_MISS;
    const { cluster, offset } = dest;
    let mask = dest.mask;
    if (lowestPriorityDelivery(irq)) {
      if (this.opts.vectorHashing) {
        if (mask === 0) return 0;
        const idx = vectorToIndex(irq.vector, popcount(mask), mask);
        if (cluster[offset + idx] === undefined) return 0;
        mask = 1 << idx;
      } else {
        let lowest = -1;
        for (let i = 0; i < 16; i++) {
          if (!(mask & (1 << i))) continue;
          const c = cluster[offset + i];
          if (c === undefined) continue;
          if (lowest < 0 || c.arbPrio < cluster[offset + lowest]!.arbPrio) lowest = i;
        }
        mask = lowest >= 0 ? 1 << lowest : 0;
      }
    }
    let r = 0;
    for (let i = 0; i < 16 && mask !== 0; i++) {
      if (!(mask & (1 << i))) continue;
      mask &= ~(1 << i);
      const c = cluster[offset + i];
      if (c !== undefined) r += c.setIrq(irq, destMap);
    }
    return r;
  }

  /**
   * kvm_apic_map_get_dest_lapic for a FIXED interrupt without a shorthand, as
   * kvm_bitmap_or_dest_vcpus uses it: the LAPICs the optimised map names, or null when the
   * caller must walk every vCPU (broadcast, disabled map, a logical mode the map cannot index).
   */
  fixedDestinations(irq: LapicIrq): KvmLapic[] | null {
    this.recalculate();
    const phys = this.phys;
    if (phys === null || this.isBroadcastDest(null, irq)) return null;
    if (!irq.logical) {
      if (irq.destId > this.maxApicId) return [];
      const a = phys[irq.destId];
      return a === undefined ? [] : [a];
    }
    const dest = this.logicalDest(irq.destId, phys);
    if (dest === null) return null;
    const out: KvmLapic[] = [];
    for (let i = 0; i < 16; i++) {
      if (!(dest.mask & (1 << i))) continue;
      const c = dest.cluster[dest.offset + i];
      if (c !== undefined) out.push(c);
    }
    return out;
  }

  /** kvm_apic_match_dest */
  static matchDest(target: KvmLapic, source: KvmLapic | null, shorthand: number, dest: number, logical: boolean, quirkDisabled: boolean): boolean {
    let mda = dest >>> 0;
    if (!quirkDisabled && source === null && mda === 0xff && target.x2apicMode) mda = X2APIC_BROADCAST;
    switch (shorthand) {
      case 0:
        return logical ? matchLogical(target, mda) : matchPhysical(target, mda);
      case 1:
        return target === source;
      case 2:
        return true;
      case 3:
        return target !== source;
      default:
        return false;
    }
  }

  /** The slow path of kvm_irq_delivery_to_apic: every vCPU with a present APIC. */
  deliverSlow(src: KvmLapic | null, irq: LapicIrq, destMap?: DestMap): number {
    let r = -1;
    const quirk = this.opts.x2apicBroadcastQuirkDisabled();
    if (!irq.logical && irq.destId === 0xff && lowestPriorityDelivery(irq)) {
      // KVM rewrites only the delivery mode: an MSI's redirection hint keeps it lowest priority.
      irq = { ...irq, deliveryMode: 0 };
    }
    const lowestPrio = lowestPriorityDelivery(irq);
    let lowest: KvmLapic | undefined;
    let candidates: KvmLapic[] | undefined;
    for (const a of this.lapics()) {
      if (!a.hwEnabled) continue;
      if (!ApicMap.matchDest(a, src, irq.shorthand, irq.destId, irq.logical, quirk)) continue;
      if (!lowestPrio) {
        if (r < 0) r = 0;
        r += a.setIrq(irq, destMap, 'kvm_irq_delivery_to_apic');
      } else if (a.swEnabled) {
        if (!this.opts.vectorHashing) {
          if (lowest === undefined || a.arbPrio < lowest.arbPrio) lowest = a;
        } else {
          (candidates ??= []).push(a);
        }
      }
    }
    if (candidates !== undefined) lowest = candidates[irq.vector % candidates.length];
    if (lowest !== undefined) r = lowest.setIrq(irq, destMap, 'kvm_irq_delivery_to_apic');
    return r;
  }

  /**
   * The vCPU ids an interrupt reaches (kvm_intr_is_single_vcpu / kvm_bitmap_or_dest_vcpus),
   * without delivering it. Lowest priority picks the vector-hashing target.
   */
  destinations(irq: LapicIrq): KvmLapic[] {
    const quirk = this.opts.x2apicBroadcastQuirkDisabled();
    const matches = this.lapics().filter((a) => a.hwEnabled && ApicMap.matchDest(a, null, irq.shorthand, irq.destId, irq.logical, quirk));
    const lowest = !irq.logical && irq.destId === 0xff ? irq.msiRedirHint : lowestPriorityDelivery(irq);
    if (!lowest) return matches;
    const enabled = matches.filter((a) => a.swEnabled);
    return enabled.length === 0 ? [] : [enabled[irq.vector % enabled.length]!];
  }
}

function matchPhysical(a: KvmLapic, mda: number): boolean {
  const bcast = a.x2apicMode ? X2APIC_BROADCAST : 0xff;
  if (mda === bcast) return true;
  if (a.x2apicMode || mda > 0xff) return mda === a.x2apicId;
  return mda === a.xapicId;
}

function matchLogical(a: KvmLapic, mda: number): boolean {
  const bcast = a.x2apicMode ? X2APIC_BROADCAST : 0xff;
  if (mda === bcast) return true;
  let ldr = a.getReg(APIC.LDR);
  if (a.x2apicMode) return ldr >>> 16 === mda >>> 16 && (ldr & mda & 0xffff) !== 0;
  ldr = ldr >>> 24;
  switch (a.getReg(APIC.DFR)) {
    case APIC_DFR_FLAT:
      return (ldr & mda) !== 0;
    case APIC_DFR_CLUSTER:
      return ldr >> 4 === mda >> 4 && (ldr & mda & 0xf) !== 0;
    default:
      return false;
  }
}

function popcount(x: number): number {
  let n = 0;
  while (x !== 0) {
    x &= x - 1;
    n++;
  }
  return n;
}

/** kvm_vector_to_index: the (vector mod n)-th set bit of `mask`. */
function vectorToIndex(vector: number, n: number, mask: number): number {
  const mod = vector % n;
  let idx = -1;
  for (let i = 0; i <= mod; i++) {
    idx++;
    while (!(mask & (1 << idx))) idx++;
  }
  return idx;
}
