import { EventFd, msiMessage } from '@virq/core';
import { APIC, IdleGuest, type GuestModel, type GuestOp } from '@virq/kvm-irqchip';
import { enableLapics, inOrder, makeVm, patchLapic, record, setRedir } from './helpers.js';

describe('F5: serial IRQ 4 through KVM_IRQ_LINE with the in-kernel irqchip (FLOWS.md, seeds 000/001)', () => {
  test('kernel path, then injection on the halted target vCPU, in the seed order', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    setRedir(vm, { 4: { vector: 0x34, dest: 1 } });
    const guest = new IdleGuest(ctx.costs.ns.guestHandler);
    vm.vcpu(1)!.setGuest(guest);
    vm.vcpu(1)!.run();
    ctx.scheduler.runUntilIdle();
    expect(vm.vcpu(1)!.blocked).toBe(true);
    const rec = record(ctx);
    const qemu = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main' });
    const status: number[] = [];
    ctx.scheduler.after(0, qemu, () => {
      status.push(vm.irqLine(4, true), vm.irqLine(4, false));
    });
    ctx.scheduler.runUntilIdle();
    // raise: PIC 1 (newly latched) + IOAPIC 1 CPU; lower: PIC 1 + IOAPIC 1 (FACTS §5.4)
    expect(status).toEqual([2, 2]);
    const fns = rec.functions();
    expect(inOrder(fns, [
      'kvm_vm_ioctl_irq_line', 'kvm_set_irq',
      'kvm_set_pic_irq', 'kvm_pic_set_irq', 'pic_set_irq1', 'pic_update_irq', 'pic_unlock', 'kvm_make_request', 'kvm_vcpu_kick',
      'kvm_set_ioapic_irq', 'ioapic_set_irq', 'ioapic_service', 'ioapic_deliver', 'kvm_irq_delivery_to_apic', 'kvm_apic_set_irq',
      '__apic_accept_irq', 'kvm_make_request', 'kvm_vcpu_kick', 'kvm_vcpu_wake_up',
      'vcpu_enter_guest', 'kvm_check_request', 'inject_pending_event', 'vmx_inject_irq', 'vmx_vcpu_run',
      'common_interrupt', 'native_apic_mem_eoi', 'kvm_exit', 'handle_apic_access', 'kvm_lapic_reg_write', 'apic_set_eoi',
    ])).toEqual([]);
    // the halted vCPU was woken, not IPI'd (kvm_vcpu_kick: wake when halted)
    expect(fns).not.toContain('smp_send_reschedule');
    expect(guest.taken.get(0x34)).toBe(1);
    expect(vm.vcpu(1)!.exits.get('APIC_ACCESS')).toBe(1);
    expect(vm.vcpu(1)!.lapic.toJson().isr).toEqual([]);
    rec.stop();
  });
});

describe('F6: MSI from a userspace APIC model through KVM_SIGNAL_MSI', () => {
  test('kvm_send_userspace_msi → kvm_set_msi → kvm_set_msi_irq → kvm_irq_delivery_to_apic', () => {
    const { ctx, vm } = makeVm();
    enableLapics(vm);
    const rec = record(ctx);
    expect(vm.signalMsi(msiMessage(0xfee02000, 0x4045))).toBe(1);
    expect(inOrder(rec.functions(), ['kvm_send_userspace_msi', 'kvm_set_msi', 'kvm_set_msi_irq', 'kvm_irq_delivery_to_apic', 'kvm_apic_set_irq', '__apic_accept_irq'])).toEqual([]);
    expect(vm.vcpu(2)!.lapic.toJson().irr).toEqual([0x45]);
  });
});

/** A guest that runs `ops` once, then idles in HLT. */
class ScriptGuest implements GuestModel {
  constructor(private readonly ops: GuestOp[]) {}
  next(): GuestOp {
    return this.ops.shift() ?? { op: 'hlt' };
  }
}

