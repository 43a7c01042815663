import { createSimContext, TraceRecorder, Tokens, VirqError, EventFd, type SimContext, type TraceEvent } from '@virq/core';
import { APIC_SV_ENABLE, IdleGuest, KvmIrqchipTokens, KvmVm, QemuPcIrqchip, registerQemuUserspaceIrqchip, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { inOrder } from './helpers.js';

/** A guest running a fixed list of operations, then halting (IF as the list leaves it). */
class ScriptGuest implements GuestModel {
  readonly taken: Array<{ vector: number; at: number }> = [];
  constructor(
    private readonly ops: GuestOp[],
    private readonly ctx: SimContext,
  ) {}
  next(): GuestOp {
    return this.ops.shift() ?? { op: 'hlt' };
  }
  interrupt(_v: number, vector: number): readonly GuestOp[] {
    this.taken.push({ vector, at: this.ctx.scheduler.now });
    return [{ op: 'compute', ns: 500, fn: 'common_interrupt' }, { op: 'eoi' }];
  }
}

function setup(nvcpus = 1): { ctx: SimContext; vm: KvmVm; qemu: QemuPcIrqchip; rec: TraceRecorder<TraceEvent> } {
  const ctx = createSimContext({ seed: 3 });
  const rec = new TraceRecorder(ctx.trace.events$);
  const vm = new KvmVm(ctx, { nvcpus, irqchip: false });
  const qemu = new QemuPcIrqchip(ctx, vm);
  vm.onUserspaceExit = qemu.exitHandler();
  // The guest kernel software-enables its APIC (SVR) — a register write QEMU's APIC takes.
  // (set here as the guest's own SVR write leaves it, without the kick a write from another thread makes)
  for (const c of qemu.cpus) c.apic.spuriousVec = APIC_SV_ENABLE | 0xff;
  return { ctx, vm, qemu, rec };
}

/** An MSI for APIC `dest`, `vector` (fixed, edge), sent by a device thread at `t`. */
function msiAt(ctx: SimContext, qemu: QemuPcIrqchip, t: number, dest: number, vector: number): void {
  const dev = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  ctx.scheduler.at(t, dev, () => void qemu.deliverMsi({ addressLo: 0xfee00000 | (dest << 12), addressHi: 0, data: vector }));
}

describe('KVM without an in-kernel irqchip (the !lapic_in_kernel paths of arch/x86/kvm/x86.c)', () => {
  it('KVM_IRQFD is EINVAL (kvm_arch_irqfd_allowed needs irqchip_in_kernel); KVM_IOEVENTFD still works', () => {
    const { ctx, vm } = setup();
    expect(vm.irqfdCapable).toBe(false);
    const fd = new EventFd(ctx.scheduler);
    let err: unknown;
    try {
      vm.irqfd({ fd, gsi: 5 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VirqError);
    expect((err as VirqError).errno).toBe('EINVAL');
    const kick = new EventFd(ctx.scheduler);
    vm.ioeventfd({ fd: kick, addr: 0xfe000000, len: 2, space: 'mmio' });
    expect(vm.guestAccess(0, 'mmio_write', 0xfe000000, 1, 2).toUserspace).toBe(false);
    expect(kick.read()).toBe(1n);
  });

  it('the other irqchip ioctls fail without KVM_CREATE_IRQCHIP: KVM_SIGNAL_MSI and KVM_SET_GSI_ROUTING (EINVAL), KVM_IRQ_LINE (ENXIO)', () => {
    const { vm } = setup();
    const errno = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return (e as VirqError).errno;
      }
      return undefined;
    };
    expect(errno(() => vm.signalMsi({ addressLo: 0xfee00000, addressHi: 0, data: 0x41 }))).toBe('EINVAL');
    expect(errno(() => vm.setGsiRouting([]))).toBe('EINVAL');
    expect(errno(() => vm.irqLine(4, true))).toBe('ENXIO');
    expect(() => new QemuPcIrqchip(createSimContext({ seed: 1 }), new KvmVm(createSimContext({ seed: 1 }), { nvcpus: 1 }))).toThrow(/irqchip: false/);
  });

  it('registerQemuUserspaceIrqchip puts QEMU\'s APIC bus behind MsiSink and gsi_handler behind IrqPins', () => {
    const ctx = createSimContext({ seed: 1 });
    const vm = new KvmVm(ctx, { nvcpus: 2, irqchip: false });
    const reg = new Map<symbol, unknown>();
    const q = registerQemuUserspaceIrqchip({ registerInstance: (t, i) => reg.set(t, i) }, ctx, vm);
    expect(reg.get(Tokens.MsiSink as symbol)).toBe(q);
    expect(reg.get(Tokens.IrqPins as symbol)).toBe(q);
    expect(reg.get(KvmIrqchipTokens.QemuPcIrqchip)).toBe(q);
    q.cpu(1).apic.spuriousVec = APIC_SV_ENABLE | 0xff;
    expect(q.deliverMsi({ addressLo: 0xfee01000, addressHi: 0, data: 0x44 })).toBe(1);
    expect(q.cpu(1).apic.highestIrr()).toBe(0x44);
    // GSI 10 through the IOAPIC (entry: vector 0x52, edge, APIC 1)
    q.ioapic.memWrite(0xfec00000, 0x10 + 2 * 10 + 1);
    q.ioapic.memWrite(0xfec00010, 1 << 24);
    q.ioapic.memWrite(0xfec00000, 0x10 + 2 * 10);
    q.ioapic.memWrite(0xfec00010, 0x52);
    q.pin(10).setLevel(true);
    expect(q.cpu(1).apic.highestIrr()).toBe(0x52);
  });

  it('KVM_INTERRUPT: EINVAL for a vector ≥ 256, ENXIO with the in-kernel PIC, queued otherwise', () => {
    const { vm } = setup();
    expect(vm.vcpu(0)!.kvmInterrupt(256)).toBe(-22);
    expect(vm.vcpu(0)!.kvmInterrupt(0x41)).toBe(0);
    expect(vm.vcpu(0)!.queuedInterrupt).toBe(0x41);
    expect(vm.vcpu(0)!.readyForInterruptInjection).toBe(false);
    const inKernel = new KvmVm(createSimContext({ seed: 1 }), { nvcpus: 1 });
    expect(inKernel.vcpu(0)!.kvmInterrupt(0x41)).toBe(-6);
  });

  it('an MSI to a halted vCPU: KVM_EXIT_HLT parks the thread, qemu_cpu_kick wakes it, KVM_INTERRUPT injects, the EOI exits as MMIO', () => {
    const { ctx, vm, qemu, rec } = setup();
    const guest = new IdleGuest(500);
    vm.vcpu(0)!.setGuest(guest);
    vm.vcpu(0)!.run();
    msiAt(ctx, qemu, 50_000, 0, 0x41);
    ctx.scheduler.runUntil(200_000);
    const v = vm.vcpu(0)!;
    expect(guest.taken.get(0x41)).toBe(1);
    expect(v.userspaceExits.get('KVM_EXIT_HLT')).toBe(2);
    expect(v.userspaceExits.get('KVM_EXIT_MMIO')).toBe(1);
    expect(v.kvmInterrupts).toBe(1);
    expect(qemu.cpu(0).parks).toBe(2);
    // the in-kernel LAPIC is not used at all
    expect(v.exits.get('APIC_ACCESS')).toBeUndefined();
    expect(qemu.cpu(0).apic.eois).toBe(1);
    const fns = rec.functions();
    expect(inOrder(fns, [
      'kvm_userspace_exit', 'kvm_handle_halt', 'qemu_wait_io_event',
      'apic_mem_write', 'apic_send_msi', 'apic_deliver_irq', 'apic_bus_deliver', 'apic_set_irq', 'apic_update_irq', 'cpu_interrupt', 'qemu_cpu_kick', 'cpus_kick_thread',
      'apic_update_irq', 'cpu_interrupt', 'apic_get_interrupt', 'kvm_vcpu_ioctl', 'kvm_vcpu_ioctl_interrupt', 'vmx_inject_irq', 'hw:guest_interrupt',
      'native_apic_mem_eoi', 'kvm_exit', 'kvm_userspace_exit', 'apic_eoi',
    ])).toEqual([]);
  });

  it('an interrupt raised while IF=0 is not injected until the window opens, with exactly one IRQ_WINDOW_OPEN exit', () => {
    const { ctx, vm, qemu } = setup();
    const guest = new ScriptGuest([{ op: 'cli' }, { op: 'compute', ns: 30_000 }, { op: 'sti' }, { op: 'compute', ns: 30_000 }], ctx);
    const v = vm.vcpu(0)!;
    v.setGuest(guest);
    v.run();
    msiAt(ctx, qemu, 5_000, 0, 0x51);
    ctx.scheduler.runUntil(200_000);
    expect(guest.taken.map((x) => x.vector)).toEqual([0x51]);
    // The STI is at ≥ 30 µs of guest time: nothing reaches the guest before it.
    expect(guest.taken[0]!.at).toBeGreaterThan(30_000);
    expect(v.userspaceExits.get('KVM_EXIT_IRQ_WINDOW_OPEN')).toBe(1);
    // The kick reached a vCPU in guest mode: EXTERNAL_INTERRUPT, then KVM_EXIT_INTR to QEMU.
    expect(v.userspaceExits.get('KVM_EXIT_INTR')).toBe(1);
    expect(v.exits.get('PENDING_INTERRUPT')).toBe(1);
    expect(v.kvmInterrupts).toBe(1);
  });

  it('two interrupts pending at once: the higher vector first, the second through an interrupt window after the first handler', () => {
    const { ctx, vm, qemu } = setup();
    const guest = new ScriptGuest([{ op: 'cli' }, { op: 'compute', ns: 20_000 }, { op: 'sti' }, { op: 'compute', ns: 50_000 }], ctx);
    const v = vm.vcpu(0)!;
    v.setGuest(guest);
    v.run();
    msiAt(ctx, qemu, 2_000, 0, 0x41);
    msiAt(ctx, qemu, 3_000, 0, 0x91);
    ctx.scheduler.runUntil(300_000);
    expect(guest.taken.map((x) => x.vector)).toEqual([0x91, 0x41]);
    expect(v.kvmInterrupts).toBe(2);
    expect(v.userspaceExits.get('KVM_EXIT_IRQ_WINDOW_OPEN')).toBe(2);
  });

  it('a halted vCPU thread wakes only on a kick: with IF=0 (cli; hlt) the interrupt wakes it and it parks again', () => {
    const { ctx, vm, qemu } = setup();
    const guest = new ScriptGuest([{ op: 'cli' }, { op: 'hlt' }], ctx);
    const v = vm.vcpu(0)!;
    v.setGuest(guest);
    v.run();
    ctx.scheduler.runUntil(100_000);
    expect(v.blocked).toBe(true);
    expect(qemu.cpu(0).parks).toBe(1);
    // An APIC change with no kick (same thread semantics aside) leaves it parked:
    qemu.cpu(0).apic.irr[2] = 1 << 1; // vector 0x41 in IRR behind QEMU's back
    ctx.scheduler.runUntil(300_000);
    expect(v.blocked).toBe(true);
    expect(guest.taken).toEqual([]);
    // The kick from a device thread wakes it; IF=0 keeps it halted.
    msiAt(ctx, qemu, 400_000, 0, 0x61);
    ctx.scheduler.runUntil(600_000);
    expect(qemu.cpu(0).parks).toBe(2);
    expect(v.blocked).toBe(true);
    expect(guest.taken).toEqual([]);
    expect(v.kvmInterrupts).toBe(0);
  });

  it("an IPI written to the ICR exits to QEMU (KVM_EXIT_MMIO) and reaches the other vCPU through apic_deliver → apic_set_irq → qemu_cpu_kick", () => {
    const { ctx, vm, qemu } = setup(2);
    const g0 = new ScriptGuest([{ op: 'compute', ns: 10_000 }, { op: 'mmio-write', addr: 0xfee00310, len: 4, value: 1 << 24 }, { op: 'mmio-write', addr: 0xfee00300, len: 4, value: 0x4071 }], ctx);
    const g1 = new IdleGuest(500);
    vm.vcpu(0)!.setGuest(g0);
    vm.vcpu(1)!.setGuest(g1);
    vm.vcpu(0)!.run();
    vm.vcpu(1)!.run();
    ctx.scheduler.runUntil(200_000);
    expect(g1.taken.get(0x71)).toBe(1);
    expect(vm.vcpu(0)!.userspaceExits.get('KVM_EXIT_MMIO')).toBe(2);
    expect(qemu.cpu(1).kicks).toBeGreaterThanOrEqual(1);
    expect(vm.vcpu(0)!.exits.get('EPT_MISCONFIG')).toBe(2);
  });
});
