import { compareTopologies } from '../src/compare.js';
import { presetDocument } from '../src/presets.js';
import { applyVary, parseVary } from '../src/vary.js';
import { runTopology } from '../src/scenario.js';
import { parseTopology } from '../src/topology.js';

const short = (name: string, edit: (d: Record<string, unknown>) => void = () => undefined) => {
  const d = presetDocument(name);
  d.durationUs = 400;
  edit(d);
  return parseTopology(d);
};

describe('scenario runs', () => {
  it('the default x86 machine moves packets, posts the VFIO NIC\'s interrupts and counts exits by reason', () => {
    const r = runTopology(short('x86-q35'));
    const m = r.metrics;
    expect(m.kicks.sent).toBeGreaterThan(0); // guest tx through vp_notify
    expect(m.exits.byReason['EPT_MISCONFIG']).toBe(m.kicks.sent); // each kick is one notify write exit
    expect(m.notifications.sent).toBeGreaterThan(0);
    expect(m.interrupts.posted).toBeGreaterThan(0); // APICv + VT-d posting
    expect(m.interrupts.injected).toBe(0); // with APICv nothing is injected through the VMCS
    expect(m.latencyNs.count).toBeGreaterThan(10);
    expect(m.latencyNs.p50).toBeGreaterThan(0);
    expect(m.latencyNs.p99).toBeGreaterThanOrEqual(m.latencyNs.p50);
    expect(Object.keys(m.exits.perVcpu).sort()).toEqual(['0', '1']);
    // CPU time of a vCPU thread can never exceed the run's virtual time (plus the step in flight).
    expect(m.cpuTimeNs['CPU 0/KVM']!).toBeLessThanOrEqual(m.virtualTimeNs + 20_000);
    // The first delivery ends in the guest's handler.
    expect(r.firstDelivery.map((e) => e.fn)).toContain('hw:guest_interrupt');
    expect(r.firstDelivery.at(-1)!.fn).toBe('native_apic_mem_eoi');
  });

  it('APICv without VT-d posting: the VFIO NIC\'s interrupts to an idle vCPU all wake it (the block check syncs the PIR)', () => {
    const d = presetDocument('x86-q35');
    applyVary(d, 'posted', 'off');
    const r = runTopology(parseTopology(d), { keepTrace: true });
    const toVcpu1 = r.trace!.filter((e) => e.fn === '__vmx_deliver_posted_interrupt' && e.args['vcpu'] === 1).length;
    const taken = r.trace!.filter((e) => e.fn === 'hw:guest_interrupt' && e.args['vcpu'] === 1).length;
    expect(toVcpu1).toBeGreaterThan(50);
    // Posts of a vector already pending coalesce (PIR bit set); none may be lost for good, as
    // they were when a post left ON set on a vCPU about to block (5 of 100 taken).
    expect(taken).toBeGreaterThan(0.8 * toVcpu1);
  });

  it('without APICv and posting, interrupts are injected on entry and cost exits', () => {
    const on = runTopology(short('x86-q35')).metrics;
    const off = runTopology(short('x86-q35-noapicv')).metrics;
    expect(off.interrupts.posted).toBe(0);
    expect(off.interrupts.injected).toBeGreaterThan(0);
    expect(off.exits.total).toBeGreaterThan(on.exits.total);
    expect(off.exits.byReason['APIC_ACCESS'] ?? 0).toBeGreaterThan(0); // the guest's EOI traps
  });

  it('same topology and seed → the same metrics; another seed → other ones', () => {
    const a = runTopology(short('x86-q35')).metrics;
    const b = runTopology(short('x86-q35')).metrics;
    const c = runTopology(short('x86-q35', (d) => (d.seed = 2))).metrics;
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('the same topology runs on ARM with only the irqchip line changed; GICv4 posts what GICv3 injects', () => {
    const v3 = runTopology(short('x86-q35', (d) => (d.irqchip = { kind: 'gicv3' }))).metrics;
    const v4 = runTopology(short('x86-q35', (d) => (d.irqchip = { kind: 'gicv4' }))).metrics;
    expect(v3.irqchip).toBe('gicv3');
    expect(Object.keys(v3.exits.byReason).every((r) => ['IRQ', 'WFx', 'HVC', 'DABT_LOW', 'SYS64'].includes(r))).toBe(true);
    expect(v3.interrupts.posted).toBe(0);
    expect(v4.interrupts.posted).toBeGreaterThan(0);
    expect(v4.exits.byReason['IRQ'] ?? 0).toBeLessThan(v3.exits.byReason['IRQ'] ?? 0);
    expect(v3.kicks.sent).toBeGreaterThan(0);
  });

  it('every back end serves the guest\'s transmit; EVENT_IDX suppresses kicks', () => {
    for (const backend of ['in-vmm', 'vhost', 'vhost-user']) {
      const m = runTopology(short('x86-q35', (d) => ((d.devices as Array<Record<string, unknown>>)[0]!.backend = backend))).metrics;
      expect(m.kicks.sent).toBeGreaterThan(0);
      expect(m.notifications.sent).toBeGreaterThan(0);
    }
    const noIdx = runTopology(short('x86-q35', (d) => ((d.devices as Array<Record<string, unknown>>)[0]!.eventIdx = false))).metrics;
    const idx = runTopology(short('x86-q35')).metrics;
    expect(idx.kicks.suppressed).toBeGreaterThan(0);
    expect(noIdx.notifications.suppressed).toBeLessThan(idx.notifications.suppressed);
  });

  it('kernel vhost-net receives frames from the outside: tun_net_xmit → vhost_poll_wakeup (socket) → handle_rx_net → vhost_signal → irqfd', () => {
    const doc = { name: 'vhost-rx', devices: [{ kind: 'virtio-net', name: 'net0', backend: 'vhost' }], durationUs: 300, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 100_000 } };
    const r = runTopology(parseTopology(doc), { keepTrace: true });
    const fns = r.trace!.map((e) => e.fn);
    const sent = fns.filter((f) => f === 'tun_net_xmit').length;
    expect(sent).toBeGreaterThan(10);
    const chain = ['__netif_receive_skb_core', 'br_handle_frame', 'tun_net_xmit', 'vhost_poll_wakeup', 'vhost_work_queue', 'handle_rx_net', 'vhost_signal', 'irqfd_wakeup', 'receive_buf'];
    let at = 0;
    for (const f of chain) {
      at = fns.indexOf(f, at);
      expect(at).toBeGreaterThanOrEqual(0);
    }
    // every frame handed to the tap reached the guest driver (or is still queued at the end of the run)
    const received = fns.filter((f) => f === 'receive_buf').length;
    expect(received).toBeGreaterThan(sent - 5);
    expect(received).toBeLessThanOrEqual(sent);
    expect(r.notes.join('\n')).not.toMatch(/tap rx|rxPacketsPerSec ignored/);
  });

  it('irqfd off: guest notifiers go through the QEMU main loop (F8), with a note', () => {
    const r = runTopology(short('x86-q35', (d) => (d.routing = { irqfd: false, ioeventfd: true })), { keepTrace: true });
    expect(r.notes.join('\n')).toMatch(/irqfd off/);
    expect(r.trace!.some((e) => e.fn === 'virtio_queue_guest_notifier_read')).toBe(true);
    expect(r.trace!.some((e) => e.fn === 'irqfd_wakeup' && e.actor.name.startsWith('vhost'))).toBe(false);
  });
});

describe('virtio-blk at an I/O depth (workload.ioDepth)', () => {
  it.each(['kvm-x86', 'gicv3'])('%s: a closed loop of 4 KiB reads: kicks, completions, interrupts, latency', (kind) => {
    const t = parseTopology({ name: 'blk', irqchip: { kind }, devices: [{ kind: 'virtio-blk', name: 'vda' }], durationUs: 500, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, ioDepth: 4 } });
    const r = runTopology(t, { keepTrace: true });
    const m = r.metrics;
    const completions = r.trace!.filter((e) => e.fn === 'virtblk_done').length;
    // 20 µs per request at depth 4 for 500 µs: about 100 completions; each resubmission kicks or is suppressed.
    expect(completions).toBeGreaterThan(50);
    expect(m.kicks.sent + m.kicks.suppressed).toBeGreaterThanOrEqual(completions);
    expect(m.notifications.sent).toBeGreaterThan(5);
    expect(m.latencyNs.count).toBeGreaterThan(5);
    expect(r.notes.join('\n')).not.toMatch(/virtio-blk/);
  });
});

