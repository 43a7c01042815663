import { VirqError, checkSnapshot, type SimContext, type Snapshot, type TraceChannel } from '@virq/core';
import { IrqBypassErrorCode } from './errors.js';
import type { HostCpus } from './host-cpus.js';
import type { InterruptRemapper, VcpuAffinityInfo } from './interrupt-remapper.js';
import type { PiDescriptor } from './pi-descriptor.js';
import type { IrqBypassPkgTraceEvent } from './trace-events.js';
import { decodeIrte, encodeIrte, type Irte, type IrteWords, type RemappedIrte } from './vtd-irte.js';

const INTEL_IR_SNAPSHOT = 'irqbypass.intel-ir';

export interface IntelIrEntryState {
  readonly index: number;
  /** The IRTE's four u32 words. */
  readonly words: readonly number[];
  /** The remapped entry restored when posting ends, as four words (null: none). */
  readonly host: readonly number[] | null;
}

export interface IntelIrState {
  readonly entries: readonly IntelIrEntryState[];
}

/** Resolves a posted-interrupt descriptor by host physical address (the IOMMU's DMA read). */
export interface PiDescriptorResolver {
  descriptorAt(address: number): { desc: PiDescriptor; vcpuId: number } | undefined;
}

/**
 * Intel VT-d interrupt remapping (drivers/iommu/intel/irq_remapping.c + the hardware):
 * a table of 128-bit IRTEs. Remapped entries send the host vector to the host CPU; posted
 * entries (written by `intel_ir_set_vcpu_affinity`) set the guest vector in the descriptor's
 * PIR and, when ON was clear and (URG or not SN), set ON and send the notification vector NV
 * to NDST — both read from the descriptor at that moment.
 */
export class IntelInterruptRemapper implements InterruptRemapper {
  readonly kind = 'intel-vtd' as const;
  private readonly table = new Map<number, IrteWords>();
  /** The remapped entry to go back to when posting ends (`ir_data->irte_entry`). */
  private readonly hostEntry = new Map<number, RemappedIrte>();
  private readonly targets = new Map<number, { vcpuId: number; vector: number }>();
  readonly trace: TraceChannel<IrqBypassPkgTraceEvent>;
  /** Counters: interrupts remapped to the host, posted, notifications sent, faults. */
  remapped = 0;
  posted = 0;
  notifications = 0;
  faults = 0;
  constructor(
    private readonly ctx: SimContext,
    private readonly cpus: HostCpus,
    private readonly pids: PiDescriptorResolver,
  ) {
    this.trace = ctx.trace.channel<IrqBypassPkgTraceEvent>('iommu');
  }

  setRemapped(index: number, hostVector: number, hostApicId: number, sourceId: number): void {
    const e: RemappedIrte = {
      mode: 'remapped',
      present: true,
      fpd: false,
      avail: 0,
      sid: sourceId & 0xffff,
      sq: 0,
      svt: 1, // verify requester id with SID/SQ
      destMode: 0,
      redirHint: false,
      triggerMode: 0,
      deliveryMode: 0,
      vector: hostVector,
      destId: this.cpus.x2apic ? hostApicId : (hostApicId & 0xff) << 8,
    };
    this.hostEntry.set(index, e);
    this.targets.delete(index);
    this.write(index, e, 'intel_irq_remapping_activate'); // alloc prepares the entry, activate writes it (modify_irte)
  }

  clear(index: number): void {
    this.table.delete(index);
    this.hostEntry.delete(index);
    this.targets.delete(index);
  }

  /** intel_ir_set_vcpu_affinity. */
  setVcpuAffinity(index: number, info: VcpuAffinityInfo | null): void {
    const host = this.hostEntry.get(index);
    if (host === undefined) {
      throw new VirqError(IrqBypassErrorCode.IrteInvalid, `IRTE ${index} is not allocated`, { errno: 'EINVAL' });
    }
    if (info === null) {
      this.targets.delete(index);
      this.write(index, host, 'intel_ir_set_vcpu_affinity');
      return;
    }
    if (info.kind !== 'vmx') {
      throw new VirqError(IrqBypassErrorCode.ConfigInvalid, 'an Intel VT-d IOMMU cannot take AMD GA-mode posting information; configure the AVIC consumer with the AMD IOMMU', { errno: 'EINVAL' });
    }
    const owner = this.pids.descriptorAt(info.piDescAddr);
    if (owner === undefined) {
      throw new VirqError(IrqBypassErrorCode.PiDescriptorUnknown, `no posted-interrupt descriptor at 0x${info.piDescAddr.toString(16)}`, { errno: 'EINVAL' });
    }
    const e: Irte = { mode: 'posted', present: true, fpd: host.fpd, avail: host.avail, sid: host.sid, sq: host.sq, svt: host.svt, urgent: false, vector: info.vector, pda: info.piDescAddr };
    this.targets.set(index, { vcpuId: owner.vcpuId, vector: info.vector });
    this.write(index, e, 'intel_ir_set_vcpu_affinity');
  }