describe('F7: IPI from a guest ICR write', () => {
  test('APIC_ACCESS exit → kvm_lapic_reg_write(ICR) → apic_send_ipi → kvm_irq_delivery_to_apic → target accepts; target in guest mode gets a host IPI', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    // vCPU 1 computes for a long time in guest mode; vCPU 0 sends it vector 0x61.
    const g1 = new IdleGuest(ctx.costs.ns.guestHandler);
    const busy: GuestModel = { next: () => ({ op: 'compute', ns: 1_000_000 }), interrupt: (id, v) => g1.interrupt(id, v) };
    vm.vcpu(1)!.setGuest(busy);
    vm.vcpu(0)!.setGuest(new ScriptGuest([{ op: 'compute', ns: 10_000 }, { op: 'mmio-write', addr: 0xfee00310, len: 4, value: 1 << 24 }, { op: 'mmio-write', addr: 0xfee00300, len: 4, value: 0x4061 }]));
    const rec = record(ctx);
    vm.vcpu(1)!.run();
    vm.vcpu(0)!.run();
    ctx.scheduler.runUntil(200_000);
    const fns = rec.functions();
    expect(inOrder(fns, ['kvm_exit', 'handle_apic_access', 'kvm_lapic_reg_write', 'apic_send_ipi', 'kvm_irq_delivery_to_apic', 'kvm_apic_set_irq', '__apic_accept_irq', 'kvm_vcpu_kick', 'smp_send_reschedule'])).toEqual([]);
    const v1 = vm.vcpu(1)!;
    expect(v1.hostIpis).toBe(1);
    expect(v1.exits.get('EXTERNAL_INTERRUPT')).toBe(1);
    expect(g1.taken.get(0x61)).toBe(1);
    expect(vm.vcpu(0)!.exits.get('APIC_ACCESS')).toBe(2);
    // the IPI arrived on vCPU 1's thread, on its host CPU
    const ext = rec.events.find((e) => e.fn === 'kvm_exit' && e.args['reason'] === 'EXTERNAL_INTERRUPT')!;
    expect(ext.actor).toBe(v1.actor);
  });
});