describe('legacy timer (pit + hpet devices, workload.timerHz)', () => {
  it('QEMU\'s PIT ticks through the HPET legacy route and kvm_pc_gsi_handler into IOAPIC pin 2 (F4/F5 chain with the kernel irqchip)', () => {
    const t = parseTopology({ name: 'pit', irqchip: { kind: 'kvm-x86', apicv: false }, devices: [{ kind: 'pit', inKernel: false }, { kind: 'hpet' }], durationUs: 200, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, timerHz: 100_000 } });
    const r = runTopology(t, { keepTrace: true });
    const ticks = r.trace!.filter((e) => e.fn === 'pit_irq_timer').length;
    expect(ticks).toBe(19); // every 10 µs from 10 µs, stopped at 200 µs (the tick at 200 µs is cancelled)
    expect(r.metrics.interrupts.injected).toBe(ticks);
    const fns = r.firstDelivery.map((e) => e.fn);
    const chain = ['pit_irq_timer', 'pit_irq_timer_update', 'hpet_handle_legacy_irq', 'kvm_pc_gsi_handler', 'kvm_set_irq', 'kvm_set_ioapic_irq', 'ioapic_deliver', '__apic_accept_irq', 'vmx_inject_irq', 'hw:guest_interrupt', 'native_apic_mem_eoi'];
    let at = 0;
    for (const f of chain) {
      at = fns.indexOf(f, at);
      expect(at).toBeGreaterThanOrEqual(0);
    }
    // Without a pit device the tick is each vCPU's LAPIC timer (test/x86-lapic-timer.test.ts).
    const none = runTopology(parseTopology({ name: 'nopit', devices: [], durationUs: 1000, workload: { timerHz: 10_000 } }), { keepTrace: true });
    expect(none.notes.join('\n')).not.toMatch(/no pit device/);
    expect(none.trace!.filter((e) => e.fn === 'sysvec_apic_timer_interrupt').length).toBeGreaterThanOrEqual(16); // ~9 per vCPU in 1 ms at 10 kHz
  });

  it('with the kernel irqchip the PIT is KVM\'s (QEMU\'s default): pit_timer_fn → kvm-pit worker → pit_do_work → kvm_set_irq GSI 0 → IOAPIC pin 2, each tick acknowledged before the next (reinject)', () => {
    const t = parseTopology({ name: 'kpit', irqchip: { kind: 'kvm-x86', apicv: false }, devices: [{ kind: 'pit' }], durationUs: 10_500, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, timerHz: 1000 } });
    expect(t.devices[0]).toMatchObject({ kind: 'pit', inKernel: true });
    const r = runTopology(t, { keepTrace: true });
    const fns = r.trace!.map((e) => e.fn);
    expect(fns.filter((f) => f === 'pit_timer_fn')).toHaveLength(10); // every 1 ms (count 1193)
    expect(fns.filter((f) => f === 'pit_do_work')).toHaveLength(10);
    expect(fns.filter((f) => f === 'kvm_pit_ack_irq')).toHaveLength(10);
    expect(fns).not.toContain('pit_irq_timer'); // QEMU's i8254 is not there
    const chain = ['pit_timer_fn', 'pit_do_work', 'kvm_set_irq', 'kvm_set_ioapic_irq', 'ioapic_deliver', '__apic_accept_irq', 'vmx_inject_irq', 'hw:guest_interrupt', 'native_apic_mem_eoi', 'kvm_ioapic_update_eoi', 'kvm_pit_ack_irq'];
    let at = 0;
    for (const f of chain) {
      at = fns.indexOf(f, at);
      expect(at).toBeGreaterThanOrEqual(0);
    }
    expect(r.metrics.interrupts.injected).toBe(10);
    expect(r.metrics.latencyNs.count).toBe(10); // from each expiry to the handler
    // a 20 kHz request is held to min_timer_period_us (200 µs → 5,000 ticks/s), with a note
    const fast = runTopology(parseTopology({ name: 'kpit-fast', devices: [{ kind: 'pit' }], durationUs: 1100, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, timerHz: 20_000 } }), { keepTrace: true });
    // (the first expiry keeps the requested 50 µs: create_pit_timer starts the hrtimer with the unclamped interval)
    expect(fast.trace!.filter((e) => e.fn === 'pit_timer_fn').map((e) => e.time)).toEqual([0, 1, 2, 3, 4, 5].map((k) => 50_285 + k * 200_000));
    expect(fast.notes.join('\n')).toMatch(/min_timer_period_us/);
    // userspace-x86 has only QEMU's PIT
    expect(() => parseTopology({ name: 'u', irqchip: { kind: 'userspace-x86' }, devices: [{ kind: 'pit', inKernel: true }] })).toThrow(/in-kernel PIT needs the in-kernel irqchip/);
    expect(parseTopology({ name: 'u', irqchip: { kind: 'userspace-x86' }, devices: [{ kind: 'pit' }] }).devices[0]).toMatchObject({ inKernel: false });
  });
});

