/** VMX basic exit reasons virq models (SDM Appendix C names, as `kvm_exit` prints them). */
export type ExitReason =
  | 'EXTERNAL_INTERRUPT'
  | 'PENDING_INTERRUPT'
  | 'NMI_WINDOW'
  | 'IO_INSTRUCTION'
  | 'HLT'
  | 'MSR_WRITE'
  | 'APIC_ACCESS'
  | 'EOI_INDUCED'
  | 'EPT_MISCONFIG'
  | 'EPT_VIOLATION'
  | 'PREEMPTION_TIMER';

const EXIT_REASONS: readonly ExitReason[] = ['EXTERNAL_INTERRUPT', 'PENDING_INTERRUPT', 'NMI_WINDOW', 'IO_INSTRUCTION', 'HLT', 'MSR_WRITE', 'APIC_ACCESS', 'EOI_INDUCED', 'EPT_MISCONFIG', 'EPT_VIOLATION', 'PREEMPTION_TIMER'];

/** The reason's slot in EXIT_REASONS (a switch on interned strings: no keyed property lookup on the exit path). */
function exitReasonIndex(r: ExitReason): number {
  switch (r) {
    case 'EXTERNAL_INTERRUPT':
      return 0;
    case 'PENDING_INTERRUPT':
      return 1;
    case 'NMI_WINDOW':
      return 2;
    case 'IO_INSTRUCTION':
      return 3;
    case 'HLT':
      return 4;
    case 'MSR_WRITE':
      return 5;
    case 'APIC_ACCESS':
      return 6;
    case 'EOI_INDUCED':
      return 7;
    case 'EPT_MISCONFIG':
      return 8;
    case 'EPT_VIOLATION':
      return 9;
    case 'PREEMPTION_TIMER':
      return 10;
    default: {
      const unknown: never = r; // a reason added to ExitReason needs its slot here
      return unknown;
    }
  }
}

/** A vCPU's VM exits by VMX reason (kvm_stat's exits, split by `kvm_exit`'s reason). */
export class VmxExitCounts {
  private readonly counts = new Float64Array(EXIT_REASONS.length);
  /** Reasons in the order they first occurred (what `byReason` lists them in). */
  private readonly order: number[] = [];

  count(reason: ExitReason): void {
    const i = exitReasonIndex(reason);
    if (this.counts[i]++ === 0) this.order.push(i);
  }

  /** A fresh map of the counts, reasons in the order they first occurred. */
  byReason(): Map<ExitReason, number> {
    const m = new Map<ExitReason, number>();
    for (const i of this.order) m.set(EXIT_REASONS[i]!, this.counts[i]!);
    return m;
  }
}
