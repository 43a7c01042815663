import { Rig } from './support/rig.js';

function inOrder(fns: readonly string[], expected: readonly string[]): void {
  let i = 0;
  for (const f of fns) if (i < expected.length && f === expected[i]) i++;
  expect(expected.slice(i)).toEqual([]);
}

function startedRig(): Rig {
  const rig = new Rig({ vcpus: 4, msixVectors: 2 });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId + 4);
  rig.on('qemu-system-x86', () => rig.guestEnableMsix([{ apicId: 1, vector: 0x50 }, { apicId: 2, vector: 0x51 }]));
  return rig;
}

describe('F12: masking and unmasking an MSI-X vector of an assigned device', () => {
  test('mask moves VFIO to the userspace notifier: producer re-registered, no consumer matches, IRTE back to remapped', () => {
    const rig = startedRig();
    const v0 = rig.qemu.vector(0);
    expect(v0.virq).toBeGreaterThanOrEqual(24);
    expect(rig.vfio.triggerOf(0)).toBe(v0.kvmInterrupt);
    const from = rig.mark();
    rig.onVcpu(1, () => rig.guestMask(0));
    const fns = rig.fns(from);
    inOrder(fns, ['msix_table_mmio_write', 'msix_handle_mask_update', 'msix_fire_vector_notifier', 'vfio_msix_vector_release', 'vfio_pci_set_msi_trigger', 'vfio_msi_set_vector_signal', 'irq_bypass_unregister_producer', 'free_irq', 'request_irq', 'irq_bypass_register_producer']);
    // The kvm_interrupt irqfd stays assigned (its consumer is still registered), but the
    // producer's token is now `interrupt`, which was never an irqfd: nothing to connect.
    expect(fns.slice(fns.indexOf('irq_bypass_register_producer'))).not.toContain('kvm_arch_irq_bypass_add_producer');
    expect(rig.vfio.triggerOf(0)).toBe(v0.interrupt);
    expect(rig.kvm.irqfdList().map((f) => f.eventfd)).toContain(v0.kvmInterrupt);
    expect(rig.host.remapper.modeOf(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toBe('remapped');
    expect(rig.host.irteViolations(rig.kvm.irqfdList())).toEqual([]);
  });

  test('mask → fire → PBA bit and no guest interrupt → unmask → KVM_SET_GSI_ROUTING → exactly one replayed interrupt', () => {
    const rig = startedRig();
    rig.onVcpu(1, () => rig.guestMask(0));
    const delivered = rig.kvm.deliveries.length;
    const fireFrom = rig.mark();
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
    inOrder(rig.fns(fireFrom), ['hw:vtd_remap_interrupt', 'handle_edge_irq', 'vfio_msihandler', 'eventfd_signal', 'vfio_msi_interrupt', 'vfio_msix_pba_enable', 'msix_notify', 'msix_set_pending']);
    expect(rig.kvm.deliveries.length).toBe(delivered);
    expect(rig.msix.isPending(0)).toBe(true);
    expect(rig.msix.pbaRead(0, 4) & 1).toBe(1);
    expect(rig.qemu.pbaEmulated).toBe(true);
    expect(rig.qemu.vfioPendingBit(0)).toBe(true);
    // Fire again while masked: still a single pending bit.
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(0));
    expect(rig.kvm.deliveries.length).toBe(delivered);

    const commits = rig.routes.commits;
    const from = rig.mark();
    rig.onVcpu(1, () => rig.guestUnmask(0));
    const fns = rig.fns(from);
    inOrder(fns, [
      'msix_handle_mask_update',
      'msix_fire_vector_notifier',
      'vfio_msix_vector_use',
      'vfio_msix_vector_do_use',
      'vfio_update_kvm_msi_virq',
      'kvm_irqchip_update_msi_route',
      'kvm_irqchip_commit_routes',
      'kvm_set_irq_routing',
      'vfio_pci_set_msi_trigger',
      'irq_bypass_register_producer',
      'kvm_arch_irq_bypass_add_producer',
      'vmx_pi_update_irte',
      'msix_clr_pending',
      'msix_notify',
      'msi_send_message',
    ]);
    expect(rig.routes.commits).toBe(commits + 1);
    rig.run();
    const replayed = rig.kvm.deliveries.slice(delivered);
    expect(replayed).toEqual([expect.objectContaining({ vcpu: 1, vector: 0x50 })]);
    expect(rig.msix.isPending(0)).toBe(false);
    expect(rig.qemu.pbaEmulated).toBe(false);
    expect(rig.host.remapper.postedTarget(rig.host.irqs.irteIndexOf(rig.vfio.hostIrqOf(0)!))).toEqual({ vcpuId: 1, vector: 0x50 });
  });

  test('unmasking an already unmasked vector changes nothing', () => {
    const rig = startedRig();
    const from = rig.mark();
    const commits = rig.routes.commits;
    rig.onVcpu(1, () => rig.guestUnmask(0));
    expect(rig.fns(from)).toEqual(['vmx_handle_exit', 'msix_table_mmio_write']);
    expect(rig.routes.commits).toBe(commits);
  });

  test('a masked vector that never fired replays nothing on unmask', () => {
    const rig = startedRig();
    rig.onVcpu(1, () => rig.guestMask(1));
    const delivered = rig.kvm.deliveries.length;
    rig.onVcpu(1, () => rig.guestUnmask(1));
    rig.run();
    expect(rig.kvm.deliveries.length).toBe(delivered);
  });
});
