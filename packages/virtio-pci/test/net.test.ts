import { TraceRecorder, type TraceEvent } from '@virq/core';
import { VirtioNetCtrl, VirtioStatus, ethernetFrame } from '@virq/virtio-pci';
import { netMachine, onVcpu } from './harness.js';

function record(m: { ctx: { trace: { events$: import('rxjs').Observable<TraceEvent> } } }) {
  return new TraceRecorder(m.ctx.trace.events$);
}

describe('F2: virtnet_send_command(RX, PROMISC) end to end', () => {
  test.each([
    ['ioeventfd (kick never exits to QEMU)', { ioeventfd: true }],
    ['no ioeventfd (synchronous virtio_pci_notify_write)', { ioeventfd: false }],
  ])('%s: promisc byte reaches virtio_net_handle_rx_mode, VIRTIO_NET_OK polled from the used ring', (_name, o) => {
    const m = netMachine(o);
    const d = onVcpu(m, () => m.probe());
    expect(m.net.rxFilter.promisc).toBe(true); // QEMU's reset value
    const rec = record(m);
    const cmd = onVcpu(m, () => d.setPromisc(false));
    expect(cmd.done).toBe(true);
    expect(cmd.status).toBe(VirtioNetCtrl.OK);
    expect(m.net.rxFilter.promisc).toBe(false);
    const fns = rec.functions();
    const order = ['virtnet_send_command', 'vp_notify', 'virtio_net_handle_ctrl', 'virtio_net_handle_rx_mode'];
    const idx = order.map((f) => fns.indexOf(f));
    expect(idx.every((i) => i >= 0)).toBe(true);
    expect([...idx].sort((a, b) => a - b)).toEqual(idx);
    if (o.ioeventfd) {
      expect(fns).toContain('virtio_queue_host_notifier_read');
      expect(fns).not.toContain('virtio_pci_notify_write');
      // The driver polled: at least one poll happened after the kick, before the main loop ran.
      expect(cmd.polls).toBeGreaterThan(1);
    } else {
      expect(fns.indexOf('virtio_pci_notify_write')).toBeLessThan(fns.indexOf('virtio_net_handle_ctrl'));
      expect(cmd.polls).toBe(1);
    }
    // The ctrl queue has no callback in virtio_net, so no MSI-X vector: the reply raises no interrupt.
    expect(m.net.ctrlVq.vector).toBe(0xffff);
  });

  test('a command without the one-byte payload answers VIRTIO_NET_ERR and changes nothing', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const c = onVcpu(m, () => d.sendCommand(VirtioNetCtrl.CLASS_RX, VirtioNetCtrl.RX_PROMISC, undefined));
    expect(c.status).toBe(VirtioNetCtrl.ERR);
    expect(m.net.rxFilter.promisc).toBe(true);
    expect(m.net.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(0);
  });

  test('other RX commands, unknown commands and classes', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const run = (cls: number, cmd: number, p?: number[]) => onVcpu(m, () => d.sendCommand(cls, cmd, p === undefined ? undefined : new Uint8Array(p))).status;
    expect(run(0, VirtioNetCtrl.RX_ALLMULTI, [1])).toBe(0);
    expect(m.net.rxFilter.allmulti).toBe(true);
    expect(run(0, VirtioNetCtrl.RX_NOBCAST, [1])).toBe(0);
    expect(m.net.rxFilter.nobcast).toBe(true);
    expect(run(0, 9, [1])).toBe(1);
    expect(run(7, 0, [1])).toBe(1);
  });

  test('MAC_TABLE_SET parses both tables; inconsistent sizes are VIRTIO_NET_ERR; MAC_ADDR_SET needs exactly 6 bytes', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const mac1 = [0x02, 1, 2, 3, 4, 5];
    const mc = [0x01, 0, 0x5e, 0, 0, 1];
    const table = [1, 0, 0, 0, ...mac1, 1, 0, 0, 0, ...mc];
    const st = (cmd: number, p: number[]) => onVcpu(m, () => d.sendCommand(VirtioNetCtrl.CLASS_MAC, cmd, new Uint8Array(p))).status;
    expect(st(VirtioNetCtrl.MAC_TABLE_SET, table)).toBe(0);
    expect(m.net.rxFilter.macs).toEqual([mac1, mc]);
    expect(m.net.rxFilter.firstMulti).toBe(1);
    expect(st(VirtioNetCtrl.MAC_TABLE_SET, [2, 0, 0, 0, ...mac1])).toBe(1);
    expect(st(VirtioNetCtrl.MAC_ADDR_SET, [2, 2, 2, 2, 2])).toBe(1);
    expect(st(VirtioNetCtrl.MAC_ADDR_SET, [2, 2, 2, 2, 2, 2])).toBe(0);
    expect(m.net.mac).toEqual([2, 2, 2, 2, 2, 2]);
  });

  test('MQ: the driver sets its queue pairs at probe; out-of-range pairs are refused', () => {
    const m = netMachine({ pairs: 4 });
    const d = onVcpu(m, () => m.probe());
    expect(d.pairs).toBe(4);
    expect(m.net.currQueuePairs).toBe(4);
    const st = onVcpu(m, () => d.sendCommand(VirtioNetCtrl.CLASS_MQ, VirtioNetCtrl.MQ_VQ_PAIRS_SET, new Uint8Array([5, 0]))).status;
    expect(st).toBe(VirtioNetCtrl.ERR);
    expect(m.net.currQueuePairs).toBe(4);
  });
});

