import { VirqError, type TraceEvent } from '@virq/core';
import { MachineErrorCode } from '../src/errors.js';
import { FLOW_SPECS, firstMissing } from '../src/flows/expected.js';
import { FLOWS, flowById, flowFunctionNames, type FlowRun } from '../src/flows/registry.js';

/** Runs are deterministic: each (flow, variant) is run once here and shared by the tests. */
const runs = new Map<string, FlowRun>();
function run(id: string, variant: string): FlowRun {
  const key = `${id}/${variant}`;
  let r = runs.get(key);
  if (r === undefined) {
    r = flowById(id).run(variant, 1);
    runs.set(key, r);
  }
  return r;
}

const names = (t: readonly TraceEvent[]): string[] => flowFunctionNames(t);
const after = (t: readonly TraceEvent[], fn: string): TraceEvent[] => {
  let i = -1;
  t.forEach((e, k) => {
    if (e.fn === fn) i = k;
  });
  return i < 0 ? [] : t.slice(i + 1);
};

describe('registry', () => {
  test('F1..F19 in order, each with the spec of FLOWS.md', () => {
    expect(FLOWS.map((f) => f.spec.id)).toEqual(Array.from({ length: 19 }, (_, i) => `F${i + 1}`));
    expect(FLOWS.map((f) => f.spec)).toEqual([...FLOW_SPECS]);
  });

  test('flowById accepts F11, f11 and 11; an unknown id is a machine.flow-unknown error listing the flows', () => {
    expect(flowById('F11').spec.id).toBe('F11');
    expect(flowById('f11').spec.id).toBe('F11');
    expect(flowById('11').spec.id).toBe('F11');
    let err: unknown;
    try {
      flowById('F20');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VirqError);
    expect((err as VirqError).code).toBe(MachineErrorCode.FlowUnknown);
    expect((err as VirqError).message).toMatch(/F1, F2, .*F19/);
    expect(() => flowById('F2').run('no-such-variant')).toThrow(/variants are ok, wrong-size/);
  });

  test('flowFunctionNames writes kvm_exit as exit:<reason>', () => {
    const t = run('F1', 'ioeventfd').trace;
    const n = names(t);
    expect(n).toContain('exit:EPT_MISCONFIG');
    expect(n).not.toContain('kvm_exit');
    expect(n.length).toBe(t.length);
  });
});

describe('every flow and variant shows the functions of FLOWS.md / the seeds in order', () => {
  const cases = FLOW_SPECS.flatMap((s) => Object.keys(s.variants).map((v) => [s.id, v] as const));
  test.each(cases)('%s %s', (id, variant) => {
    const spec = flowById(id).spec;
    const r = run(id, variant);
    expect(r.id).toBe(id);
    expect(r.variant).toBe(variant);
    const got = names(r.trace);
    const expected = spec.variants[variant]!;
    const miss = firstMissing(expected, got);
    const report = miss < 0 ? 'all present' : `missing '${expected[miss]}' (step ${miss + 1} of ${expected.length}) after [${expected.slice(0, miss).join(', ')}]; trace: ${got.join(' ')}`;
    expect(report).toBe('all present');
  });
});