  handleMsi(index: number): void {
    const w = this.table.get(index);
    if (w === undefined || (w[0] & 1) === 0) {
      this.faults++;
      if (this.trace.on) this.trace.emit('iommu.fault', 'hw:vtd_interrupt_remapping_fault', undefined, { index, reason: 'irte-not-present' });
      return;
    }
    const e = decodeIrte(w);
    if (e.mode === 'remapped') {
      this.remapped++;
      const cpu = this.cpus.cpuOfApicId(this.cpus.x2apic ? e.destId : (e.destId >>> 8) & 0xff);
      if (this.trace.on) this.trace.emit('iommu.remap', 'hw:vtd_remap_interrupt', undefined, { index, cpu, vector: e.vector });
      // Interrupt message → host CPU → handler entry (FACTS §15.6: host interrupt delivery ≈ 1 µs).
      this.cpus.raise(cpu, e.vector, this.ctx.costs.ns.hostIpi);
      return;
    }
    const owner = this.pids.descriptorAt(e.pda);
    if (owner === undefined) {
      this.faults++;
      if (this.trace.on) this.trace.emit('iommu.fault', 'hw:vtd_interrupt_remapping_fault', undefined, { index, reason: 'pda-unmapped' });
      return;
    }
    this.posted++;
    const pid = owner.desc;
    pid.testAndSetPir(e.vector);
    let notify = false;
    if (!pid.on && (e.urgent || !pid.sn)) {
      pid.testAndSetOn();
      notify = true;
    }
    if (this.trace.on) this.trace.emit('iommu.post', 'hw:vtd_post_interrupt', undefined, { index, vcpu: owner.vcpuId, vector: e.vector, on: pid.on, sn: pid.sn, notify });
    if (notify) {
      this.notifications++;
      const ndst = pid.ndst;
      const cpu = this.cpus.cpuOfApicId(this.cpus.x2apic ? ndst : (ndst >>> 8) & 0xff);
      // Notification to a CPU in guest mode is handled without an exit (FACTS §15.6: 0.2–1 µs).
      this.cpus.raise(cpu, pid.nv, this.ctx.costs.ns.postedInterruptNotify);
    }
  }

  modeOf(index: number): 'remapped' | 'posted' | 'absent' {
    const w = this.table.get(index);
    if (w === undefined) return 'absent';
    return (w[0] & (1 << 15)) !== 0 ? 'posted' : 'remapped';
  }

  postedTarget(index: number): { vcpuId: number; vector: number } | undefined {
    return this.targets.get(index);
  }

  /** The raw entry (four u32 words). */
  irte(index: number): IrteWords | undefined {
    return this.table.get(index);
  }

  /** Versioned state: the raw table and, per entry, the remapped entry posting falls back to. */
  snapshot(): Snapshot<IntelIrState> {
    const entries: IntelIrEntryState[] = [];
    for (const [index, words] of this.table) {
      const host = this.hostEntry.get(index);
      entries.push({ index, words: [...words], host: host === undefined ? null : [...encodeIrte(host)] });
    }
    return { type: INTEL_IR_SNAPSHOT, version: 1, state: { entries: entries.sort((a, b) => a.index - b.index) } };
  }

  restore(snapshot: Snapshot<IntelIrState>): void {
    const st = checkSnapshot(snapshot, INTEL_IR_SNAPSHOT, 1);
    this.table.clear();
    this.hostEntry.clear();
    this.targets.clear();
    for (const e of st.entries) {
      const words = [e.words[0]!, e.words[1]!, e.words[2]!, e.words[3]!] as const;
      const decoded = decodeIrte(words);
      this.table.set(e.index, words);
      if (e.host !== null) {
        const h = decodeIrte([e.host[0]!, e.host[1]!, e.host[2]!, e.host[3]!]);
        if (h.mode !== 'remapped') throw new VirqError(IrqBypassErrorCode.IrteInvalid, `snapshot entry ${e.index}: the host fallback entry must be in remapped format`, { errno: 'EINVAL' });
        this.hostEntry.set(e.index, h);
      }
      if (decoded.mode === 'posted') {
        const owner = this.pids.descriptorAt(decoded.pda);
        if (owner !== undefined) this.targets.set(e.index, { vcpuId: owner.vcpuId, vector: decoded.vector });
      }
    }
  }

  private write(index: number, e: Irte, caller: string): void {
    const w = encodeIrte(e);
    this.table.set(index, w);
    if (this.trace.on) this.trace.emit('iommu.irte_write', 'modify_irte', caller, { index, mode: e.mode, vector: e.vector });
  }
}
