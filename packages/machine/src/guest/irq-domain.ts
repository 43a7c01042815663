import type { MsiMessage } from '@virq/core';
import { MachineErrorCode, machineError } from '../errors.js';

/** What runs when a vCPU takes a vector (the guest's irq handler). */
export type GuestIrqHandler = (vcpuId: number, vector: number) => void;

interface Slot {
  /** A label for reports (`net0-msix1`); not a function name. */
  name: string;
  /** The guest kernel's entry function for this vector (what the trace shows). */
  fn: string;
  handler: GuestIrqHandler;
  /** Time of the oldest device event not yet handled (latency start). */
  pendingSince: number | undefined;
}

/** Linux x86's first/last device vectors (FIRST_EXTERNAL_VECTOR 0x20 + legacy 0x30..; below the system vectors). */
const FIRST_DEVICE_VECTOR = 0x31;
const LAST_DEVICE_VECTOR = 0xeb;

/**
 * The guest kernel's view of its interrupt vectors: which handler runs for (vCPU, vector),
 * how an MSI for it is composed (x86: fixed, edge, physical destination = the vCPU's APIC
 * id), and when the device event a handler answers was raised — so the machine measures
 * device event → guest handler latency at the handler.
 */
export class GuestIrqDomain {
  private readonly slots = new Map<number, Slot>();
  private readonly nextVector = new Map<number, number>();
  /** Called with each measured latency (ns). */
  onLatency: ((ns: number, name: string) => void) | undefined;
  /** Called whenever a device raises the interrupt behind (vCPU, vector or INTID). */
  onRaised: ((vcpuId: number, vector: number, now: number) => void) | undefined;

  /** (vCPU, vector or INTID) → one number; INTIDs go up to 2^20 (GIC LPIs). */
  private key(vcpuId: number, vector: number): number {
    return vcpuId * 1_048_576 + vector;
  }

  private readonly msis = new Map<string, { vcpu: number; vector: number }>();

  private static msiKey(msg: { addressHi: number; addressLo: number; data: number; requesterId?: number | undefined }): string {
    return `${msg.addressHi}:${msg.addressLo}:${msg.data}:${msg.requesterId ?? -1}`;
  }

  /** Records that `msg` lands as `vector` (or INTID) on `vcpuId`. */
  registerMsi(msg: MsiMessage, vcpuId: number, vector: number): MsiMessage {
    this.msis.set(GuestIrqDomain.msiKey(msg), { vcpu: vcpuId, vector });
    return msg;
  }

  /** A device sent `msg` now (latency starts for its vector). */
  raisedMsi(msg: MsiMessage, now: number): void {
    // The bus adds the requester id to a device's MSI; an x86 guest composes it without one.
    const t = this.msis.get(GuestIrqDomain.msiKey(msg)) ?? (msg.requesterId === undefined ? undefined : this.msis.get(GuestIrqDomain.msiKey({ ...msg, requesterId: undefined })));
    if (t !== undefined) this.raised(t.vcpu, t.vector, now);
  }

  /**
   * Allocates the next free x86 device vector on `vcpuId` for `handler`. `fn` is the guest
   * kernel's entry for it: `common_interrupt` for a device vector (Linux ≥ 5.8's IDT entry;
   * the driver's own handler below it is traced by the driver model), a `sysvec_*` for a
   * system vector.
   */
  allocate(vcpuId: number, name: string, handler: GuestIrqHandler, fn = 'common_interrupt'): number {
    const v = this.nextVector.get(vcpuId) ?? FIRST_DEVICE_VECTOR;
    if (v > LAST_DEVICE_VECTOR) throw machineError(MachineErrorCode.Unsupported, `vCPU ${vcpuId} has no free interrupt vector left for ${name}`);
    this.nextVector.set(vcpuId, v + 1);
    this.slots.set(this.key(vcpuId, v), { name, fn, handler, pendingSince: undefined });
    return v;
  }

  /** Registers a handler on a fixed vector (IOAPIC pins programmed by the guest). */
  bind(vcpuId: number, vector: number, name: string, handler: GuestIrqHandler, fn = name): void {
    this.slots.set(this.key(vcpuId, vector), { name, fn, handler, pendingSince: undefined });
  }

  /** The x86 MSI message for (vCPU with `apicId`, `vector`): 0xFEE0_0000 | dest << 12, fixed, edge. */
  static x86Msi(apicId: number, vector: number): MsiMessage {
    return { addressLo: (0xfee00000 | ((apicId & 0xff) << 12)) >>> 0, addressHi: 0, data: vector & 0xff };
  }

  /** A device raised the interrupt behind (vCPU, vector) at `now`. */
  raised(vcpuId: number, vector: number, now: number): void {
    this.onRaised?.(vcpuId, vector, now);
    const s = this.slots.get(this.key(vcpuId, vector));
    if (s !== undefined && s.pendingSince === undefined) s.pendingSince = now;
  }

  /** Runs the handler for a taken vector; returns false for a spurious one. */
  handle(vcpuId: number, vector: number, now: number): boolean {
    const s = this.slots.get(this.key(vcpuId, vector));
    if (s === undefined) return false;
    if (s.pendingSince !== undefined) {
      this.onLatency?.(now - s.pendingSince, s.name);
      s.pendingSince = undefined;
    }
    s.handler(vcpuId, vector);
    return true;
  }

  /**
   * Interrupts raised at or before `before` and still not handled: with coalescing allowed (a
   * raise while one is pending adds nothing), a slot pending that long is an interrupt the
   * machine lost.
   */
  pendingSince(before: number): Array<{ name: string; vcpu: number; vector: number; since: number }> {
    const out: Array<{ name: string; vcpu: number; vector: number; since: number }> = [];
    for (const [key, s] of this.slots) {
      if (s.pendingSince !== undefined && s.pendingSince <= before) out.push({ name: s.name, vcpu: Math.floor(key / 1_048_576), vector: key % 1_048_576, since: s.pendingSince });
    }
    return out;
  }

  nameOf(vcpuId: number, vector: number): string | undefined {
    return this.slots.get(this.key(vcpuId, vector))?.name;
  }

  /** The guest kernel function that takes (vCPU, vector). */
  fnOf(vcpuId: number, vector: number): string | undefined {
    return this.slots.get(this.key(vcpuId, vector))?.fn;
  }
}
