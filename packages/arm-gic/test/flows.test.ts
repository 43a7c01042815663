import { EventFd, KvmRoutingTable, TraceRecorder, formatFtrace } from '@virq/core';
import { GICR_VLPI_FRAME, GICR_VPENDBASER, LPI_BASE_INTID, SPI_BASE_INTID, VTIMER_PPI } from '@virq/arm-gic';
import { armMachine, assignedDevice, fnsOf, inOrder } from './helpers.js';

describe('F17: virtio-net on ARM with irqfd', () => {
  test('the call fd injects an LPI through the vITS; KVM lists it on entry; the guest acknowledges it with no exit', () => {
    const r = armMachine('v3');
    const { ctx, vm } = r;
    // virtio-net at 00:01.0 → DeviceID 0x8; the guest allocates 2 MSI-X vectors
    const { lpis, messages } = vm.guestDriver.mapMsi(0x8, 2, 0);
    const routes = new KvmRoutingTable(vm.interruptApi, 32);
    const gsi = routes.addMsiRoute(messages[1]);
    routes.commit();
    const call = new EventFd(ctx.scheduler, { name: 'vq0-call' });
    vm.interruptApi.irqfd({ fd: call, gsi });
    const got: number[] = [];
    vm.vcpus[0].onInterrupt(lpis[1], (i) => got.push(i));
    ctx.scheduler.runUntil(100_000); // both vCPUs boot and block in WFI
    expect(vm.vcpus[0].state).toBe('blocked');
    const vhost = ctx.scheduler.actor({ name: 'vhost-4242', kind: 'vhost-worker', cpu: 3 });
    const rec = new TraceRecorder(ctx.trace.events$);
    const exitsBefore = vm.exitCounts().total;
    ctx.scheduler.at(200_000, vhost, () => call.write(1)); // vhost_signal → eventfd_signal
    ctx.scheduler.runUntil(300_000);
    expect(got).toEqual([lpis[1]]);
    const fns = fnsOf(rec.events);
    if (process.env['DBG']) console.log(formatFtrace(rec.events));
    // first interrupt: translation cache miss → irqfd workqueue → kvm_set_msi
    expect(inOrder(fns, ['irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'irqfd_inject', 'kvm_set_irq', 'kvm_set_msi', 'vgic_its_inject_msi', 'vgic_its_trigger_msi', 'vgic_its_resolve_lpi', 'vgic_queue_irq_unlock',
      'kvm_vcpu_kick', 'kvm_vcpu_wakeup', 'kvm_vgic_flush_hwstate', 'vgic_flush_lr_state', 'vgic_v3_populate_lr', 'kvm_entry',
      'gic_handle_irq', 'gic_eoi_irq'])).toBe(true);
    // acknowledge and EOI did not exit: the only exit is the WFI the idle guest goes back to
    const after = vm.exitCounts();
    expect(after.total - exitsBefore).toBe(1);
    expect(after.WFx).toBeGreaterThan(0);
    // second interrupt: the translation is cached, injected from irqfd_wakeup itself
    rec.events.length = 0;
    ctx.scheduler.at(400_000, vhost, () => call.write(1));
    ctx.scheduler.runUntil(500_000);
    expect(got).toEqual([lpis[1], lpis[1]]);
    const fns2 = fnsOf(rec.events);
    // second signal: the translation cache hits in atomic context — no workqueue, no ITS lock, no resolve
    expect(inOrder(fns2, ['irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'vgic_its_inject_cached_translation', 'vgic_queue_irq_unlock', 'kvm_vcpu_kick'])).toBe(true);
    expect(fns2).not.toContain('irqfd_inject');
    expect(fns2).not.toContain('vgic_its_resolve_lpi');
    expect(rec.events.find((e) => e.fn === 'vgic_queue_irq_unlock')!.caller).toBe('vgic_its_inject_cached_translation');
    // the populated LR is a pending, Group-1, HW = 0 LR with vINTID = the LPI (FACTS §14.1 bits)
    const lr = rec.events.find((e) => e.fn === 'vgic_v3_populate_lr')!.args['value'] as bigint;
    expect(lr & 0xffff_ffffn).toBe(BigInt(lpis[1]));
    expect((lr >> 62n) & 3n).toBe(1n); // State = pending
    expect((lr >> 60n) & 1n).toBe(1n); // Group 1
    expect((lr >> 61n) & 1n).toBe(0n); // HW = 0
    expect((lr >> 48n) & 0xffn).toBe(0xa0n); // priority from the LPI configuration table
  });

  test('an INTx-style irqchip route injects SPI 32 + pin from irqfd_wakeup (kvm_arch_set_irq_inatomic)', () => {
    const { ctx, vm } = armMachine('v3');
    vm.guestDriver.enableSpi(SPI_BASE_INTID + 5, { trigger: 'edge', vcpu: 1 });
    const fd = new EventFd(ctx.scheduler, { name: 'intx' });
    vm.interruptApi.irqfd({ fd, gsi: 5 }); // default route: GSI 5 → irqchip 0 pin 5
    const got: number[] = [];
    vm.vcpus[1].onInterrupt(37, (i) => got.push(i));
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    const qemu = ctx.scheduler.actor({ name: 'qemu-system-aarch64', kind: 'vmm-main', cpu: 2 });
    ctx.scheduler.at(60_000, qemu, () => fd.write(1));
    ctx.scheduler.runUntil(200_000);
    expect(got).toEqual([37]);
    expect(inOrder(fnsOf(rec.events), ['irqfd_wakeup', 'kvm_arch_set_irq_inatomic', 'kvm_vgic_inject_irq', 'vgic_queue_irq_unlock', 'vgic_v3_populate_lr', 'gic_handle_irq'])).toBe(true);
    expect(rec.events.find((e) => e.fn === 'vgic_queue_irq_unlock')!.args['vcpu']).toBe(1); // IROUTER → vCPU 1
  });
});

describe('F18: GICv3, a physical interrupt forwarded to a vCPU indirectly', () => {
  test('host takes the interrupt, KVM injects it, the LR carries HW + pINTID, the guest EOI deactivates the physical interrupt', () => {
    const r = armMachine('v3', { numVcpus: 1 });
    const { ctx, vm, host } = r;
    vm.guestDriver.enablePpi(0, VTIMER_PPI);
    vm.vcpus[0].guest.idleWithWfi = false; // a busy guest: the timer fires while it runs
    vm.forwardPhysicalIrq(VTIMER_PPI, 0, VTIMER_PPI);
    let activeInHandler: boolean | undefined;
    vm.vcpus[0].onInterrupt(VTIMER_PPI, () => {
      activeInHandler = host.isActive(VTIMER_PPI, 0);
      host.gic.setPpiLevel(0, VTIMER_PPI, false); // the guest reprograms its timer: the line drops
    });
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    const before = vm.exitCounts();
    const timer = ctx.scheduler.actor({ name: 'arch-timer', kind: 'device', cpu: 0 });
    ctx.scheduler.at(60_000, timer, () => host.gic.setPpiLevel(0, VTIMER_PPI, true));
    ctx.scheduler.runUntil(200_000);
    const fns = fnsOf(rec.events);
    if (process.env['DBG']) console.log(formatFtrace(rec.events));
    expect(inOrder(fns, ['kvm_exit', 'gic_handle_irq', 'kvm_vgic_inject_irq', 'vgic_queue_irq_unlock', 'vgic_v3_populate_lr', 'kvm_entry',
      'gic_handle_irq', 'gic_eoi_irq', 'hw:gic_deactivate_physical'])).toBe(true);
    const exit = rec.events.find((e) => e.fn === 'kvm_exit')!;
    expect(exit.args['reason']).toBe('IRQ');
    expect(exit.args['esr_ec']).toBe(0);
    const lr = rec.events.find((e) => e.fn === 'vgic_v3_populate_lr')!.args['value'] as bigint;
    expect((lr >> 61n) & 1n).toBe(1n); // HW
    expect((lr >> 32n) & 0x1fffn).toBe(BigInt(VTIMER_PPI)); // pINTID
    expect((lr >> 41n) & 1n).toBe(0n); // no EOI maintenance request with HW = 1
    expect(activeInHandler).toBe(true); // the physical interrupt stayed active (EOImode = 1 host)
    expect(host.isActive(VTIMER_PPI, 0)).toBe(false); // ... until the guest deactivated it
    const after = vm.exitCounts();
    expect(after.total - before.total).toBe(1); // one IRQ exit, no maintenance exit
    expect(vm.vcpus[0].stats.maintenance).toBe(0);
    expect(formatFtrace(rec.events)).toMatch(/CPU 0\/KVM-\d+ +\[000\] .*hw:gic_deactivate_physical pintid=27/);
  });
});

describe('F19: GICv4, a vLPI delivered directly', () => {
  for (const version of ['v4', 'v4.1'] as const) {
    test(`${version}: resident vPE takes the vLPI with no exit; non-resident gets its VPT bit and a doorbell`, () => {
      const r = armMachine(version, { numVcpus: 1, hostCpus: 2 });
      const { ctx, vm, host } = r;
      const schedule = version === 'v4.1' ? 'its_vpe_4_1_schedule' : 'its_vpe_schedule'; // irq-gic-v3-its.c
      const dev = assignedDevice(r, 0x100, 1);
      const rec = new TraceRecorder(ctx.trace.events$);
      expect(vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries().find((e) => e.gsi === dev.gsi)!)).toBe(0);
      expect(inOrder(fnsOf(rec.events), ['kvm_vgic_v4_set_forwarding', 'its_send_discard', 'its_send_vmapti'])).toBe(true);
      const got: number[] = [];
      vm.vcpus[0].onInterrupt(dev.guestLpi, (i) => got.push(i));
      vm.vcpus[0].guest.idleWithWfi = false;
      ctx.scheduler.runUntil(50_000);
      expect(vm.vcpus[0].vpe!.resident).toBe(true);
      rec.events.length = 0;
      const nic = ctx.scheduler.actor({ name: 'nic-dma', kind: 'device', cpu: 1 });
      const exits0 = vm.exitCounts().total;
      ctx.scheduler.at(60_000, nic, () => host.deviceMsi(0x100, 0));
      ctx.scheduler.runUntil(100_000);
      expect(got).toEqual([dev.guestLpi]);
      expect(vm.exitCounts().total).toBe(exits0); // no exit, no hypervisor
      const fns = fnsOf(rec.events);
      expect(inOrder(fns, ['hw:its_translate', 'hw:its_vlpi_direct', 'gic_handle_irq', 'gic_eoi_irq'])).toBe(true);
      expect(fns).not.toContain('vfio_msihandler');
      expect(fns).not.toContain('irqfd_wakeup');
      expect(fns).not.toContain('kvm_exit');
      // now idle: the guest executes WFI, KVM blocks the vCPU and the vPE goes non-resident with a doorbell
      vm.vcpus[0].guest.idleWithWfi = true;
      vm.vcpus[0].guestWfi();
      ctx.scheduler.runUntil(150_000);
      expect(vm.vcpus[0].state).toBe('blocked');
      expect(vm.vcpus[0].vpe!.resident).toBe(false);
      rec.events.length = 0;
      let vptBit = -1;
      ctx.scheduler.at(200_000, nic, () => {
        host.deviceMsi(0x100, 0);
        const vpe = vm.vcpus[0].vpe!;
        vptBit = host.memory.read8(vpe.vptAddr + (dev.guestLpi >> 3)) & (1 << (dev.guestLpi & 7));
      });
      ctx.scheduler.runUntil(300_000);
      if (process.env['DBG']) console.log(formatFtrace(rec.events));
      expect(vptBit).not.toBe(0); // pending bit set in the vPE's virtual pending table
      expect(got).toEqual([dev.guestLpi, dev.guestLpi]);
      expect(inOrder(fnsOf(rec.events), ['hw:its_translate', 'gic_handle_irq', 'vgic_v4_doorbell_handler', 'kvm_vcpu_kick',
        'kvm_vcpu_wakeup', 'vgic_v4_load', schedule, 'kvm_entry', 'gic_handle_irq'])).toBe(true);
      expect(rec.events.find((e) => e.fn === 'hw:its_translate')!.args['outcome']).toBe('doorbell');
      // the doorbell was taken by the host on the vPE's CPU while no vCPU ran there
      const db = rec.events.find((e) => e.fn === 'vgic_v4_doorbell_handler')!;
      expect(db.actor.name).toBe('swapper/0');
      // scheduling in made the vPE resident again on the vCPU's redistributor (VPENDBASER.Valid)
      expect(rec.events.find((e) => e.fn === schedule)!.args['rd']).toBe(0);
      // and it went non-resident again when the idle guest blocked (Valid = 0)
      expect((host.gic.redistributors[0].read64(GICR_VLPI_FRAME + GICR_VPENDBASER) >> 63n) & 1n).toBe(0n);
    });
  }

  test('GICv3 vs GICv4 under the same device interrupt load: exits per interrupt side by side', () => {
    const N = 40;
    const result: Record<string, { exits: number; interrupts: number; hostIrqs: number }> = {};
    for (const version of ['v3', 'v4', 'v4.1'] as const) {
      const r = armMachine(version, { numVcpus: 1, hostCpus: 2 });
      const { ctx, vm, host } = r;
      const dev = assignedDevice(r, 0x100, 1);
      // the irqbypass consumer; a no-op returning 0 on GICv3 (the LPI stays on the software path)
      expect(vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0])).toBe(0);
      vm.vcpus[0].guest.idleWithWfi = false;
      let got = 0;
      vm.vcpus[0].onInterrupt(dev.guestLpi, () => got++);
      ctx.scheduler.runUntil(50_000);
      const e0 = vm.exitCounts().total;
      const h0 = host.stats.hostIrqs;
      const nic = ctx.scheduler.actor({ name: 'nic-dma', kind: 'device', cpu: 1 });
      for (let i = 0; i < N; i++) ctx.scheduler.at(100_000 + i * 20_000, nic, () => host.deviceMsi(0x100, 0));
      ctx.scheduler.runUntil(100_000 + N * 20_000 + 50_000);
      result[version] = { exits: vm.exitCounts().total - e0, interrupts: got, hostIrqs: host.stats.hostIrqs - h0 };
    }
    expect(result['v3'].interrupts).toBe(N);
    expect(result['v4'].interrupts).toBe(N);
    expect(result['v4.1'].interrupts).toBe(N);
    expect(result['v3'].exits).toBe(N); // one IRQ exit (kick IPI) per interrupt
    expect(result['v3'].hostIrqs).toBe(N); // each one is a host LPI → vfio_msihandler
    expect(result['v4'].exits).toBe(0); // resident vPE: 0 exits per interrupt
    expect(result['v4.1'].exits).toBe(0);
    expect(result['v4'].hostIrqs).toBe(0);
  });
});

test('an LPI is INTID ≥ 8192 and SPIs start at 32 (FACTS §12.1)', () => {
  expect(LPI_BASE_INTID).toBe(8192);
  expect(SPI_BASE_INTID).toBe(32);
});
