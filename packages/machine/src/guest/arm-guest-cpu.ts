import type { Scheduler } from '@virq/core';
import type { ArmVcpu } from '@virq/arm-gic';
import type { CapturedWrite } from './guest-pci-access.js';

/**
 * One arm64 vCPU's guest kernel: driver code runs inside the vCPU's guest slots
 * (`guestRun`) and interrupt handlers (`onInterrupt`); every MMIO write it makes becomes a
 * real data-abort exit (`guestMmio` → DABT_LOW → ioeventfd or KVM_EXIT_MMIO to QEMU).
 */
export class ArmGuestCpu {
  /** Captured writes go straight to the vCPU as data aborts, in program order. */
  readonly capture = {
    push: (op: CapturedWrite): void => {
      if (op.op === 'mmio-read') this.vcpu.guestMmio({ addr: op.addr, len: op.len as 1 | 2 | 4 | 8, write: false, value: 0n, applied: true });
      if (op.op !== 'mmio-write') return; // arm64 has no port I/O
      this.vcpu.guestMmio({ addr: op.addr, len: op.len as 1 | 2 | 4 | 8, write: true, value: BigInt(op.value >>> 0) });
    },
  };
  private active = false;

  constructor(
    readonly vcpu: ArmVcpu,
    private readonly scheduler: Scheduler,
    private readonly current: { cpu: { capture: ArmGuestCpu['capture'] | undefined } | undefined },
  ) {}

  /** Runs `fn` as guest code with this vCPU's accesses captured. */
  runGuest(fn: () => void): void {
    const prev = this.current.cpu;
    this.current.cpu = this;
    this.active = true;
    try {
      fn();
    } finally {
      this.current.cpu = prev;
      this.active = false;
    }
  }

  /** Runs `fn` as guest code at or after `time` (when the guest next runs). */
  at(time: number, fn: () => void): void {
    this.scheduler.at(Math.max(time, this.scheduler.now), this.vcpu.actor, () => this.vcpu.guestRun(() => this.runGuest(fn)));
  }

  get running(): boolean {
    return this.active;
  }
}
