import { createSimContext, type TraceEvent } from '@virq/core';
import { compareTopologies } from '../src/compare.js';
import { presetDocument } from '../src/presets.js';
import { renderMetricsTable } from '../src/render-table.js';
import { runTopology } from '../src/scenario.js';
import { parseTopology, type Topology } from '../src/topology.js';
import { parseVary } from '../src/vary.js';
import { X86Machine } from '../src/x86/x86-machine.js';

/** The userspace-irqchip preset with every x86 workload switched on. */
function everything(irqchip = 'userspace-x86'): Topology {
  const d = presetDocument('x86-q35-userspace-irqchip');
  d.irqchip = { kind: irqchip, apicv: false, posted: false };
  d.durationUs = 1000;
  (d.devices as unknown[]).push({ kind: 'virtio-blk', name: 'vda', backend: 'in-vmm' }, { kind: 'pit', name: 'pit0' });
  d.workload = { rxPacketsPerSec: 200_000, txPacketsPerSec: 100_000, vfioInterruptsPerSec: 100_000, serialPerSec: 20_000, ipisPerSec: 20_000, timerHz: 20_000, ioDepth: 4 };
  return parseTopology(d);
}

/** Builds the machine, runs the workload, then lets everything in flight drain (the sources stop at `durationUs`). */
function runAndDrain(t: Topology): { m: X86Machine; trace: TraceEvent[] } {
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const trace: TraceEvent[] = [];
  // From before the boot: the serial probe's THRI edge reaches the APIC during it.
  const sub = ctx.trace.events$.subscribe((e) => trace.push(e));
  const m = new X86Machine(ctx, t);
  m.start();
  m.startWorkload(t.durationUs * 1000);
  ctx.scheduler.runUntil(t.durationUs * 1000 + 500_000);
  sub.unsubscribe();
  return { m, trace };
}

const count = (tr: readonly TraceEvent[], fn: string, pred: (a: Record<string, unknown>) => boolean = () => true): number =>
  tr.filter((e) => e.fn === fn && pred(e.args as Record<string, unknown>)).length;