describe('F9: virtio interrupt through irqfd', () => {
  test('MSI route: irqfd_wakeup in the writer context → kvm_arch_set_irq_inatomic → kvm_set_msi_irq → kvm_irq_delivery_to_apic_fast, no work item', () => {
    const { ctx, vm } = makeVm();
    enableLapics(vm);
    vm.setGsiRouting([{ gsi: 24, type: 'msi', msi: msiMessage(0xfee01000, 0x45) }]);
    const call = new EventFd(ctx.scheduler, { name: 'vq0-call' });
    vm.irqfd({ fd: call, gsi: 24 });
    const rec = record(ctx);
    const vhost = ctx.scheduler.actor({ name: 'vhost-1234', kind: 'vhost-worker', cpu: 5 });
    let irrWhenWriteReturned: number[] = [];
    ctx.scheduler.after(0, vhost, () => {
      call.write(1);
      // irqfd_wakeup ran nested in eventfd_signal: the LAPIC has the vector before the write returns
      irrWhenWriteReturned = vm.vcpu(1)!.lapic.toJson().irr;
    });
    ctx.scheduler.runUntilIdle();
    expect(irrWhenWriteReturned).toEqual([0x45]);
    expect(call.readable).toBe(false); // irqfd_wakeup consumed the count (eventfd_ctx_do_read)
    const fns = rec.functions();
    expect(inOrder(fns, ['irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'kvm_set_msi_irq', 'kvm_irq_delivery_to_apic_fast', 'kvm_apic_set_irq', '__apic_accept_irq'])).toEqual([]);
    expect(fns).not.toContain('irqfd_inject');
    expect(rec.events.find((e) => e.fn === 'irqfd_wakeup')!.actor).toBe(vhost);
    expect(vm.vcpu(1)!.lapic.toJson().irr).toEqual([0x45]);
    expect(call.readable).toBe(false);
  });

  test('a route the fast path cannot finish (broadcast) returns -EWOULDBLOCK → schedule_work → irqfd_inject → kvm_set_irq', () => {
    const { ctx, vm } = makeVm();
    enableLapics(vm);
    vm.setGsiRouting([{ gsi: 24, type: 'msi', msi: msiMessage(0xfeeff000, 0x54) }]);
    const call = new EventFd(ctx.scheduler, { name: 'vq0-call' });
    vm.irqfd({ fd: call, gsi: 24 });
    const rec = record(ctx);
    const vhost = ctx.scheduler.actor({ name: 'vhost-1234', kind: 'vhost-worker' });
    ctx.scheduler.after(0, vhost, () => call.write(1));
    ctx.scheduler.runUntilIdle();
    expect(inOrder(rec.functions(), ['irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'schedule_work', 'irqfd_inject', 'kvm_set_irq', 'kvm_set_msi', 'kvm_irq_delivery_to_apic'])).toEqual([]);
    expect(rec.events.find((e) => e.fn === 'irqfd_inject')!.actor).toBe(vm.kworker);
    for (let i = 0; i < 4; i++) expect(vm.vcpu(i)!.lapic.toJson().irr).toEqual([0x54]);
  });

  test('end to end: irqfd → MSI → LAPIC → wake the halted vCPU → inject → guest handler → EOI', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    vm.setGsiRouting([{ gsi: 30, type: 'msi', msi: msiMessage(0xfee01000, 0x41) }]);
    const call = new EventFd(ctx.scheduler, { name: 'call' });
    vm.irqfd({ fd: call, gsi: 30 });
    const g = new IdleGuest(500);
    vm.vcpu(1)!.setGuest(g);
    vm.vcpu(1)!.run();
    ctx.scheduler.runUntilIdle();
    const writer = ctx.scheduler.actor({ name: 'vhost', kind: 'vhost-worker' });
    for (let i = 0; i < 3; i++) {
      ctx.scheduler.after(0, writer, () => call.write(1));
      ctx.scheduler.runUntilIdle();
    }
    expect(g.taken.get(0x41)).toBe(3);
    const v = vm.vcpu(1)!;
    expect(v.exits.get('HLT')).toBe(4);
    expect(v.exits.get('APIC_ACCESS')).toBe(3);
    expect(v.blocked).toBe(true);
    expect(v.lapic.toJson().irr).toEqual([]);
  });
});

describe('vCPU model: kick, halt and the interrupt window', () => {
  test('kvm_vcpu_kick sends no IPI to a vCPU outside guest mode; the request is seen at the next entry', () => {
    const { vm } = makeVm();
    enableLapics(vm);
    vm.signalMsi(msiMessage(0xfee01000, 0x50));
    const v = vm.vcpu(1)!;
    expect(v.kicks).toBe(1);
    expect(v.hostIpis).toBe(0);
    expect(v.hasPendingInterrupt()).toBe(true);
  });

  test('with IF=0 the interrupt waits: vmx_enable_irq_window, then a PENDING_INTERRUPT exit at STI, then injection', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    const taken: number[] = [];
    const ops: GuestOp[] = [{ op: 'cli' }, { op: 'compute', ns: 50_000 }, { op: 'sti' }];
    const guest: GuestModel = {
      next: () => ops.shift() ?? { op: 'hlt' },
      interrupt: (_id, vec) => (taken.push(vec), [{ op: 'eoi' }]),
    };
    const v = vm.vcpu(1)!;
    v.setGuest(guest);
    const rec = record(ctx);
    v.run();
    ctx.scheduler.runUntil(10_000);
    const qemu = ctx.scheduler.actor({ name: 'qemu', kind: 'vmm-main' });
    ctx.scheduler.after(0, qemu, () => vm.signalMsi(msiMessage(0xfee01000, 0x66)));
    ctx.scheduler.runUntilIdle();
    expect(taken).toEqual([0x66]);
    expect(inOrder(rec.functions(), ['kvm_vcpu_kick', 'smp_send_reschedule', 'kvm_exit', 'vmx_enable_irq_window', 'vmx_vcpu_run', 'kvm_exit', 'handle_interrupt_window', 'vmx_inject_irq'])).toEqual([]);
    expect(v.exits.get('EXTERNAL_INTERRUPT')).toBe(1);
    expect(v.exits.get('PENDING_INTERRUPT')).toBe(1);
  });

  test('costs: an exit charges vmExit and the entry vmEntry to the vCPU thread', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    const v = vm.vcpu(0)!;
    v.setGuest(new ScriptGuest([{ op: 'pio-write', port: 0x80, len: 1, value: 1 }, { op: 'stop' }]));
    let seen = 0;
    vm.onUserspaceExit = (_id, e) => ((seen = e.addr), 0);
    v.run();
    ctx.scheduler.runUntilIdle();
    const ns = ctx.costs.ns;
    expect(seen).toBe(0x80);
    expect(v.exits.get('IO_INSTRUCTION')).toBe(1);
    expect(v.actor.cpuTimeNs).toBe(ns.vmEntry * 2 + ns.vmExit + ns.exitToUserspace);
    expect(v.running).toBe(false);
  });
});

describe('ioeventfd bus on guest writes (FACTS §6.6)', () => {
  test('a matching PIO write signals the eventfd in the kernel; a non-matching one exits to userspace', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    const kick = new EventFd(ctx.scheduler, { name: 'vq0-kick' });
    vm.ioeventfd({ fd: kick, addr: 0xc050, len: 2, space: 'pio', datamatch: 0 });
    const exits: number[] = [];
    vm.onUserspaceExit = (_id, e) => (exits.push(e.value), 0);
    const v = vm.vcpu(0)!;
    v.setGuest(new ScriptGuest([{ op: 'pio-write', port: 0xc050, len: 2, value: 0 }, { op: 'pio-write', port: 0xc050, len: 2, value: 1 }, { op: 'stop' }]));
    v.run();
    ctx.scheduler.runUntilIdle();
    expect(kick.count).toBe(1n);
    expect(exits).toEqual([1]);
    expect(v.exits.get('IO_INSTRUCTION')).toBe(2);
  });

  test('len 0 MMIO ioeventfds go on the fast MMIO bus: EPT_MISCONFIG without instruction emulation', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    const kick = new EventFd(ctx.scheduler, { name: 'notify' });
    vm.ioeventfd({ fd: kick, addr: 0xfe003000, len: 0, space: 'mmio' });
    const v = vm.vcpu(0)!;
    v.setGuest(new ScriptGuest([{ op: 'mmio-write', addr: 0xfe003000, len: 2, value: 5 }, { op: 'stop' }]));
    v.run();
    ctx.scheduler.runUntilIdle();
    expect(kick.count).toBe(1n);
    expect(v.exits.get('EPT_MISCONFIG')).toBe(1);
    expect(v.actor.cpuTimeNs).toBe(2 * ctx.costs.ns.vmEntry + ctx.costs.ns.vmExit);
  });
});

test('APIC register offsets follow apicdef.h', () => {
  expect([APIC.EOI, APIC.ICR, APIC.ICR2, APIC.SPIV]).toEqual([0xb0, 0x300, 0x310, 0xf0]);
});

describe('vCPU scheduling hooks (for posted-interrupt descriptors)', () => {
  test('vcpu_load on run, vcpu_put(blocking) on HLT, load again on wake-up; preemption puts with preempted', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    const log: string[] = [];
    vm.setVcpuSchedHooks({
      vcpuLoad: (v, cpu) => log.push(`load ${v.vcpuId}@${cpu}`),
      vcpuPut: (v, why) => log.push(`put ${v.vcpuId} ${why}`),
    });
    const ops: GuestOp[] = [{ op: 'compute', ns: 100_000 }];
    const v = vm.vcpu(1)!;
    v.setGuest({ next: () => ops.shift() ?? { op: 'hlt' } });
    v.run();
    ctx.scheduler.runUntil(50_000);
    expect(v.mode).toBe('in-guest');
    expect(v.preempt(30_000, 7)).toBe(true);
    ctx.scheduler.runUntilIdle();
    expect(v.blocked).toBe(true);
    vm.signalMsi(msiMessage(0xfee01000, 0x55));
    ctx.scheduler.runUntilIdle();
    expect(log).toEqual(['load 1@2', 'put 1 preempted', 'load 1@7', 'put 1 blocking', 'load 1@7', 'put 1 blocking']);
    expect(v.hostCpu).toBe(7);
  });
});