describe('F3 transmit and receive through the in-VMM device', () => {
  test('start_xmit: the vnet header is stripped, the frame reaches the peer, the used buffer comes back by interrupt', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const rec = record(m);
    const f = ethernetFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], d.mac, 60, 7);
    onVcpu(m, () => d.startXmit(f));
    expect(m.peer.frames).toEqual([f]);
    expect(d.txCompleted).toBe(1);
    const fns = rec.functions();
    for (const fn of ['start_xmit', 'vp_notify', 'virtio_queue_host_notifier_read', 'virtio_net_flush_tx', 'virtio_notify', 'virtio_irq', 'virtio_notify_vector', 'virtio_pci_notify', 'msix_notify', 'msi_send_message']) expect(fns).toContain(fn);
    expect(m.vm!.log.some((l) => l.startsWith('KVM_SIGNAL_MSI'))).toBe(true);
  });

  test('KVM_IOEVENTFD goes on notify cap offset + queue_notify_off × 4, len 0 (fast MMIO) after DRIVER_OK', () => {
    const m = netMachine();
    onVcpu(m, () => m.probe());
    const bar4 = m.proxy.pci.bar(4)!.address!;
    const regs = m.vm!.log.filter((l) => l.startsWith('KVM_IOEVENTFD'));
    expect(regs).toEqual([0, 1, 2].map((q) => `KVM_IOEVENTFD mmio addr=0x${(bar4 + 0x3000 + 4 * q).toString(16)} len=0`));
  });

  test('receive: mergeable buffers carry num_buffers = 1; the filter drops unicast to another MAC without promisc', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const ours = ethernetFrame(d.mac, [2, 0, 0, 0, 0, 9], 100, 1);
    m.ctx.scheduler.after(0, m.mainLoop, () => m.net.receive(ours));
    m.ctx.scheduler.runUntilIdle();
    expect(m.received).toEqual([ours]);
    onVcpu(m, () => d.setPromisc(false));
    const other = ethernetFrame([2, 9, 9, 9, 9, 9], [2, 0, 0, 0, 0, 9], 100, 2);
    m.ctx.scheduler.after(0, m.mainLoop, () => m.net.receive(other));
    m.ctx.scheduler.runUntilIdle();
    expect(m.received.length).toBe(1);
    expect(m.net.rxDropped).toBe(1);
  });

  test('a frame larger than one rx buffer spans several mergeable buffers', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const big = ethernetFrame(d.mac, [2, 0, 0, 0, 0, 9], 4000, 3);
    m.ctx.scheduler.after(0, m.mainLoop, () => m.net.receive(big));
    m.ctx.scheduler.runUntilIdle();
    expect(m.received).toEqual([big]);
  });
});

describe('packed virtqueues (VIRTIO_F_RING_PACKED negotiated)', () => {
  test('F2 and F3 work the same over packed rings', () => {
    const f = (1n << 5n) | (1n << 16n) | (1n << 17n) | (1n << 18n) | (1n << 15n) | (1n << 29n) | (1n << 34n);
    const m = netMachine({ hostFeatures: f, guestFeatures: f });
    const d = onVcpu(m, () => m.probe());
    expect(m.net.hasFeature(34)).toBe(true);
    const c = onVcpu(m, () => d.setPromisc(false));
    expect(c.status).toBe(VirtioNetCtrl.OK);
    // Three bursts of 100 (one burst per vCPU slice, so the device runs between them and the
    // 256-entry ring wraps: packed wrap counters flip).
    for (let b = 0; b < 3; b++) {
      onVcpu(m, () => {
        for (let i = 0; i < 100; i++) expect(d.startXmit(ethernetFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], d.mac, 64, b * 100 + i))).toBe(true);
      });
    }
    expect(m.peer.frames.length).toBe(300);
    expect(new DataView(m.peer.frames[299]!.buffer).getUint32(14, true)).toBe(299);
    expect(d.txCompleted).toBe(300);
  });
});

describe('virtnet_set_rx_mode sequence', () => {
  test('PROMISC, ALLMULTI, MAC_TABLE_SET in order, each polled before the next; all VIRTIO_NET_OK', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const rec = new TraceRecorder(m.ctx.trace.events$);
    let replies: number[] = [];
    const mc = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
    onVcpu(m, () => d.setRxMode({ promisc: false, allmulti: true, mc: [mc] }, (r) => (replies = r.map((c) => c.status))));
    expect(replies).toEqual([0, 0, 0]);
    expect(m.net.rxFilter).toMatchObject({ promisc: false, allmulti: true, macs: [mc], firstMulti: 0 });
    const cmds = rec.events.filter((e) => e.fn === 'virtnet_send_command').map((e) => [e.args['class'], e.args['cmd']]);
    expect(cmds).toEqual([[0, 0], [0, 1], [1, 0]]);
    const handled = rec.events.filter((e) => e.fn === 'virtio_net_handle_ctrl').map((e) => e.time);
    const sent = rec.events.filter((e) => e.fn === 'virtnet_send_command').map((e) => e.time);
    expect(sent[1]!).toBeGreaterThanOrEqual(handled[0]!);
    expect(sent[2]!).toBeGreaterThanOrEqual(handled[1]!);
  });

  test('a second command while one is in flight is refused with a message', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    m.ctx.scheduler.after(0, m.vcpu, () => {
      d.setPromisc(true);
      expect(() => d.setPromisc(false)).toThrow(/already in flight/);
    });
    m.ctx.scheduler.runUntilIdle();
  });
});