describe('arm64 generic timer (workload.timerHz on an ARM machine)', () => {
  it('every vCPU ticks timerHz times a second: forwarded PPI 27 while it runs, the background timer while it waits in WFI', () => {
    const doc = { name: 'arm-tick', vcpus: [{ id: 0, hostCpu: 1 }, { id: 1, hostCpu: 2 }], irqchip: { kind: 'gicv3' }, devices: [], durationUs: 1000, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, timerHz: 20_000 } };
    const r = runTopology(parseTopology(doc), { keepTrace: true });
    const ticks = (v: number): number => r.trace!.filter((e) => e.fn === 'gic_handle_irq' && e.args['vcpu'] === v && e.args['intid'] === 27).length;
    // one tick every 50 µs from 50 µs; the one due at 1000 µs is not programmed (the run ends)
    expect([ticks(0), ticks(1)]).toEqual([19, 19]);
    // idle guests: each tick is a background-timer wake-up from WFI, no host interrupt, no IRQ exit
    expect(r.trace!.filter((e) => e.fn === 'kvm_bg_timer_expire')).toHaveLength(38);
    expect(r.metrics.exits.byReason['IRQ'] ?? 0).toBe(0);
    expect(r.metrics.exits.byReason['WFx']).toBeGreaterThanOrEqual(38);
    expect(r.metrics.interrupts.injected).toBe(38);
    expect(r.metrics.latencyNs.count).toBe(38); // from CVAL to the guest handler
    expect(r.notes.join('\n')).not.toMatch(/timerHz/);
  });

  it('a busy vCPU takes its tick as a host interrupt (IRQ exit → kvm_arch_timer_handler → kvm_timer_update_irq)', () => {
    const doc = { name: 'arm-tick-busy', vcpus: [{ id: 0, hostCpu: 1 }, { id: 1, hostCpu: 2 }], irqchip: { kind: 'gicv3' }, devices: [], durationUs: 500, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, timerHz: 20_000, ipisPerSec: 1000 } };
    const r = runTopology(parseTopology(doc), { keepTrace: true });
    const handlerRuns = r.trace!.filter((e) => e.fn === 'generic_handle_domain_irq' && e.args['handler'] === 'kvm_arch_timer_handler').length;
    expect(handlerRuns).toBe(2 * 9); // both vCPUs are busy (IPIs): every tick arrives while the guest runs
    expect(r.trace!.filter((e) => e.fn === 'kvm_bg_timer_expire')).toHaveLength(0);
  });
});

