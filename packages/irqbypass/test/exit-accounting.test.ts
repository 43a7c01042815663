import { Rig } from './support/rig.js';

/**
 * What posted interrupts save (FACTS §8.2, §15.3; ELI ASPLOS 2012): an assigned device's MSI to
 * a running vCPU costs no VM exit with VT-d posting; without it, the host takes the interrupt
 * and KVM must make the vCPU exit and inject. Counted on the trace.
 */
function deliverOnce(opts: { apicv: boolean; devicePosting: boolean; irqOnVcpuCpu: boolean }): { exits: number; injections: number; hostIrqs: number; vid: number; latencyNs: number } {
  // vCPU 2 runs on host CPU 6; the physical vector's IRQ is affine to CPU 6 or CPU 0.
  const rig = new Rig({ vcpus: 4, msixVectors: 1, apicv: opts.apicv, devicePosting: opts.devicePosting, irqCpu: () => (opts.irqOnVcpuCpu ? 6 : 0) });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId + 4);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 2, vector: 0x70 }]));
  const from = rig.mark();
  const t0 = rig.ctx.scheduler.now;
  rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
  const ev = rig.recorder.events.slice(from);
  const delivered = rig.kvm.deliveries.filter((d) => d.time >= t0);
  expect(delivered).toHaveLength(1);
  expect(delivered[0]).toMatchObject({ vcpu: 2, vector: 0x70 });
  return {
    exits: ev.filter((e) => e.fn === 'vmx_handle_exit' && e.args['reason'] === 'EXTERNAL_INTERRUPT').length,
    injections: ev.filter((e) => e.fn === 'vmx_inject_irq').length,
    hostIrqs: ev.filter((e) => e.fn === 'vfio_msihandler').length,
    vid: ev.filter((e) => e.fn === 'hw:virtual_interrupt_delivery').length,
    latencyNs: delivered[0]!.time - t0,
  };
}

describe('vCPU accounting of an assigned device interrupt to a running vCPU', () => {
  test('VT-d posting + APICv: 0 exits, 0 injections, no host handler', () => {
    expect(deliverOnce({ apicv: true, devicePosting: true, irqOnVcpuCpu: false })).toMatchObject({ exits: 0, injections: 0, hostIrqs: 0, vid: 1 });
  });

  test('no posting, no APICv: one EXTERNAL_INTERRUPT exit and one injection', () => {
    expect(deliverOnce({ apicv: false, devicePosting: false, irqOnVcpuCpu: false })).toMatchObject({ exits: 1, injections: 1, hostIrqs: 1, vid: 0 });
  });

  test('no posting, no APICv, IRQ on the vCPU’s own CPU: the host interrupt itself is the exit, then injection', () => {
    expect(deliverOnce({ apicv: false, devicePosting: false, irqOnVcpuCpu: true })).toMatchObject({ exits: 1, injections: 1, hostIrqs: 1 });
  });

  test('APICv without VT-d posting, IRQ on the vCPU’s CPU: one exit, then the PIR is synced on entry (no injection)', () => {
    expect(deliverOnce({ apicv: true, devicePosting: false, irqOnVcpuCpu: true })).toMatchObject({ exits: 1, injections: 0, hostIrqs: 1, vid: 1 });
  });

  test('posting is the fastest path in virtual time', () => {
    const posted = deliverOnce({ apicv: true, devicePosting: true, irqOnVcpuCpu: false }).latencyNs;
    const legacy = deliverOnce({ apicv: false, devicePosting: false, irqOnVcpuCpu: false }).latencyNs;
    expect(posted).toBeLessThan(legacy);
  });
});