describe('x86 machine on QEMU\'s userspace irqchip (kernel-irqchip=off)', () => {
  const { m, trace } = runAndDrain(everything());
  const q = m.qemuIrqchip!;

  it('builds the VM without the in-kernel irqchip and says why irqfd is off', () => {
    expect(m.vm.irqchipInKernel).toBe(false);
    expect(m.vmApi.irqfdCapable).toBe(false);
    expect(m.notes.join('\n')).toMatch(/kernel-irqchip=off.*KVM_IRQFD is EINVAL/);
    expect(count(trace, 'irqfd_wakeup')).toBe(0);
    expect(count(trace, 'kvm_set_msi')).toBe(0); // nothing reaches KVM's LAPIC model
  });

  it('every interrupt accepted into a userspace APIC reaches its guest handler; nothing is left in IRR/ISR', () => {
    for (const c of q.cpus) {
      const accepted = count(trace, 'apic_set_irq', (a) => a.apic === c.apic.id && a.coalesced === false);
      const taken = [...m.cpus[c.vcpu.vcpuId]!.taken.values()].reduce((x, y) => x + y, 0);
      expect(accepted).toBeGreaterThan(50);
      expect(taken).toBe(accepted);
      expect(c.apic.highestIrr()).toBe(-1);
      expect(Array.from(c.apic.isr).every((w) => w === 0)).toBe(true);
      expect(c.vcpu.queuedInterrupt).toBe(-1);
    }
    // and every one of them was injected by KVM_INTERRUPT (one ioctl, one vmx_inject_irq each)
    expect(count(trace, 'kvm_vcpu_ioctl_interrupt')).toBe(count(trace, 'vmx_inject_irq'));
    expect(count(trace, 'vmx_inject_irq')).toBe(count(trace, 'hw:guest_interrupt'));
  });

  it('virtio-net: every frame the back end put in the rx ring is received by the guest; every transmitted frame reaches the back end', () => {
    const rx = count(trace, 'update_shadow_used_ring_split', (a) => a.queue === 0);
    const tx = count(trace, 'update_shadow_used_ring_split', (a) => a.queue === 1);
    expect(rx).toBeGreaterThan(100);
    expect(count(trace, 'receive_buf')).toBe(rx);
    expect(count(trace, 'start_xmit')).toBe(tx);
    expect(m.nets[0]!.backend.txFrames()).toBe(tx);
    // the call eventfd is read by the main loop (virtio_queue_guest_notifier_read → virtio_irq → msix_notify)
    expect(count(trace, 'virtio_queue_guest_notifier_read')).toBeGreaterThan(10);
  });

  it('VFIO: vfio_msihandler → eventfd → vfio_msi_interrupt on the main loop → msix_notify → apic_send_msi', () => {
    const fired = count(trace, 'vfio_msihandler');
    expect(fired).toBeGreaterThan(50);
    expect(count(trace, 'vfio_msi_interrupt')).toBeGreaterThan(0);
    expect(count(trace, 'vfio_msi_interrupt')).toBeLessThanOrEqual(fired);
    for (const v of m.vfios[0]!.targets) expect(m.cpus[v.vcpu]!.taken.get(v.vector) ?? 0).toBeGreaterThan(0);
    expect(m.vfios[0]!.vfio.device.actor).toBeDefined();
  });

  it('serial IRQ 4 and the PIT go through gsi_handler → the userspace IOAPIC (an MSI into apic-msi); each edge is one guest interrupt', () => {
    const edges4 = count(trace, 'ioapic_set_irq', (a) => a.pin === 4 && a.level === 1);
    expect(edges4).toBeGreaterThan(5);
    expect(m.serialDrivers[0]!.runs).toBe(edges4); // serial8250_interrupt once per edge
    const ticks = count(trace, 'pit_irq_timer');
    // 20 kHz for 1000 µs: ticks at 50, 100, … 950 µs (the PIT is stopped at 1000 µs, before that tick)
    expect(ticks).toBe(19);
    expect(count(trace, 'timer_interrupt')).toBe(ticks);
    expect(count(trace, 'ioapic_service', (a) => a.pin === 2)).toBe(ticks);
  });

  it('IPIs: each ICR write exits to QEMU (KVM_EXIT_MMIO) and apic_deliver sets the target\'s IRR', () => {
    const ipis = count(trace, 'apic_deliver');
    expect(ipis).toBeGreaterThan(10);
    // An IPI that finds its vector still pending in the target's IRR merges with it
    // (apic_set_irq reports it coalesced): one handler run for both.
    let merged = 0;
    trace.forEach((e, i) => {
      if (e.fn !== 'apic_deliver') return;
      const set = trace.slice(i + 1).find((x) => x.fn === 'apic_set_irq');
      expect(set?.args['vector']).toBe(e.args['vector']);
      if (set?.args['coalesced'] === true) merged++;
    });
    expect(count(trace, 'sysvec_call_function_single')).toBe(ipis - merged);
  });

  it('virtio-blk: every request submitted completes', () => {
    const rq = count(trace, 'virtio_queue_rq');
    expect(rq).toBeGreaterThan(20);
    expect(count(trace, 'virtblk_done')).toBe(rq);
  });

  it('the guest EOIs by MMIO: one KVM_EXIT_MMIO and one apic_eoi per interrupt taken', () => {
    const taken = count(trace, 'hw:guest_interrupt');
    expect(count(trace, 'apic_eoi')).toBe(taken);
    expect(count(trace, 'native_apic_mem_eoi')).toBe(taken);
  });
});

