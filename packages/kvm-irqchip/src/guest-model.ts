/**
 * What guest code does on a vCPU, one operation at a time. A machine or a guest-driver
 * model plugs a `GuestModel` into a vCPU; the vCPU turns each operation into what the CPU
 * and KVM do for it (a VM exit with its real reason, an in-kernel device access, an exit to
 * userspace), charging the CostModel's figures.
 */
export type GuestOp =
  /** Run guest code for `ns` (interruptible by a kick / external interrupt). */
  | { readonly op: 'compute'; readonly ns: number; readonly fn?: string }
  | { readonly op: 'mmio-write'; readonly addr: number; readonly len: number; readonly value: number; readonly fn?: string }
  /**
   * A register read. `applied`: guest code already made the read (it needed the value at once)
   * and the device acted on it then; the op is the access's VM exit, taken in program order,
   * which does not reach the device a second time.
   */
  | { readonly op: 'mmio-read'; readonly addr: number; readonly len: number; readonly done?: (value: number) => void; readonly fn?: string; readonly applied?: boolean }
  /**
   * A port write. `applied`: guest code already made the write to a device QEMU emulates (in
   * program order with its reads, which it answers at once); the op is the access's VM exit,
   * which does not reach the device a second time.
   */
  | { readonly op: 'pio-write'; readonly port: number; readonly len: number; readonly value: number; readonly fn?: string; readonly applied?: boolean }
  | { readonly op: 'pio-read'; readonly port: number; readonly len: number; readonly done?: (value: number) => void; readonly fn?: string; readonly applied?: boolean }
  | { readonly op: 'msr-write'; readonly index: number; readonly value: bigint }
  /** The local APIC EOI (xAPIC MMIO write of 0 to 0xFEE000B0, or the x2APIC EOI MSR). */
  | { readonly op: 'eoi' }
  | { readonly op: 'hlt' }
  | { readonly op: 'sti' }
  | { readonly op: 'cli' }
  /** Leave KVM_RUN (an exit to userspace that ends the run loop). */
  | { readonly op: 'stop' }
  /**
   * Guest code that runs at this point on the vCPU's own thread, taking no virtual time (its
   * cost is what it returns: the operations it performs, run next, in order).
   */
  | { readonly op: 'call'; readonly run: () => readonly GuestOp[] | void };

export interface GuestModel {
  /** The guest's next operation, called whenever the previous one finished. */
  next(vcpuId: number): GuestOp;
  /**
   * The guest took `vector` (interrupt gate: IF is now 0 until the handler's IRET). Returns
   * the handler's operations; the default is the handler body (`guestHandler` cost) then EOI.
   */
  interrupt?(vcpuId: number, vector: number): readonly GuestOp[];
}

/** A guest that halts whenever it has nothing to do and EOIs every interrupt (the idle loop). */
export class IdleGuest implements GuestModel {
  /** Interrupts taken, by vector. */
  readonly taken = new Map<number, number>();
  constructor(private readonly handlerNs: number) {}
  next(): GuestOp {
    return { op: 'hlt' };
  }
  interrupt(_vcpuId: number, vector: number): readonly GuestOp[] {
    this.taken.set(vector, (this.taken.get(vector) ?? 0) + 1);
    return [{ op: 'compute', ns: this.handlerNs, fn: 'common_interrupt' }, { op: 'eoi' }];
  }
}
