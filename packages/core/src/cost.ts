import { CoreErrorCode, VirqError } from './errors.js';

/**
 * Default costs of the steps virq models, in nanoseconds of virtual time. Cycle figures are
 * converted at a nominal 3.0 GHz. Each row cites where the number comes from (see
 * ../../shared/reference/FACTS.md §15); rows marked "est." are engineering estimates, meant
 * to be swept, not measurements. Override any of them per machine (`CostModel.with`).
 */
export const DEFAULT_COSTS = {
  // x86 world switch. KVM_RUN trivial-exit round trip ≈ 2,528–2,576 cycles: entry side ≈ 576,
  // VMRUN→#VMEXIT ≈ 1,344–1,376, exit side ≈ 576–656 (LKML 2020-12, SVM VMSAVE/VMLOAD thread).
  // Hardware share split evenly: exit ≈ 616+680 cycles, entry ≈ 576+680 cycles.
  vmExit: 430,
  vmEntry: 420,
  // Exit to QEMU userspace and back for a port read: ≈ 5,800 cycles (Bonzini 2016,
  // kvm-unit-tests inl_from_qemu), minus the in-kernel round trip above ≈ 3,250 cycles.
  exitToUserspace: 1080,
  // Instruction decode + emulation of an MMIO write that is not on the FAST_MMIO bus (est.;
  // Tsirkin 2014: with FAST_MMIO "MMIO eventfd essentially as fast as PIO").
  mmioEmulation: 300,
  // An ioctl's syscall entry/exit on a current x86 kernel with mitigations (est.).
  syscall: 150,
  // eventfd_signal with an inline wait-queue callback (FACTS §15.4/15.6 est. 100–300 ns).
  eventfdSignal: 200,
  // Waking a sleeping thread after an eventfd write (FACTS §15.6 est. 2–20 µs).
  threadWakeup: 5000,
  // Host context switch between threads on one CPU (est.).
  contextSwitch: 2000,
  // Host IPI between physical CPUs, send → handler (FACTS §15.6 est. 0.5–3 µs).
  hostIpi: 1000,
  // Posted-interrupt notification to a running vCPU: handled in guest mode, no exit
  // (FACTS §15.3/15.6 est. 0.2–1 µs).
  postedInterruptNotify: 500,
  // KVM's own work to accept an interrupt into a LAPIC (__apic_accept_irq, est.).
  lapicAccept: 40,
  // inject_pending_event → vmx_inject_irq: VMCS interruption-info write (est.).
  injectIrq: 60,
  // KVM emulating a trapped APIC register access: 2,384 cycles (Dall et al., ISCA 2016,
  // "interrupt-controller trap", KVM x86; unverified).
  apicAccessEmulation: 795,
  // Guest EOI with no exit (APICv virtual EOI, GIC virtual CPU interface): 50 cycles
  // (FACTS §15.6; ISCA 2016 "virtual IRQ completion" 71 cycles).
  guestEoiNoExit: 17,
  // Guest interrupt handler body (vring_interrupt/ISR work before EOI, est.).
  guestHandler: 500,
  // QEMU device emulation of one request in the main loop (est.).
  deviceEmulation: 1000,
  // Processing one descriptor chain in a backend (pop + copy 64 B + push, est.).
  ringChain: 50,
  // ARM: hypercall round trip, non-VHE 6,500 cycles (ISCA 2016, unverified) vs VHE ≈ 1,500
  // cycles (FACTS §15.6 est.).
  armExitNonVhe: 2167,
  armExitVhe: 500,
  // Writing one GIC list register on entry (ICH_LR<n>_EL2 msr, est.).
  gicListRegisterWrite: 10,
  // Guest acknowledge or EOI through the GIC virtual CPU interface: 71 cycles (ISCA 2016).
  gicVirtualAckEoi: 24,
  // ITS translation of one MSI (device table + ITT walk, cached, est.).
  itsTranslate: 100,
  // Direct vLPI to a resident vPE (FACTS §15.3/15.6 est. ≈ bare-metal LPI latency).
  vlpiDirect: 500,
} as const;

export type CostName = keyof typeof DEFAULT_COSTS;
export type CostTable = { readonly [K in CostName]: number };

/** Named per-operation costs in ns, overridable per machine. */
export class CostModel {
  readonly ns: CostTable;

  constructor(overrides: Partial<Record<string, number>> = {}) {
    const table: Record<string, number> = { ...DEFAULT_COSTS };
    for (const [name, v] of Object.entries(overrides)) {
      if (!(name in DEFAULT_COSTS)) {
        throw new VirqError(CoreErrorCode.CostUnknown, `unknown cost "${name}"; known costs: ${Object.keys(DEFAULT_COSTS).join(', ')}`, { details: { name } });
      }
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new VirqError(CoreErrorCode.CostInvalid, `cost "${name}" must be a finite number of ns ≥ 0, got ${String(v)}`, { details: { name, value: v } });
      }
      table[name] = v;
    }
    this.ns = Object.freeze(table) as CostTable;
  }

  get(name: CostName): number {
    return this.ns[name];
  }

  /** A copy with some costs changed. */
  with(overrides: Partial<Record<CostName, number>>): CostModel {
    return new CostModel({ ...this.ns, ...overrides });
  }
}
