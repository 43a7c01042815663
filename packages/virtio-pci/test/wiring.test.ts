import { TraceRecorder } from '@virq/core';
import { Msix } from '@virq/pci';
import { CommonCfg, VirtioStatus, ethernetFrame } from '@virq/virtio-pci';
import { FakeVhost, netMachine, onVcpu } from './harness.js';

function vhostMachine(kind: 'vhost-kernel' | 'vhost-user', opts: Parameters<typeof netMachine>[0] = {}) {
  const m = netMachine(opts);
  const worker = m.ctx.scheduler.actor({ name: kind === 'vhost-kernel' ? 'vhost-1234' : 'lcore-1', kind: kind === 'vhost-kernel' ? 'vhost-worker' : 'backend', cpu: 2 });
  const be = new FakeVhost(m.ctx, kind === 'vhost-kernel' ? 'kernel' : 'user', worker);
  return { ...m, be, worker, kind };
}

const F14_ORDER = [
  'virtio_set_status',
  'virtio_net_set_status',
  'virtio_net_vhost_status',
  'vhost_net_start',
  'virtio_pci_set_guest_notifiers',
  'msix_set_vector_notifiers',
  'msix_set_notifier_for_vector',
  'virtio_pci_vector_unmask',
  'virtio_pci_vq_vector_unmask',
  'kvm_virtio_pci_irqfd_use',
  'kvm_irqchip_add_irqfd_notifier_gsi',
  'vhost_user_set_vring_num',
  'vhost_user_set_vring_base',
  'vhost_user_set_vring_addr',
  'vhost_user_set_vring_kick',
  'vhost_user_set_vring_call',
];

