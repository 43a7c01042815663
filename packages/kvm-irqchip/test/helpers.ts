import { createSimContext, TraceRecorder, type SimContext, type TraceEvent } from '@virq/core';
import { APIC, encodeRedirEntry, KvmVm, type KvmVmOptions, type RedirEntryJson } from '@virq/kvm-irqchip';

export function makeVm(options: Partial<KvmVmOptions> = {}): { ctx: SimContext; vm: KvmVm } {
  const ctx = createSimContext({ seed: 7 });
  const vm = new KvmVm(ctx, { nvcpus: 4, ...options });
  return { ctx, vm };
}

/** KVM_GET_LAPIC → patch → KVM_SET_LAPIC, as a VMM (or the golden harness) does it. */
export function patchLapic(vm: KvmVm, cpu: number, regs: Record<number, number>): void {
  const page = vm.getLapic(cpu);
  for (const [off, v] of Object.entries(regs)) page[Number(off) >> 2] = v >>> 0;
  vm.setLapic(cpu, page);
}

export function enableLapics(vm: KvmVm): void {
  for (let i = 0; i < vm.nvcpus; i++) patchLapic(vm, i, { [APIC.SPIV]: 0x1ff });
}

/** KVM_GET_IRQCHIP(IOAPIC) → replace entries → KVM_SET_IRQCHIP. */
export function setRedir(vm: KvmVm, entries: Record<number, Partial<RedirEntryJson>>, irr = 0): void {
  const lo = Array.from(vm.ioapic!.lo);
  const hi = Array.from(vm.ioapic!.hi);
  for (const [pin, e] of Object.entries(entries)) {
    const enc = encodeRedirEntry(e);
    lo[Number(pin)] = enc.lo;
    hi[Number(pin)] = enc.hi;
  }
  vm.setIrqchipIoapic({ irr, lo, hi });
}

export function record(ctx: SimContext): TraceRecorder<TraceEvent> {
  return new TraceRecorder(ctx.trace.events$);
}

/** Asserts that `expected` appears in `fns` in this order (other calls may sit in between). */
export function inOrder(fns: readonly string[], expected: readonly string[]): string[] {
  const missing: string[] = [];
  let i = 0;
  for (const e of expected) {
    const j = fns.indexOf(e, i);
    if (j < 0) missing.push(e);
    else i = j + 1;
  }
  return missing;
}
