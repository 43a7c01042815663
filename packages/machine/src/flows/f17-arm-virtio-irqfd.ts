import { EventFd, KvmRoutingTable } from '@virq/core';
import { SPI_BASE_INTID } from '@virq/arm-gic';
import { defineFlow } from './flow-kit.js';
import { armFlowRig } from './arm-flow-rig.js';

/**
 * F17 (seed 004): virtio-net's call eventfd on arm64 with KVM's vGICv3. `lpi`: the vector's
 * MSI route goes through the vITS — the irqfd injects an LPI (first signal, translation-cache
 * miss: irqfd_inject → kvm_set_msi → vgic_its_inject_msi → vgic_its_trigger_msi →
 * vgic_its_resolve_lpi); `spi`: a wired (INTx-style) route injects SPI 32 + pin in atomic
 * context (kvm_arch_set_irq_inatomic → vgic_irqfd_set_irq → kvm_vgic_inject_irq). Either way KVM queues it, lists it in a list register on the next
 * entry (vgic_flush_lr_state → vgic_v3_populate_lr) and the guest acknowledges it through its
 * CPU interface, without an exit.
 */
export const f17ArmVirtioIrqfd = defineFlow('F17', (s) => {
  const r = armFlowRig(s.ctx, 'v3');
  const { vm } = r;
  const sched = s.ctx.scheduler;
  const call = new EventFd(sched, { name: 'vq0-call' });
  const got: number[] = [];
  let intid: number;
  if (s.variant === 'lpi') {
    // virtio-net at 00:01.0 → DeviceID 0x8; the guest's two MSI-X vectors are LPIs on vCPU 0.
    const { lpis, messages } = vm.guestDriver.mapMsi(0x8, 2, 0);
    const routes = new KvmRoutingTable(vm.interruptApi, 32);
    const gsi = routes.addMsiRoute(messages[1]!);
    routes.commit();
    vm.interruptApi.irqfd({ fd: call, gsi });
    intid = lpis[1]!;
  } else {
    intid = SPI_BASE_INTID + 5;
    vm.guestDriver.enableSpi(intid, { trigger: 'edge', vcpu: 0 });
    vm.interruptApi.irqfd({ fd: call, gsi: 5 }); // the default route: GSI 5 → irqchip 0 pin 5
  }
  vm.vcpus[0]!.onInterrupt(intid, (i) => got.push(i));
  sched.runUntil(100_000); // both vCPUs boot and block in WFI
  const vhost = sched.actor({ name: 'vhost-4242', kind: 'vhost-worker', cpu: 3 });
  const exits = vm.exitCounts().total;
  s.mark();
  sched.at(200_000, vhost, () => call.write(1)); // vhost_signal → eventfd_signal
  sched.runUntil(300_000);
  s.notes.push(`guest took INTID ${got.join(', ') || 'nothing'} (${s.variant === 'lpi' ? 'LPI' : 'SPI'}); exits meanwhile: ${vm.exitCounts().total - exits} (the WFI the idle guest returns to)`);
});