describe('F14: starting vhost on DRIVER_OK re-wires the notifiers', () => {
  test('vhost-user: vector notifiers attach irqfds on unmask; per ring NUM, BASE, ADDR, KICK, CALL', () => {
    const m = vhostMachine('vhost-user');
    m.net.setBackend({ kind: 'vhost-user', ops: [m.be] });
    const rec = new TraceRecorder(m.ctx.trace.events$);
    const d = onVcpu(m, () => m.probe());
    expect(m.net.vhostStarted).toBe(true);
    expect(m.net.useGuestNotifierMask).toBe(false);
    const fns = rec.functions();
    const at = (fn: string, from = 0) => fns.indexOf(fn, from);
    // The F14 chain, in order (the first DRIVER_OK status write).
    let i = fns.findIndex((f, k) => f === 'virtio_set_status' && (rec.events[k]!.args['status'] as number) & VirtioStatus.DRIVER_OK);
    for (const fn of F14_ORDER.slice(1)) {
      const j = at(fn, i);
      expect([fn, j > i]).toEqual([fn, true]);
      i = j;
    }
    // Per queue, after the guest notifiers: QEMU's vhost_virtqueue_start order.
    expect(m.be.log).toEqual([
      'SET_OWNER', 'SET_FEATURES', 'SET_MEM_TABLE',
      'SET_VRING_NUM 0 256', 'SET_VRING_BASE 0 0', 'SET_VRING_ADDR 0', 'SET_VRING_KICK 0 fd', 'SET_VRING_CALL 0 net0-vq0-call',
      'SET_VRING_NUM 1 256', 'SET_VRING_BASE 1 0', 'SET_VRING_ADDR 1', 'SET_VRING_KICK 1 fd', 'SET_VRING_CALL 1 net0-vq1-call',
      'SET_VRING_ENABLE 0 1', 'SET_VRING_ENABLE 1 1',
    ]);
    // Two MSI routes (vectors 1 and 2) and two irqfds; ctrl vq keeps the in-VMM path.
    expect(m.vm!.log.filter((l) => l.startsWith('KVM_IRQFD'))).toEqual(['KVM_IRQFD fd=net0-vq0-call gsi=24', 'KVM_IRQFD fd=net0-vq1-call gsi=25']);
    // Transmit: kick → ioeventfd → vhost worker → call fd → irqfd → MSI → guest (F9), with no QEMU step.
    const rec2 = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.startXmit(ethernetFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], d.mac, 64, 1)));
    expect(m.be.txFrames.length).toBe(1);
    expect(m.peer.frames.length).toBe(0);
    expect(d.txCompleted).toBe(1);
    expect(m.vm!.irqfdDeliveries).toBe(1);
    expect(rec2.events.filter((e) => e.actor === m.mainLoop).map((e) => e.fn)).toEqual([]);
    // The control queue is still served by the VMM (its kick now exits to QEMU).
    const c = onVcpu(m, () => d.setPromisc(false));
    expect(c.status).toBe(0);
    expect(m.net.rxFilter.promisc).toBe(false);
  });

  test('vhost-kernel (masking supported): irqfds attach at vector use, unmask sets the call fd to the guest notifier', () => {
    const m = vhostMachine('vhost-kernel');
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be] });
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => m.probe());
    const fns = rec.functions();
    expect(fns.indexOf('kvm_irqchip_add_irqfd_notifier_gsi')).toBeLessThan(fns.indexOf('virtio_pci_vector_unmask'));
    // The unmask (guest_notifier_mask(false)) points each call fd at its guest notifier before the rings start.
    expect(m.be.log.slice(0, 3)).toEqual(['SET_OWNER', 'SET_VRING_CALL 0 net0-vq0-call', 'SET_VRING_CALL 1 net0-vq1-call']);
    expect(m.be.log.indexOf('SET_VRING_NUM 0 256')).toBeGreaterThan(2);
    expect(m.be.log).toContain('NET_SET_BACKEND 0 tap');
    expect(m.be.log.filter((l) => l.startsWith('SET_VRING_CALL'))).toEqual(['SET_VRING_CALL 0 net0-vq0-call', 'SET_VRING_CALL 1 net0-vq1-call']);
  });

  test('a data queue without an MSI-X vector gets SET_VRING_CALL with no fd', () => {
    const m = vhostMachine('vhost-user');
    m.net.setBackend({ kind: 'vhost-user', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    // The guest resets and brings the device up again with tx (queue 1) left without a vector.
    const base = m.proxy.pci.bar(4)!.address!;
    onVcpu(m, () => {
      const w = (o: number, s: 1 | 2 | 4, v: number) => m.access.mmioWrite(base + o, s, v);
      const q1 = m.net.queues[1]!;
      const saved = [0, 1, 2].map((q) => ({ ...m.net.queues[q]! }));
      w(CommonCfg.STATUS, 1, 0);
      w(CommonCfg.STATUS, 1, 3);
      w(CommonCfg.GFSELECT, 4, 1);
      w(CommonCfg.GF, 4, 1);
      w(CommonCfg.STATUS, 1, 11);
      w(CommonCfg.MSIX, 2, 0);
      for (let q = 0; q < 3; q++) {
        w(CommonCfg.Q_SELECT, 2, q);
        w(CommonCfg.Q_DESCLO, 4, saved[q]!.desc);
        w(CommonCfg.Q_AVAILLO, 4, saved[q]!.driver);
        w(CommonCfg.Q_USEDLO, 4, saved[q]!.device);
        if (q === 0) w(CommonCfg.Q_MSIX, 2, 1);
        w(CommonCfg.Q_ENABLE, 2, 1);
      }
      m.be.log.length = 0;
      w(CommonCfg.STATUS, 1, 15);
      expect(q1.vector).toBe(0xffff);
    });
    expect(d.pci.irqMode).toBe('msix-per-vq');
    expect(m.be.log.filter((l) => l.startsWith('SET_VRING_CALL 1'))).toEqual(['SET_VRING_CALL 1 net0-vq1-call', 'SET_VRING_CALL 1 nofd']);
  });
});