describe('a host interrupt that arrives during VM entry', () => {
  test('the entry completes with the event it injects, then the CPU exits (EXTERNAL_INTERRUPT) — nothing lost, nothing run twice', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    const guest = new IdleGuest(ctx.costs.ns.guestHandler);
    const v = vm.vcpu(1)!;
    v.setGuest(guest);
    v.run();
    ctx.scheduler.runUntilIdle();
    expect(v.blocked).toBe(true);
    const rec = record(ctx);
    const t0 = ctx.scheduler.now;
    vm.signalMsi(msiMessage(0xfee01000, 0x55));
    // The wake-up starts vcpu_enter_guest at t0 + threadWakeup; the entry takes vmEntry ns.
    const entryStart = t0 + ctx.costs.ns.threadWakeup;
    const entryEnd = entryStart + ctx.costs.ns.vmEntry;
    const hostIrq = ctx.scheduler.actor({ name: 'host-irq', kind: 'host-cpu', cpu: 2 });
    ctx.scheduler.at(entryStart + 1, hostIrq, () => v.externalInterruptExit(0xec));
    ctx.scheduler.runUntilIdle();
    const exit = rec.events.find((e) => e.fn === 'kvm_exit' && e.args['reason'] === 'EXTERNAL_INTERRUPT')!;
    expect(exit.time).toBe(entryEnd);
    const fns = rec.functions();
    expect(inOrder(fns, ['vmx_inject_irq', 'vmx_vcpu_run', 'hw:guest_interrupt', 'kvm_exit', 'handle_external_interrupt_irqoff', 'vmx_vcpu_run', 'common_interrupt', 'native_apic_mem_eoi', 'kvm_exit', 'handle_apic_access'])).toEqual([]);
    expect(fns.filter((f) => f === 'hw:guest_interrupt')).toHaveLength(1);
    expect(guest.taken.get(0x55)).toBe(1);
    expect(v.exits.get('EXTERNAL_INTERRUPT')).toBe(1);
    expect(v.lapic.toJson().isr).toEqual([]);
    expect(v.blocked).toBe(true);
    rec.stop();
  });

  test('a preemption asked for during the entry takes effect once the entry completes', () => {
    const { ctx, vm } = makeVm({ nvcpus: 2 });
    enableLapics(vm);
    const guest = new IdleGuest(ctx.costs.ns.guestHandler);
    const v = vm.vcpu(1)!;
    v.setGuest(guest);
    v.run();
    ctx.scheduler.runUntilIdle();
    const rec = record(ctx);
    const t0 = ctx.scheduler.now;
    vm.signalMsi(msiMessage(0xfee01000, 0x55));
    const entryStart = t0 + ctx.costs.ns.threadWakeup;
    const host = ctx.scheduler.actor({ name: 'host-sched', kind: 'host-cpu', cpu: 2 });
    const answers: boolean[] = [];
    ctx.scheduler.at(entryStart + 1, host, () => answers.push(v.preempt(10_000, 3)));
    ctx.scheduler.runUntilIdle();
    expect(answers).toEqual([true]);
    const out = rec.events.find((e) => e.fn === 'kvm_sched_out')!;
    expect(out.time).toBe(entryStart + ctx.costs.ns.vmEntry);
    expect(guest.taken.get(0x55)).toBe(1);
    expect(v.hostCpu).toBe(3);
    expect(v.blocked).toBe(true);
    rec.stop();
  });
});