describe('kvm-x86 ↔ userspace-x86: the same topology with only the irqchip line switched', () => {
  const short = (kind: string): Topology => {
    const d = presetDocument('x86-q35');
    d.durationUs = 500;
    (d.irqchip as Record<string, unknown>).kind = kind;
    return parseTopology(d);
  };
  const kvm = runTopology(short('kvm-x86'), { keepTrace: true });
  const user = runTopology(short('userspace-x86'), { keepTrace: true });

  it('both run and move packets; the userspace irqchip posts nothing and uses no irqfd', () => {
    for (const r of [kvm, user]) {
      expect(r.metrics.kicks.sent).toBeGreaterThan(0);
      expect(r.metrics.notifications.sent).toBeGreaterThan(0);
      expect(r.metrics.latencyNs.count).toBeGreaterThan(10);
    }
    expect(kvm.metrics.interrupts.posted).toBeGreaterThan(0);
    expect(user.metrics.interrupts.posted).toBe(0);
    expect(user.trace!.some((e) => e.fn === 'irqfd_wakeup')).toBe(false);
    expect(user.firstDelivery.map((e) => e.fn)).toEqual(expect.arrayContaining(['apic_send_msi', 'qemu_cpu_kick', 'kvm_vcpu_ioctl_interrupt', 'vmx_inject_irq', 'hw:guest_interrupt']));
  });

  it('the metrics show the cost: returns to QEMU for HLT, EOIs (MMIO), kicks (KVM_EXIT_INTR) and interrupt windows', () => {
    const u = user.metrics;
    const k = kvm.metrics;
    expect(u.userspaceExits.total).toBeGreaterThan(5 * k.userspaceExits.total);
    for (const r of ['KVM_EXIT_HLT', 'KVM_EXIT_INTR', 'KVM_EXIT_MMIO', 'KVM_EXIT_IRQ_WINDOW_OPEN']) {
      expect(u.userspaceExits.byReason[r] ?? 0).toBeGreaterThan(0);
      if (r !== 'KVM_EXIT_MMIO') expect(k.userspaceExits.byReason[r]).toBeUndefined();
    }
    // each injected interrupt's EOI is an MMIO exit to QEMU (no APIC-access page)
    expect(u.userspaceExits.byReason['KVM_EXIT_MMIO']!).toBeGreaterThanOrEqual(u.interrupts.injected);
    expect(u.exits.byReason['APIC_ACCESS']).toBeUndefined();
    expect(u.vcpuKicks).toBeGreaterThan(0);
    expect(k.vcpuKicks).toBe(0);
    expect(u.latencyNs.p50).toBeGreaterThan(k.latencyNs.p50);
  });

  it('virq compare --vary irqchip=kvm-x86,userspace-x86 runs both cells and prints the userspace exits by reason', async () => {
    const d = presetDocument('x86-q35');
    d.durationUs = 300;
    const cells = await compareTopologies(d, [parseVary('irqchip=kvm-x86,userspace-x86')], { workers: 0 });
    expect(cells.map((c) => c.metrics.irqchip)).toEqual(['kvm-x86', 'userspace-x86']);
    const table = renderMetricsTable(cells, 'table');
    expect(table).toMatch(/to user/);
    expect(table).toMatch(/user INTR/);
    expect(table).toMatch(/user IRQ_WINDOW_OPEN/);
  });
});

describe('INTx virtio on the userspace IOAPIC (level-triggered pins 16–19)', () => {
  it('each level interrupt sets remote IRR, the guest\'s EOI is broadcast to the IOAPIC and clears it; shared pins keep delivering', () => {
    const devs = Array.from({ length: 5 }, (_, i) => ({ kind: 'virtio-net', name: `n${i}`, msix: false, backend: 'in-vmm' }));
    const t = parseTopology({ name: 'intx-user', durationUs: 1000, irqchip: { kind: 'userspace-x86' }, devices: devs, workload: { rxPacketsPerSec: 100_000, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, serialPerSec: 0 } });
    const { m, trace } = runAndDrain(t);
    const perBdf = new Map<number, number>();
    for (const e of trace) if (e.fn === 'vp_interrupt') perBdf.set((e.args as { bdf: number }).bdf, (perBdf.get((e.args as { bdf: number }).bdf) ?? 0) + 1);
    expect(perBdf.size).toBe(5);
    for (const n of perBdf.values()) expect(n).toBeGreaterThan(5);
    const services = count(trace, 'ioapic_service', (a) => (a.pin as number) >= 16);
    expect(services).toBeGreaterThan(20);
    // every level delivery is EOIed through the broadcast, and nothing stays in flight at the end
    expect(count(trace, 'ioapic_clear_remote_irr')).toBe(services);
    for (let pin = 16; pin < 20; pin++) expect(m.qemuIrqchip!.ioapic.remoteIrr(pin)).toBe(false);
    expect(count(trace, 'receive_buf')).toBe(count(trace, 'virtio_net_receive_rcu'));
  });
});