describe('F8 / F9 reachable by configuration', () => {
  test('F9: with irqfd the call fd is consumed in the kernel; QEMU never reads it', () => {
    const m = vhostMachine('vhost-kernel');
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.vm!.irqfdDeliveries).toBe(1);
    expect(rec.functions()).not.toContain('virtio_queue_guest_notifier_read');
  });

  test('F8: vhost on a VM without irqfd falls back to the main-loop read path, with a message', () => {
    const m = vhostMachine('vhost-kernel', { irqfd: false });
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    expect(m.net.vhostStarted).toBe(true);
    expect(m.net.backendMessages.join('\n')).toMatch(/without irqfd: guest notifiers are read by the QEMU main loop/);
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(d.txCompleted).toBe(1);
    const chain = ['virtio_queue_guest_notifier_read', 'event_notifier_test_and_clear', 'virtio_irq', 'virtio_notify_vector', 'virtio_pci_notify', 'msix_notify', 'msi_send_message'];
    const fns = rec.events.filter((e) => e.actor === m.mainLoop).map((e) => e.fn);
    expect(fns.filter((f) => chain.includes(f))).toEqual(chain);
    expect(rec.events.find((e) => e.fn === 'virtio_irq')!.caller).toBe('virtio_queue_guest_notifier_read');
    expect(m.vm!.log.some((l) => l.startsWith('KVM_SIGNAL_MSI'))).toBe(true);
  });

  test('F14 bad configuration with refuse policy: vhost is not started, the userspace device serves the queues, nothing throws', () => {
    const m = vhostMachine('vhost-user', { irqfd: false, noIrqfdPolicy: 'refuse-vhost' });
    m.net.setBackend({ kind: 'vhost-user', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    expect(m.net.vhostStarted).toBe(false);
    expect(m.net.backendMessages[0]).toMatch(/needs KVM irqfd .* vhost not started/);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(1);
    expect(m.be.log).toEqual(['SET_OWNER']);
  });

  test('without KVM at all (TCG-like): no ioeventfd, no irqfd — kicks exit to QEMU and the fallback path still serves vhost', () => {
    const m = vhostMachine('vhost-user', { kvm: false });
    m.net.setBackend({ kind: 'vhost-user', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.be.txFrames.length).toBe(1);
    expect(d.txCompleted).toBe(1);
  });

  test('a back end that refuses a message: "falling back on userspace virtio"', () => {
    const m = vhostMachine('vhost-user');
    m.be.failOn = 'SET_VRING_ADDR';
    m.net.setBackend({ kind: 'vhost-user', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    expect(m.net.vhostStarted).toBe(false);
    expect(m.net.backendMessages.at(-1)).toMatch(/falling back on userspace virtio/);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(1);
    expect(m.vm!.log.filter((l) => l.startsWith('KVM_IRQFD')).length % 2).toBe(0); // every irqfd assigned was deassigned
  });
});

describe('guest masking with vhost (F12 for a virtio device)', () => {
  function maskVector(m: ReturnType<typeof vhostMachine>, v: number, masked: boolean): void {
    const t = m.proxy.pci.bar(1)!.address!;
    m.access.mmioWrite(t + v * 16 + Msix.ENTRY_VECTOR_CTRL, 4, masked ? 1 : 0);
  }

  test('vhost-kernel: mask → call fd = masked notifier; fire; PBA read polls → pending; unmask → replay once', () => {
    const m = vhostMachine('vhost-kernel');
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    const txVector = m.net.queues[1]!.vector;
    m.be.log.length = 0;
    onVcpu(m, () => maskVector(m, txVector, true));
    expect(m.be.log).toEqual(['SET_VRING_CALL 1 vhost-vq1-masked']);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.be.txFrames.length).toBe(1);
    expect(d.txCompleted).toBe(0); // no interrupt while masked
    const pba = m.proxy.pci.bar(1)!.address! + 2048;
    expect(onVcpu(m, () => m.access.mmioRead(pba, 4)) & (1 << txVector)).toBe(1 << txVector);
    const before = m.vm!.irqfdDeliveries + m.sink.delivered.length;
    onVcpu(m, () => maskVector(m, txVector, false));
    expect(m.be.log.at(-1)).toBe('SET_VRING_CALL 1 net0-vq1-call');
    expect(d.txCompleted).toBe(1);
    expect(m.vm!.irqfdDeliveries + m.sink.delivered.length - before).toBeGreaterThanOrEqual(1);
    expect(m.proxy.msix!.isPending(txVector)).toBe(false);
  });

  test('vhost-kernel without a PBA read: unmask finds the masked notifier pending and sets the guest notifier (one interrupt, via irqfd)', () => {
    const m = vhostMachine('vhost-kernel');
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    const v = m.net.queues[1]!.vector;
    onVcpu(m, () => maskVector(m, v, true));
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(d.txCompleted).toBe(0);
    const irqfdBefore = m.vm!.irqfdDeliveries;
    const msiBefore = m.vm!.log.filter((l) => l.startsWith('KVM_SIGNAL_MSI')).length;
    onVcpu(m, () => maskVector(m, v, false));
    expect(d.txCompleted).toBe(1);
    expect(m.vm!.irqfdDeliveries - irqfdBefore).toBe(1);
    expect(m.vm!.log.filter((l) => l.startsWith('KVM_SIGNAL_MSI')).length).toBe(msiBefore);
  });

  test('vhost-user (no masking): mask → KVM_IRQFD deassign; the event waits in the call fd (PBA stays 0, as QEMU asks guest_notifier_pending); unmask → KVM_IRQFD assign finds it pending and injects', () => {
    const m = vhostMachine('vhost-user');
    m.net.setBackend({ kind: 'vhost-user', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    const v = m.net.queues[1]!.vector;
    const n = m.vm!.log.length;
    onVcpu(m, () => maskVector(m, v, true));
    expect(m.vm!.log.slice(n)).toEqual([`KVM_IRQFD fd=net0-vq1-call gsi=25 deassign`]);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(d.txCompleted).toBe(0);
    const pba = m.proxy.pci.bar(1)!.address! + 2048;
    expect(onVcpu(m, () => m.access.mmioRead(pba, 4)) & (1 << v)).toBe(0);
    expect(m.net.queues[1]!.guestNotifier!.readable).toBe(true);
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => maskVector(m, v, false));
    expect(m.vm!.log.slice(-2)).toEqual(['KVM_IRQFD fd=net0-vq1-call gsi=25', 'irqfd pending at assign: schedule_work(irqfd_inject) gsi=25']);
    expect(rec.functions()).not.toContain('msix_notify');
    expect(d.txCompleted).toBe(1);
  });
});

describe('switching backends at run time', () => {
  test('vmm → vhost-user → vmm: rings move with their last_avail_idx, ioeventfds are re-registered, traffic continues', () => {
    const m = vhostMachine('vhost-user');
    const d = onVcpu(m, () => m.probe());
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(1);
    onVcpu(m, () => m.net.setBackend({ kind: 'vhost-user', ops: [m.be] }));
    expect(m.be.log).toContain('SET_VRING_BASE 1 1');
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.be.txFrames.length).toBe(1);
    onVcpu(m, () => m.net.setBackend({ kind: 'vmm' }));
    expect(m.be.log).toContain('GET_VRING_BASE 1 2');
    expect(m.net.queues[1]!.lastAvailIdx).toBe(2);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(2);
    expect(d.txCompleted).toBe(3);
    // Every irqfd set up for vhost was torn down.
    const irqfds = m.vm!.log.filter((l) => l.startsWith('KVM_IRQFD'));
    expect(irqfds.filter((l) => l.endsWith('deassign')).length).toBe(irqfds.length / 2);
    // ioeventfds: QEMU's three, deassigned on grab, two for vhost, then QEMU's three again.
    const io = m.vm!.log.filter((l) => l.startsWith('KVM_IOEVENTFD') && !l.endsWith('deassign'));
    expect(io.length).toBe(3 + 2 + 3);
  });
});

describe('vhost with a guest on INTx', () => {
  test('without vhostforce the userspace device stays (vhost_net_query), with a message', () => {
    const m = vhostMachine('vhost-kernel', { irqModes: ['intx'] });
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be] });
    const d = onVcpu(m, () => m.probe());
    expect(m.net.vhostStarted).toBe(false);
    expect(m.net.backendMessages[0]).toMatch(/needs MSI-X guest notifiers.*set force/);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(1);
  });

  test('with vhostforce: F8\'s INTx branch — main loop reads the call fd, virtio_pci_notify raises INTx from ISR bit 0', () => {
    const m = vhostMachine('vhost-kernel', { irqModes: ['intx'] });
    m.net.setBackend({ kind: 'vhost-kernel', ops: [m.be], force: true });
    const d = onVcpu(m, () => m.probe());
    expect(m.net.vhostStarted).toBe(true);
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(d.txCompleted).toBe(1);
    const chain = ['virtio_queue_guest_notifier_read', 'event_notifier_test_and_clear', 'virtio_irq', 'virtio_notify_vector', 'virtio_pci_notify', 'pci_set_irq', 'vp_interrupt', 'virtio_pci_isr_read', 'pci_set_irq'];
    expect(rec.functions().filter((f) => chain.includes(f))).toEqual(chain);
    expect(rec.events.filter((e) => e.fn === 'pci_set_irq').map((e) => [e.caller, e.args['level']])).toEqual([['virtio_pci_notify', 1], ['pci_irq_deassert', 0]]);
    expect(m.intx.level).toBe(false);
  });
});
