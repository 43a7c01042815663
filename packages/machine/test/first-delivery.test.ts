import { createSimContext, type Actor, type TraceEvent } from '@virq/core';
import { FirstDeliveryRecorder } from '../src/first-delivery.js';
import { presetDocument } from '../src/presets.js';
import { runTopology } from '../src/scenario.js';
import { parseTopology } from '../src/topology.js';

const ctx = createSimContext();
const vhost = ctx.scheduler.actor({ name: 'vhost', kind: 'vhost-worker', cpu: 0 });
const nic = ctx.scheduler.actor({ name: 'nic-dma', kind: 'device', cpu: 0 });
const vcpu = ctx.scheduler.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
const ev = (time: number, actor: Actor, fn: string, args: Record<string, number | boolean> = {}, kind = fn): TraceEvent => ({ kind, time, actor, source: 'test', fn, caller: undefined, args, durNs: undefined });

describe('FirstDeliveryRecorder', () => {
  it('starts at the raising device\'s own start in that instant and ends at the EOI of the raised interrupt, even when another one overtakes it', () => {
    const r = new FirstDeliveryRecorder();
    const evs = [
      ev(5, vcpu, 'guest_step'), // before anything starts: not in the window
      ev(10, vhost, 'fill_vec_buf_split'),
      ev(10, vhost, 'vhost_vring_call_split', { notify: true }),
      ev(10, vhost, 'irqfd_wakeup'),
    ];
    for (const e of evs) r.observe(e);
    r.raised(0, 8193, 10, vhost); // reported while the machine observes irqfd_wakeup
    for (const e of [
      ev(11, nic, 'hw:its_translate'),
      ev(12, vcpu, 'gic_handle_irq', { vcpu: 0, intid: 8196 }), // the other device's direct vLPI
      ev(12, vcpu, 'gic_eoi_irq', { vcpu: 0, intid: 8196 }),
      ev(13, vcpu, 'gic_handle_irq', { vcpu: 0, intid: 8193 }),
      ev(13, vcpu, 'gic_eoi_irq', { vcpu: 0, intid: 8193 }),
      ev(14, vhost, 'vhost_vring_call_split', { notify: true }),
    ]) r.observe(e);
    const fns = r.delivery.map((e) => `${e.fn}@${e.time}`);
    expect(fns[0]).toBe('vhost_vring_call_split@10');
    expect(fns).toContain('gic_eoi_irq@12'); // interleaved work stays in
    expect(fns.at(-1)).toBe('gic_eoi_irq@13');
  });

  it('a raise reported before its device traces anything opens the window with the device\'s next events', () => {
    const r = new FirstDeliveryRecorder();
    r.observe(ev(20, vhost, 'vhost_vring_call_split', { notify: true })); // another actor, same instant
    r.raised(0, 52, 20, nic);
    for (const e of [ev(20, nic, 'hw:vtd_remap_interrupt'), ev(21, vcpu, 'hw:guest_interrupt', { vcpu: 0, vector: 52 }), ev(22, vcpu, 'native_apic_mem_eoi', { vcpu: 0 })]) r.observe(e);
    expect(r.delivery.map((e) => e.fn)).toEqual(['hw:vtd_remap_interrupt', 'hw:guest_interrupt', 'native_apic_mem_eoi']);
  });

  it('an EOI on another vCPU, or before the handler, does not end the window', () => {
    const r = new FirstDeliveryRecorder();
    r.raised(1, 50, 0, undefined);
    for (const e of [
      ev(1, vcpu, 'native_apic_mem_eoi', { vcpu: 1 }), // an older interrupt's EOI on the target
      ev(2, vcpu, 'hw:guest_interrupt', { vcpu: 0, vector: 50 }),
      ev(3, vcpu, 'native_apic_mem_eoi', { vcpu: 0 }),
      ev(4, vcpu, 'hw:guest_interrupt', { vcpu: 1, vector: 50 }),
      ev(5, vcpu, 'native_apic_mem_eoi', { vcpu: 1 }),
    ]) r.observe(e);
    expect(r.delivery.map((e) => e.time)).toEqual([1, 2, 3, 4, 5]);
  });

  it('with no raise reported it is the first start to the first EOI; a suppressed notification starts nothing', () => {
    const r = new FirstDeliveryRecorder();
    expect(r.delivery).toEqual([]);
    r.observe(ev(1, vhost, 'vhost_vring_call_split', { notify: false }, 'vring.should_notify'));
    expect(r.delivery).toEqual([]);
    for (const e of [ev(2, vhost, 'vhost_vring_call_split', { notify: true }), ev(3, vcpu, 'native_apic_mem_eoi', { vcpu: 0 }), ev(4, vcpu, 'native_apic_mem_eoi', { vcpu: 0 })]) r.observe(e);
    expect(r.delivery.map((e) => e.time)).toEqual([2, 3]);
  });

  it('a window whose handler never comes stops at 400 events', () => {
    const r = new FirstDeliveryRecorder();
    r.raised(0, 50, 0, undefined);
    for (let i = 0; i < 1000; i++) r.observe(ev(i, vcpu, 'guest_step'));
    expect(r.delivery).toHaveLength(400);
  });
});

describe('the first delivery of a machine run', () => {
  const run = (name: string) => {
    const d = presetDocument(name);
    d.durationUs = 200;
    return runTopology(parseTopology(d)).firstDelivery;
  };

  it('GICv4: the rx interrupt deferred to the irqfd kworker is followed to its own EOI past the VFIO NIC\'s direct vLPI', () => {
    const f = run('arm-virt-gicv4');
    expect(f[0]!.fn).toBe('vhost_vring_call_split');
    const lpi = f.find((e) => e.fn === 'vgic_its_resolve_lpi')!.args['intid'];
    const last = f.at(-1)!;
    expect(last.fn).toBe('gic_eoi_irq');
    expect(last.args['intid']).toBe(lpi);
    expect(f.some((e) => e.fn === 'gic_eoi_irq' && e.args['intid'] !== lpi)).toBe(true); // overtaken on the way
  });

  it('every preset\'s first delivery ends with the EOI of the interrupt its handler took', () => {
    for (const name of ['x86-q35', 'x86-q35-noapicv', 'x86-q35-avic', 'x86-q35-userspace-irqchip', 'arm-virt-gicv3', 'arm-virt-gicv4.1']) {
      const f = run(name);
      const last = f.at(-1)!;
      expect([name, last.fn]).toEqual([name, name.startsWith('arm') ? 'gic_eoi_irq' : 'native_apic_mem_eoi']);
      // The last handler on that vCPU before the EOI took the interrupt the window follows.
      const handlers = f.filter((e) => (e.fn === 'hw:guest_interrupt' || e.fn === 'gic_handle_irq') && e.args['vcpu'] === last.args['vcpu']);
      expect(handlers.length).toBeGreaterThan(0);
      if (name.startsWith('arm')) expect(handlers.at(-1)!.args['intid']).toBe(last.args['intid']);
    }
  });
});
