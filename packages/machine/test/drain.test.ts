import { createSimContext } from '@virq/core';
import { ArmMachine } from '../src/arm/arm-machine.js';
import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';
import { applyVary } from '../src/vary.js';
import { X86Machine } from '../src/x86/x86-machine.js';

// After the devices go quiet the machine must settle: every interrupt raised was taken, nothing
// stays in service (x86 ISR, IOAPIC Remote IRR) or listed (arm64 LRs, ap_lists). Busy guests
// without timer ticks matter here: such a vCPU exits only when KVM makes it, so a kick lost in
// the gap between the vGIC flush and the entry left an LPI pending for good (found this way).
const BUSY_NO_TICK = { rxPacketsPerSec: 200_000, txPacketsPerSec: 100_000, vfioInterruptsPerSec: 100_000, serialPerSec: 20_000, serialRxPerSec: 20_000, ipisPerSec: 20_000, timerHz: 0, ioDepth: 4 };
const WORKLOAD_NS = 1_000_000;
const DRAIN_NS = 1_500_000;

function drained(preset: string, vary: Record<string, string>, workload: Record<string, number> | undefined): string[] {
  const d = presetDocument(preset);
  d.durationUs = WORKLOAD_NS / 1000;
  if (workload !== undefined) d.workload = workload;
  for (const [k, v] of Object.entries(vary)) applyVary(d, k, v);
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const problems: string[] = [];
  if (preset.startsWith('arm')) {
    const m = new ArmMachine(ctx, t);
    m.start();
    m.startWorkload(WORKLOAD_NS);
    ctx.scheduler.runUntil(WORKLOAD_NS + DRAIN_NS);
    for (const l of m.irqs.pendingSince(WORKLOAD_NS)) problems.push(`${l.name} raised at ${l.since} never taken`);
    for (const s of m.serials) if (s.uart.unread > 0) problems.push(`${s.uart.name}: ${s.uart.unread} received characters never read`);
    for (const v of m.vm.vcpus) {
      const listed = v.vgicCpu.apList.filter((i) => i.active || (i.pending && i.enabled));
      if (listed.length > 0) problems.push(`vCPU ${v.vcpuId} ap_list still holds ${listed.map((i) => i.intid).join(',')}`);
      const lrs = v.vgicCpu.cpuif.lrs.filter((l) => l.state !== 0);
      if (lrs.length > 0) problems.push(`vCPU ${v.vcpuId} LRs still hold ${lrs.map((l) => l.vintid).join(',')}`);
    }
  } else {
    const m = new X86Machine(ctx, t);
    m.start();
    m.startWorkload(WORKLOAD_NS);
    ctx.scheduler.runUntil(WORKLOAD_NS + DRAIN_NS);
    for (const l of m.irqs.pendingSince(WORKLOAD_NS)) problems.push(`${l.name} raised at ${l.since} never taken`);
    for (const s of m.serials) if (s.unread > 0) problems.push(`${s.name}: ${s.unread} received characters never read`);
    if (t.irqchip.kind === 'kvm-x86') {
      for (const v of m.vm.vcpus()) {
        const regs = v.lapic.getState();
        let isr = 0;
        let irr = 0;
        for (let i = 0; i < 8; i++) {
          isr |= regs[(0x100 + 0x10 * i) / 4]!;
          irr |= regs[(0x200 + 0x10 * i) / 4]!;
        }
        if (isr !== 0) problems.push(`vCPU ${v.vcpuId} has an interrupt in service (ISR)`);
        if (irr !== 0 && v.blocked) problems.push(`vCPU ${v.vcpuId} sleeps with an interrupt requested (IRR)`);
      }
      const io = m.vm.getIrqchip(2) as { irr: number; redirtbl: Array<{ pin: number; remote_irr: number }> };
      for (const e of io.redirtbl) if (e.remote_irr !== 0 && (io.irr & (1 << e.pin)) === 0) problems.push(`IOAPIC pin ${e.pin}: Remote IRR set with the line low`);
    }
  }
  return problems;
}

describe('the machine drains once the devices go quiet', () => {
  it('every preset × irqfd × MSI-X/INTx × back end, busy without ticks and sparse: nothing pending, in service or listed', () => {
    const bad: string[] = [];
    for (const preset of ['x86-q35', 'x86-q35-noapicv', 'x86-q35-avic', 'x86-q35-userspace-irqchip', 'arm-virt-gicv3', 'arm-virt-gicv4', 'arm-virt-gicv4.1']) {
      for (const irqfd of ['on', 'off']) for (const msix of ['on', 'off']) for (const backend of ['vhost-user', 'vhost', 'in-vmm']) {
        for (const workload of [BUSY_NO_TICK, undefined]) {
          const p = drained(preset, { irqfd, msix, backend }, workload);
          if (p.length > 0) bad.push(`${preset} irqfd=${irqfd} msix=${msix} backend=${backend} ${workload === undefined ? 'sparse' : 'busy'}: ${p.join('; ')}`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