describe('two injectable interrupts at one entry (kvm_check_and_inject_events)', () => {
  test('the PIC\'s ExtINT is injected first; the LAPIC vector behind it opens an interrupt window and follows at the guest\'s IRET — no HLT livelock', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    enableLapics(vm);
    patchLapic(vm, 0, { [APIC.LVT0]: 0x700 }); // ExtINT from the 8259 (virtual wire), as firmware leaves it
    setRedir(vm, { 4: { vector: 0x34, dest: 0 } });
    const guest = new IdleGuest(ctx.costs.ns.guestHandler);
    const v = vm.vcpu(0)!;
    v.setGuest(guest);
    v.run();
    ctx.scheduler.runUntilIdle();
    const rec = record(ctx);
    const qemu = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main' });
    ctx.scheduler.after(0, qemu, () => {
      vm.irqLine(4, true); // GSI 4: PIC IRQ 4 and IOAPIC pin 4 both raise
      vm.irqLine(4, false);
    });
    ctx.scheduler.runUntil(ctx.scheduler.now + 1_000_000);
    const fns = rec.functions();
    expect(inOrder(fns, ['kvm_pic_read_irq', 'vmx_inject_irq', 'vmx_enable_irq_window', 'kvm_exit', 'handle_interrupt_window', 'vmx_inject_irq'])).toEqual([]);
    expect(guest.taken.get(0x34)).toBe(1); // the IOAPIC's vector
    expect(guest.taken.get(4)).toBe(1); // the PIC's IRQ 4 (vector base 0: the guest never sent ICW2)
    expect(v.exits.get('PENDING_INTERRUPT')).toBe(1);
    expect(v.exits.get('HLT')!).toBeLessThan(5);
    expect(v.blocked).toBe(true);
    rec.stop();
  });

  test('with APICv the vIRR vector behind the ExtINT needs no window: the CPU delivers it itself at the IRET (kvm_cpu_has_injectable_intr counts only ExtINT)', () => {
    const { ctx, vm } = makeVm({ nvcpus: 1 });
    vm.setApicv(true);
    enableLapics(vm);
    patchLapic(vm, 0, { [APIC.LVT0]: 0x700 });
    setRedir(vm, { 4: { vector: 0x34, dest: 0 } });
    const guest = new IdleGuest(ctx.costs.ns.guestHandler);
    const v = vm.vcpu(0)!;
    v.setGuest(guest);
    v.run();
    ctx.scheduler.runUntilIdle();
    const rec = record(ctx);
    const qemu = ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main' });
    ctx.scheduler.after(0, qemu, () => {
      vm.irqLine(4, true);
      vm.irqLine(4, false);
    });
    ctx.scheduler.runUntil(ctx.scheduler.now + 1_000_000);
    const fns = rec.functions();
    expect(fns).not.toContain('vmx_enable_irq_window');
    expect(v.exits.get('PENDING_INTERRUPT')).toBeUndefined();
    expect(inOrder(fns, ['kvm_pic_read_irq', 'vmx_inject_irq', 'hw:virtual_interrupt_delivery'])).toEqual([]);
    expect(guest.taken.get(4)).toBe(1);
    expect(guest.taken.get(0x34)).toBe(1);
    rec.stop();
  });
});