describe('guest IPIs (workload.ipisPerSec)', () => {
  const ipis = (kind: string) =>
    parseTopology({ name: 'ipi', irqchip: { kind, apicv: false }, devices: [], durationUs: 500, workload: { txPacketsPerSec: 0, rxPacketsPerSec: 0, ipisPerSec: 40000 } });

  it('x86: each IPI is an ICR write (APIC_ACCESS exits), a kick of the running target and an injection (F7)', () => {
    const r = runTopology(ipis('kvm-x86'), { keepTrace: true });
    const m = r.metrics;
    expect(m.interrupts.injected).toBeGreaterThan(10);
    // ICR2 + ICR per IPI, plus the target's trapped EOI per injected interrupt.
    expect(m.exits.byReason['APIC_ACCESS']).toBeGreaterThanOrEqual(2 * m.interrupts.injected);
    expect(m.latencyNs.count).toBeGreaterThan(10);
    const fns = r.firstDelivery.map((e) => e.fn);
    for (const f of ['apic_send_ipi', 'kvm_irq_delivery_to_apic', '__apic_accept_irq', 'vmx_inject_irq', 'hw:guest_interrupt']) expect(fns).toContain(f);
  });

  it('arm64: each IPI is a trapped ICC_SGI1R_EL1 write (SYS64 exit), queued to the vGIC, acked without an exit', () => {
    const m = runTopology(ipis('gicv3'), { keepTrace: true }).metrics;
    expect(m.exits.byReason['SYS64']).toBeGreaterThan(10);
    expect(m.interrupts.injected).toBeGreaterThan(10);
    expect(m.interrupts.injected).toBeLessThanOrEqual(m.exits.byReason['SYS64']!);
    expect(m.latencyNs.count).toBeGreaterThan(10);
  });
});

describe('compare', () => {
  it('runs the matrix; the same cell in a worker thread and in-process gives the same numbers', async () => {
    const doc = presetDocument('x86-q35');
    doc.durationUs = 200;
    const dims = [parseVary('posted=on,off')];
    const inProc = await compareTopologies(doc, dims, { workers: 0 });
    const threads = await compareTopologies(doc, dims, { workers: 2 });
    expect(inProc.map((r) => r.label)).toEqual([{ posted: 'on' }, { posted: 'off' }]);
    expect(threads.map((r) => r.metrics)).toEqual(inProc.map((r) => r.metrics));
    expect(inProc[0]!.metrics.interrupts.posted).toBeGreaterThan(0);
  }, 60_000);

  it('a bad cell fails before anything runs, naming the path', async () => {
    const doc = presetDocument('x86-q35');
    await expect(compareTopologies(doc, [parseVary('vcpus=0,2')], { workers: 0 })).rejects.toThrow(/topology\.vcpus: expected a list of 1 to 4096 vCPUs/);
  });
});