describe('flow-specific checks (issue 9)', () => {
  test('F1: with ioeventfd QEMU reads the host notifier; without it the write is handled in the exit (no eventfd)', () => {
    const on = names(run('F1', 'ioeventfd').trace);
    const off = names(run('F1', 'no-ioeventfd').trace);
    expect(on).not.toContain('virtio_pci_notify_write');
    expect(off.slice(off.indexOf('vp_notify'))).not.toContain('ioeventfd_write');
    expect(run('F1', 'ioeventfd').notes.join('\n')).toMatch(/status 0 \(VIRTIO_BLK_S_OK/);
  });

  test('F2: VIRTIO_NET_OK and promisc set; the payload of the wrong size gets VIRTIO_NET_ERR, promisc unchanged', () => {
    expect(run('F2', 'ok').notes.join('\n')).toMatch(/status byte 0 \(VIRTIO_NET_OK\); device promisc = true/);
    expect(run('F2', 'wrong-size').notes.join('\n')).toMatch(/status byte 1 \(VIRTIO_NET_ERR\); device promisc = false/);
    // The control queue has no vector: the guest polls for the reply (no interrupt is taken for it).
    const t = run('F2', 'ok').trace;
    expect(t.filter((e) => e.fn === 'virtio_pci_notify').every((e) => e.args['vector'] === 0xffff)).toBe(true);
  });

  test('F5: GSI 4 reaches both the PIC and the IOAPIC; the halted vCPU 1 is woken (no IPI) and takes the vector', () => {
    const r = run('F5', 'kernel-irqchip');
    const n = names(r.trace);
    expect(n).not.toContain('smp_send_reschedule');
    expect(n).toContain('kvm_vcpu_wake_up');
    expect(r.notes.join('\n')).toMatch(/vCPU 1 took vector 0x\w+ 1 time\(s\)/);
    // an edge: raise then lower, two KVM_IRQ_LINE ioctls
    expect(n.filter((f) => f === 'kvm_vm_ioctl_irq_line').length).toBe(2);
  });

  test('F7: the target vCPU runs in guest mode on another CPU: kvm_vcpu_kick sends a host IPI (EXTERNAL_INTERRUPT)', () => {
    for (const v of ['xapic', 'x2apic']) {
      const n = names(run('F7', v).trace);
      const k = n.indexOf('kvm_vcpu_kick');
      expect(n.slice(k)).toEqual(expect.arrayContaining(['smp_send_reschedule', 'exit:EXTERNAL_INTERRUPT', 'vmx_inject_irq']));
    }
  });

  test('F8: the main loop raises the interrupt — MSI-X message or INTx from ISR bit 0 — and the guest completes the transmit', () => {
    for (const v of ['msix', 'intx']) {
      const r = run('F8', v);
      expect(r.notes.join('\n')).toMatch(/without irqfd: guest notifiers are read by the QEMU main loop/);
      expect(r.notes.join('\n')).toMatch(/1 tx completion/);
      expect(names(r.trace)).not.toContain('irqfd_wakeup');
    }
    expect(run('F8', 'intx').trace.find((e) => e.fn === 'pci_set_irq' && e.caller === 'virtio_pci_notify')?.args['level']).toBe(1);
  });

  test('F9: atomic injection stays in the writer context; the deferred one goes through schedule_work on a kworker', () => {
    const atomic = run('F9', 'atomic').trace;
    expect(names(atomic)).not.toContain('irqfd_inject');
    const wake = atomic.find((e) => e.fn === 'irqfd_wakeup')!;
    expect(wake.actor.name).toBe('vhost-1234');
    expect(atomic.find((e) => e.fn === 'kvm_irq_delivery_to_apic_fast')!.actor).toBe(wake.actor);
    const deferred = run('F9', 'deferred').trace;
    const inject = deferred.find((e) => e.fn === 'irqfd_inject')!;
    expect(inject.actor.name).not.toBe('vhost-1234');
    expect(deferred.indexOf(inject)).toBeGreaterThan(deferred.findIndex((e) => e.fn === 'schedule_work'));
    expect(run('F9', 'deferred').notes.join('\n')).toMatch(/vCPU 0 ×1, vCPU 1 ×1/);
  });

  test('F10: the NIC IRQ is on host CPU 0, the vCPU on host CPU 1; the kick is a host IPI', () => {
    for (const v of ['msix', 'intx']) {
      const t = run('F10', v).trace;
      expect(t.find((e) => e.fn === 'handle_irq_event')!.actor.cpu).toBe(0);
      expect(t.find((e) => e.fn === 'kvm_exit' && e.args['reason'] === 'EXTERNAL_INTERRUPT')!.actor.cpu).toBe(1);
      expect(run('F10', v).notes.join('\n')).toMatch(/^1 frame\(s\) received/);
    }
  });

  test('F11: after the move the device interrupt is posted to running vCPU 6 with no VM exit', () => {
    const r = run('F11', 'move');
    expect(r.notes.join('\n')).toMatch(/taken as vector 0x41 on vCPU 6; VM exits on vCPU 6 meanwhile: 0/);
    const tail = after(r.trace, 'vmx_pi_update_irte');
    expect(names(tail)).toContain('hw:vtd_post_interrupt');
    expect(names(tail)).not.toContain('vfio_msihandler');
    expect(tail.filter((e) => e.fn === 'kvm_exit' && e.args['vcpu'] === 6)).toEqual([]);
  });

  test('F12: while masked nothing is taken (PBA bit set); unmask replays exactly one interrupt', () => {
    const r = run('F12', 'mask-fire-unmask');
    expect(r.notes[0]).toMatch(/2 device interrupts while masked: 0 taken, PBA bit set/);
    expect(r.notes[1]).toMatch(/replayed on unmask: 1 interrupt\(s\) \(vector 0x40 on vCPU 2\); PBA bit now clear/);
    expect(names(r.trace).filter((f) => f === 'msix_clr_pending').length).toBe(1);
  });

  test('F13: both orders connect producer and consumer and leave the IRTE posted to vCPU 3', () => {
    for (const v of ['consumer-first', 'producer-first']) {
      const r = run('F13', v);
      expect(r.notes.join('\n')).toMatch(/posted to vCPU 3 vector 0x61/);
      expect(r.trace.filter((e) => e.fn === 'kvm_arch_irq_bypass_add_producer')).toHaveLength(1);
    }
    // consumer-first connects inside the producer's registration, producer-first inside kvm_irqfd_assign
    const c = names(run('F13', 'consumer-first').trace);
    expect(c.indexOf('kvm_arch_irq_bypass_add_producer')).toBeGreaterThan(c.indexOf('irq_bypass_register_producer'));
    const p = names(run('F13', 'producer-first').trace);
    expect(p.indexOf('kvm_arch_irq_bypass_add_producer')).toBeGreaterThan(p.indexOf('kvm_irqfd_assign'));
  });

  test('F14: vhost-user starts with irqfds and without guest-notifier masking; without irqfd it falls back with a message, no crash', () => {
    const ok = run('F14', 'vhost-user');
    expect(ok.notes.join('\n')).toMatch(/vhost started: true; guest notifier masking used: false/);
    expect(names(ok.trace).filter((f) => f === 'kvm_irqchip_add_irqfd_notifier_gsi')).toHaveLength(2);
    const calls = ok.trace.filter((e) => e.fn === 'vhost_user_set_vring_call' && e.caller === 'vhost_virtqueue_start');
    expect(calls).toHaveLength(2);
    const fallback = run('F14', 'no-irqfd');
    expect(fallback.notes.join('\n')).toMatch(/without irqfd: guest notifiers are read by the QEMU main loop/);
    expect(names(fallback.trace)).not.toContain('kvm_irqchip_add_irqfd_notifier_gsi');
  });

  test('F14: a data queue without an MSI-X vector gets SET_VRING_CALL with no fd', () => {
    const r = run('F14', 'vectorless-tx');
    const calls = r.trace.filter((e) => e.fn === 'vhost_user_set_vring_call' && e.caller === 'vhost_virtqueue_start');
    // vhost_virtqueue_start sets the guest notifier, then (no vector) SET_VRING_CALL with no fd (-1)
    expect(calls.filter((e) => e.args['index'] === 1).at(-1)!.args['fd']).toBe(-1);
    expect(calls.filter((e) => e.args['index'] === 0).every((e) => (e.args['fd'] as number) >= 0)).toBe(true);
    expect(r.notes.join('\n')).toMatch(/tx queue vector after the reset: 0xffff/);
  });

  test('F15: new_device once, after every ring is ready', () => {
    const r = run('F15', 'qemu');
    expect(r.notes.join('\n')).toMatch(/new_device called 1 time\(s\); device running: true/);
    const n = names(r.trace);
    expect(n.filter((f) => f === 'new_device')).toHaveLength(1);
    expect(n.indexOf('new_device')).toBeGreaterThan(n.lastIndexOf('vhost_user_set_vring_enable'));
  });

  test('F16: the back end decided to notify with EVENT_IDX and the guest got its frame back', () => {
    const r = run('F16', 'event-idx');
    expect(r.notes.join('\n')).toMatch(/EVENT_IDX negotiated: true; guest: 1 tx completion\(s\), 1 frame\(s\) received/);
    expect(r.trace.find((e) => e.fn === 'irqfd_wakeup')!.actor.name).toBe('vhost-user-net');
  });

  test('F17: LPI and SPI both reach the guest; the acknowledgement exits nothing but the idle WFI', () => {
    expect(run('F17', 'lpi').notes.join('\n')).toMatch(/INTID 8193 \(LPI\); exits meanwhile: 1 /);
    expect(run('F17', 'spi').notes.join('\n')).toMatch(/INTID 37 \(SPI\); exits meanwhile: 1 /);
  });

  test('F18: the list register has HW = 1 and the physical INTID; the guest EOI deactivates the physical PPI', () => {
    const r = run('F18', 'hw');
    const lr = r.trace.find((e) => e.fn === 'vgic_v3_populate_lr')!.args['value'] as bigint;
    expect((lr >> 61n) & 1n).toBe(1n);
    expect((lr >> 32n) & 0x1fffn).toBe(27n);
    expect(names(r.trace)).toContain('hw:gic_deactivate_physical');
    expect(r.notes.join('\n')).toMatch(/took the virtual timer PPI 1 time\(s\); physical PPI still active: false/);
  });

  test('F19: resident vPE — 0 exits, no hypervisor; non-resident — the doorbell wakes the vCPU', () => {
    const res = run('F19', 'resident');
    expect(res.notes.join('\n')).toMatch(/resident when the device wrote: true; guest took vLPI 8192; VM exits meanwhile: 0/);
    expect(names(res.trace)).not.toEqual(expect.arrayContaining(['vfio_msihandler']));
    expect(names(res.trace).filter((f) => f.startsWith('exit:') || f === 'irqfd_wakeup')).toEqual([]);
    const non = run('F19', 'non-resident');
    expect(non.trace.find((e) => e.fn === 'hw:its_translate')!.args['outcome']).toBe('doorbell');
    expect(non.notes.join('\n')).toMatch(/resident when the device wrote: false; guest took vLPI 8192/);
  });
});

describe('determinism', () => {
  test('the same seed gives the identical trace (every flow and variant)', () => {
    const strip = (t: readonly TraceEvent[]) => t.map((e) => `${e.time} ${e.actor.name} ${e.fn} ${e.caller ?? ''} ${JSON.stringify(e.args, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    for (const f of FLOWS) {
      for (const v of Object.keys(f.spec.variants)) {
        const a = strip(f.run(v, 7).trace);
        expect(a.length).toBeGreaterThan(0);
        expect([f.spec.id, v, a]).toEqual([f.spec.id, v, strip(f.run(v, 7).trace)]);
      }
    }
  });
});
