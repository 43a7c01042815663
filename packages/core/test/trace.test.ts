import { Scheduler, TraceBus, TraceRecorder, formatFtrace, formatFtraceLine, formatSeconds, toChromeTrace, type TraceEvent } from '@virq/core';

type KvmEvent = TraceEvent<'kvm.set_irq', { gsi: number; level: number }> | TraceEvent<'kvm.irqfd_wakeup', { gsi: number }>;

describe('trace bus', () => {
  it('does nothing (and reports off) when nobody subscribes', () => {
    const s = new Scheduler();
    const bus = new TraceBus(s);
    const ch = bus.channel<KvmEvent>('kvm');
    expect(ch.on).toBe(false);
    const rec = new TraceRecorder(ch.events$);
    expect(ch.on).toBe(true);
    rec.stop();
    expect(ch.on).toBe(false);
  });

  it('`on` follows bus and channel subscribers as they come and go, for channels made before and after', () => {
    const s = new Scheduler();
    const bus = new TraceBus(s);
    const early = bus.channel<KvmEvent>('early');
    const a = new TraceRecorder(bus.events$);
    const late = bus.channel<KvmEvent>('late');
    expect([early.on, late.on]).toEqual([true, true]);
    const b = new TraceRecorder(early.events$);
    a.stop();
    expect([early.on, late.on]).toEqual([true, false]);
    const c = new TraceRecorder(early.events$);
    b.stop();
    expect(early.on).toBe(true); // one channel subscriber left
    c.stop();
    expect([early.on, late.on]).toEqual([false, false]);
    // events emitted while on reach exactly the subscribers there were
    const d = new TraceRecorder(late.events$);
    s.at(0, s.actor({ name: 'x', kind: 'vcpu' }), () => {
      if (late.on) late.emit('kvm.irqfd_wakeup', 'irqfd_wakeup', 'eventfd_signal', { gsi: 24 });
      if (early.on) early.emit('kvm.irqfd_wakeup', 'irqfd_wakeup', 'eventfd_signal', { gsi: 25 });
    });
    s.runUntilIdle();
    expect(d.events.map((e) => e.args.gsi)).toEqual([24]);
    expect(a.events).toHaveLength(0);
  });

  it('stamps events with virtual time and the running actor; the bus merges channels in order', () => {
    const s = new Scheduler();
    const bus = new TraceBus(s);
    const kvm = bus.channel<KvmEvent>('kvm');
    const qemu = bus.channel('qemu');
    const all = new TraceRecorder(bus.events$);
    const onlyKvm = new TraceRecorder(kvm.events$);
    const vcpu = s.actor({ name: 'CPU 1/KVM', kind: 'vcpu', cpu: 3 });
    const main = s.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
    s.at(1500, main, () => {
      if (qemu.on) qemu.emit('qemu.kvm_set_irq', 'kvm_set_irq', 'kvm_pic_set_irq', { irq: 4, level: 1 });
    });
    s.at(2000, vcpu, () => {
      if (kvm.on) kvm.emit('kvm.set_irq', 'kvm_set_irq', 'kvm_vm_ioctl_irq_line', { gsi: 4, level: 1 });
    });
    s.runUntilIdle();
    expect(all.functions()).toEqual(['kvm_set_irq', 'kvm_set_irq']);
    expect(all.events.map((e) => e.source)).toEqual(['qemu', 'kvm']);
    expect(onlyKvm.events).toHaveLength(1);
    const e = onlyKvm.events[0]!;
    expect(e.time).toBe(2000);
    expect(e.actor.name).toBe('CPU 1/KVM');
    expect(formatFtraceLine(e)).toMatch(/^ +CPU 1\/KVM-\d+ \[003\] 0\.000002000: kvm_set_irq <-kvm_vm_ioctl_irq_line gsi=4 level=1$/);
  });

  it('formats seconds with nanosecond digits', () => {
    expect(formatSeconds(0)).toBe('0.000000000');
    expect(formatSeconds(1_234_567_891)).toBe('1.234567891');
  });

  it('Perfetto/Chrome JSON parses and carries every event, with thread names and slices', () => {
    const s = new Scheduler();
    const bus = new TraceBus(s);
    const ch = bus.channel('kvm');
    const rec = new TraceRecorder(bus.events$);
    const v = s.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
    s.at(1000, v, () => ch.emit('kvm.exit', 'vmx_handle_exit', undefined, { reason: 'HLT', rip: 0xfff0n }, 430));
    s.at(3000, v, () => ch.emit('kvm.inj', 'vmx_inject_irq', 'inject_pending_event', { vector: 0x31 }));
    s.runUntilIdle();
    const json = JSON.parse(JSON.stringify(toChromeTrace(rec.events)));
    const names = json.traceEvents.filter((x: { ph: string }) => x.ph !== 'M').map((x: { name: string }) => x.name);
    expect(names).toEqual(['vmx_handle_exit', 'vmx_inject_irq']);
    const slice = json.traceEvents.find((x: { name: string }) => x.name === 'vmx_handle_exit');
    expect(slice).toMatchObject({ ph: 'X', ts: 1, dur: 0.43, tid: v.pid, args: { reason: 'HLT', rip: '0xfff0' } });
    const thread = json.traceEvents.find((x: { ph: string; name: string }) => x.ph === 'M' && x.name === 'thread_name');
    expect(thread.args.name).toBe('CPU 0/KVM');
    expect(json.displayTimeUnit).toBe('ns');
    expect(formatFtrace(rec.events).split('\n')[2]).toContain('vmx_handle_exit');
  });
});
