import { EventFd, msiMessage } from '@virq/core';
import { APIC, IdleGuest, KvmVm } from '@virq/kvm-irqchip';
import { defineFlow } from './flow-kit.js';

const GSI = 24;

/**
 * F9: a virtio back end (here a vhost worker thread) writes the queue's call eventfd, which
 * QEMU registered with KVM_IRQFD on the vector's MSI route. irqfd_wakeup runs in the writer's
 * context: `atomic` — a fixed, single-destination MSI the fast path finishes
 * (kvm_arch_set_irq_inatomic → kvm_set_msi_irq → kvm_irq_delivery_to_apic_fast); `deferred`
 * — a broadcast MSI the fast path cannot finish: -EWOULDBLOCK, schedule_work(irqfd->inject),
 * and the kworker's irqfd_inject → kvm_set_irq delivers it later. Halted vCPUs take it.
 */
export const f09VirtioIrqThroughIrqfd = defineFlow('F9', (s) => {
  const vm = new KvmVm(s.ctx, { nvcpus: 2 });
  const guests = vm.vcpus().map(() => new IdleGuest(s.ctx.costs.ns.guestHandler));
  for (const v of vm.vcpus()) {
    v.lapic.regWrite(APIC.SPIV, 0x1ff);
    v.setGuest(guests[v.vcpuId]!);
  }
  const vector = 0x45;
  // atomic: physical destination APIC 1; deferred: destination 0xff (broadcast).
  const dest = s.variant === 'atomic' ? 1 : 0xff;
  vm.setGsiRouting([{ gsi: GSI, type: 'msi', msi: msiMessage((0xfee00000 | (dest << 12)) >>> 0, vector) }]);
  const call = new EventFd(s.ctx.scheduler, { name: 'vq1-call' });
  vm.irqfd({ fd: call, gsi: GSI });
  for (const v of vm.vcpus()) v.run();
  s.ctx.scheduler.runUntil(20_000);
  const vhost = s.ctx.scheduler.actor({ name: 'vhost-1234', kind: 'vhost-worker', cpu: 5 });
  const t = s.ctx.trace.channel('vhost');
  s.mark();
  s.ctx.scheduler.after(0, vhost, () => {
    // vhost_signal → eventfd_signal(vq->call_ctx)
    if (t.on) t.emit('vhost.signal', 'eventfd_signal', 'vhost_signal', { fd: call.fd });
    call.write(1);
  });
  s.ctx.scheduler.runUntil(200_000);
  s.notes.push(`vector 0x${vector.toString(16)} taken: ${guests.map((g, i) => `vCPU ${i} ×${g.taken.get(vector) ?? 0}`).join(', ')}`);
});
