import { TraceRecorder } from '@virq/core';
import { CommonCfg, LegacyReg, VirtioIsr, VirtioStatus } from '@virq/virtio-pci';
import fc from 'fast-check';
import { netMachine, onVcpu } from './harness.js';

/** Walks the capability list from 0x34 as a driver does. */
function caps(m: ReturnType<typeof netMachine>): number[] {
  const out: number[] = [];
  let p = m.access.configRead(m.bdf, 0x34, 1);
  while (p !== 0) {
    out.push(p);
    p = m.access.configRead(m.bdf, p + 1, 1);
  }
  return out;
}

describe('virtio PCI identity and capabilities (FACTS §3.1, §3.2, §4.1)', () => {
  test('modern virtio-net: 1af4:1041 revision 1, class 0x020000; transitional: 1af4:1000 revision 0, subsystem id 1', () => {
    const m = netMachine();
    expect(m.access.configRead(m.bdf, 0, 4)).toBe(0x1041_1af4);
    expect(m.access.configRead(m.bdf, 8, 4)).toBe(0x0200_0001);
    const t = netMachine({ legacy: true });
    expect(t.access.configRead(t.bdf, 0, 4)).toBe(0x1000_1af4);
    expect(t.access.configRead(t.bdf, 8, 1)).toBe(0);
    expect(t.access.configRead(t.bdf, 0x2e, 2)).toBe(1);
  });

  test('four virtio_pci_cap structures (cap_vndr 0x09) point into BAR 4 at QEMU offsets; notify cap carries multiplier 4 at +16', () => {
    const m = netMachine();
    const list = caps(m);
    const vendor = list.filter((p) => m.access.configRead(m.bdf, p, 1) === 0x09);
    const byType = new Map(vendor.map((p) => [m.access.configRead(m.bdf, p + 3, 1), p]));
    const expectCap = (type: number, offset: number, len: number) => {
      const p = byType.get(type)!;
      expect(m.access.configRead(m.bdf, p + 2, 1)).toBe(len);
      expect(m.access.configRead(m.bdf, p + 4, 1)).toBe(4);
      expect(m.access.configRead(m.bdf, p + 8, 4)).toBe(offset);
      expect(m.access.configRead(m.bdf, p + 12, 4)).toBe(0x1000);
      return p;
    };
    expectCap(1, 0x0000, 16);
    expectCap(3, 0x1000, 16);
    expectCap(4, 0x2000, 16);
    const n = expectCap(2, 0x3000, 20);
    expect(m.access.configRead(m.bdf, n + 16, 4)).toBe(4);
    // MSI-X: table size N-1 = queues (3) + config (1) - 1
    const msix = list.find((p) => m.access.configRead(m.bdf, p, 1) === 0x11)!;
    expect(m.access.configRead(m.bdf, msix + 2, 2) & 0x7ff).toBe(3);
    expect(m.access.configRead(m.bdf, msix + 4, 4)).toBe(1); // BIR 1, offset 0
  });
});

describe('common configuration registers (FACTS §3.3)', () => {
  function regs() {
    const m = netMachine();
    const base = m.proxy.pci.bar(4)!.address!;
    const r = (o: number, s: 1 | 2 | 4) => m.access.mmioRead(base + o, s);
    const w = (o: number, s: 1 | 2 | 4, v: number) => m.access.mmioWrite(base + o, s, v);
    return { m, r, w, base };
  }

  test('feature windows: select 1 shows VIRTIO_F_VERSION_1 (bit 32) as bit 0', () => {
    const { r, w } = regs();
    w(CommonCfg.DFSELECT, 4, 1);
    expect(r(CommonCfg.DF, 4) & 1).toBe(1);
    w(CommonCfg.DFSELECT, 4, 0);
    expect(r(CommonCfg.DF, 4) & (1 << 17)).toBe(1 << 17); // CTRL_VQ
  });

  test('num_queues, queue_size reset value, queue_notify_off = queue index, NO_VECTOR after reset', () => {
    const { r, w } = regs();
    expect(r(CommonCfg.NUMQ, 2)).toBe(3);
    w(CommonCfg.Q_SELECT, 2, 2);
    expect(r(CommonCfg.Q_SIZE, 2)).toBe(64);
    expect(r(CommonCfg.Q_NOFF, 2)).toBe(2);
    expect(r(CommonCfg.Q_MSIX, 2)).toBe(0xffff);
    expect(r(CommonCfg.MSIX, 2)).toBe(0xffff);
    expect(r(CommonCfg.Q_ENABLE, 2)).toBe(0);
  });

  test('a vector past the MSI-X table reads back NO_VECTOR (the driver must check)', () => {
    const { r, w } = regs();
    w(CommonCfg.Q_SELECT, 2, 0);
    w(CommonCfg.Q_MSIX, 2, 9);
    expect(r(CommonCfg.Q_MSIX, 2)).toBe(0xffff);
    w(CommonCfg.Q_MSIX, 2, 2);
    expect(r(CommonCfg.Q_MSIX, 2)).toBe(2);
  });

  test('64-bit queue addresses are two 32-bit halves, low first', () => {
    const { r, w } = regs();
    w(CommonCfg.Q_SELECT, 2, 1);
    w(CommonCfg.Q_DESCLO, 4, 0x1234_5000);
    w(CommonCfg.Q_DESCHI, 4, 0x1);
    expect(r(CommonCfg.Q_DESCLO, 4)).toBe(0x1234_5000);
    expect(r(CommonCfg.Q_DESCHI, 4)).toBe(1);
  });

  test('status state machine: features are frozen after FEATURES_OK; writing 0 resets (reads 0, vectors and queues cleared)', () => {
    const { m, r, w } = regs();
    w(CommonCfg.STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    w(CommonCfg.GFSELECT, 4, 1);
    w(CommonCfg.GF, 4, 1);
    w(CommonCfg.STATUS, 1, 11);
    expect(r(CommonCfg.STATUS, 1)).toBe(11);
    w(CommonCfg.GFSELECT, 4, 0);
    w(CommonCfg.GF, 4, 0xffffffff);
    expect(m.net.guestFeatures).toBe(1n << 32n);
    w(CommonCfg.Q_SELECT, 2, 0);
    w(CommonCfg.Q_SIZE, 2, 128);
    w(CommonCfg.MSIX, 2, 0);
    w(CommonCfg.STATUS, 1, 0);
    expect(r(CommonCfg.STATUS, 1)).toBe(0);
    expect(r(CommonCfg.Q_SIZE, 2)).toBe(256);
    expect(r(CommonCfg.MSIX, 2)).toBe(0xffff);
    expect(m.net.guestFeatures).toBe(0n);
  });

  test('queue_enable with a value other than 1 is a guest error: DEVICE_NEEDS_RESET and a config interrupt', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const base = m.proxy.pci.bar(4)!.address!;
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => {
      m.access.mmioWrite(base + CommonCfg.Q_SELECT, 2, 0);
      m.access.mmioWrite(base + CommonCfg.Q_ENABLE, 2, 2);
    });
    expect(m.net.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET);
    expect(m.net.errors[0]!.code).toBe('virtio.queue-enable-value');
    expect(rec.functions()).toEqual(expect.arrayContaining(['virtio_error', 'virtio_notify_config', 'vp_config_changed']));
    expect(d.pci.configChanges).toBe(1);
    // A broken device ignores kicks; nothing throws.
    onVcpu(m, () => d.startXmit(new Uint8Array(60)));
    expect(m.peer.frames.length).toBe(0);
  });

  test('config generation increments on each virtio_notify_config', () => {
    const m = netMachine();
    onVcpu(m, () => m.probe());
    const base = m.proxy.pci.bar(4)!.address!;
    const g0 = m.access.mmioRead(base + CommonCfg.CFGGENERATION, 1);
    onVcpu(m, () => m.net.notifyConfig());
    expect(m.access.mmioRead(base + CommonCfg.CFGGENERATION, 1)).toBe((g0 + 1) & 0xff);
  });
});

describe('INTx and ISR (FACTS §3.5, §3.8)', () => {
  test('without MSI-X: virtio_pci_notify drives INTx from ISR bit 0; the ISR read returns and clears it and deasserts the line', () => {
    const m = netMachine({ irqModes: ['intx'] });
    const d = onVcpu(m, () => m.probe());
    expect(d.pci.irqMode).toBe('intx');
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.startXmit(new Uint8Array(60)));
    expect(m.peer.frames.length).toBe(1);
    expect(d.txCompleted).toBe(1);
    const fns = rec.functions();
    expect(fns).toEqual(expect.arrayContaining(['pci_set_irq', 'vp_interrupt', 'virtio_pci_isr_read']));
    const isrEv = rec.events.find((e) => e.fn === 'virtio_pci_isr_read')!;
    expect(isrEv.args['isr']).toBe(VirtioIsr.QUEUE);
    expect(m.intx.level).toBe(false);
    expect(m.net.isr).toBe(0);
  });
});

describe('legacy I/O BAR 0 (FACTS §3.7): the seed\'s virtio_pci_config_write path', () => {
  test('status at 18, notify at 16, ISR at 19, device config at 20/24; ioeventfd on port+16 with datamatch', () => {
    const m = netMachine({ legacy: true, modern: false });
    const rec = new TraceRecorder(m.ctx.trace.events$);
    const d = onVcpu(m, () => m.probe());
    const io = m.proxy.pci.bar(0)!.address!;
    const st = rec.events.filter((e) => e.fn === 'virtio_ioport_write' && e.args['addr'] === LegacyReg.STATUS);
    expect(st.map((e) => e.caller)).toEqual(st.map(() => 'virtio_pci_config_write'));
    expect(st.map((e) => e.args['val'])).toContain(7); // ACK | DRIVER | DRIVER_OK as in the seed's backtrace
    expect(m.vm!.log.filter((l) => l.startsWith('KVM_IOEVENTFD'))).toEqual([0, 1, 2].map((q) => `KVM_IOEVENTFD pio addr=0x${(io + 16).toString(16)} len=2 datamatch=${q}`));
    // MAC through the legacy device config window (offset 24 with MSI-X enabled).
    expect(d.mac).toEqual(m.net.mac);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(1);
  });
});

describe('guest register fuzz (property)', () => {
  test('arbitrary guest MMIO/PIO/config writes never throw and leave status reads sane', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ space: fc.constantFrom('bar4', 'bar1', 'cfg', 'io'), off: fc.integer({ min: 0, max: 0x3fff }), size: fc.constantFrom(1, 2, 4), v: fc.integer({ min: 0, max: 0xffffffff }) }), { maxLength: 80 }),
        (ops) => {
          const m = netMachine({ legacy: true });
          const b4 = m.proxy.pci.bar(4)!.address!;
          const b1 = m.proxy.pci.bar(1)!.address!;
          for (const o of ops) {
            const size = o.size as 1 | 2 | 4;
            const off = o.off - (o.off % size);
            if (o.space === 'bar4') m.access.mmioWrite(b4 + off, size, o.v % 2 ** (8 * size));
            else if (o.space === 'bar1') m.access.mmioWrite(b1 + (off & 0xfff), size, o.v % 2 ** (8 * size));
            else if (o.space === 'io') m.access.pioWrite(0xc000 + (off & 0x1f), size, o.v % 2 ** (8 * size));
            else if (off + size <= 256) m.access.configWrite(m.bdf, off & 0xff, size, o.v % 2 ** (8 * size));
            m.ctx.scheduler.runUntilIdle(100000);
          }
          return m.net.status >= 0 && m.net.status <= 0xff;
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('find_vqs interrupt modes (vp_find_vqs)', () => {
  test('too few MSI-X vectors for one per queue: the driver falls back to one shared vector (vp_vring_interrupt)', () => {
    const m = netMachine({ vectors: 2 });
    const d = onVcpu(m, () => m.probe());
    expect(d.pci.irqMode).toBe('msix-shared');
    expect(m.net.queues.map((q) => q.vector)).toEqual([1, 1, 0xffff]);
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(d.txCompleted).toBe(1);
    expect(rec.functions()).toContain('vp_vring_interrupt');
  });

  test('per-queue vectors: config vector 0, one vector per queue with a callback, none for the ctrl vq', () => {
    const m = netMachine({ pairs: 2 });
    const d = onVcpu(m, () => m.probe());
    expect(d.pci.irqMode).toBe('msix-per-vq');
    expect(m.net.configVector).toBe(0);
    expect(m.net.queues.map((q) => q.vector)).toEqual([1, 2, 3, 4, 0xffff]);
  });
});

describe('BAR relocation', () => {
  test('moving BAR 4 moves every queue\'s ioeventfd with it (QEMU\'s memory listener)', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    const newBase = 0xfd00_0000;
    m.access.configWrite(m.bdf, 0x20, 4, newBase);
    const live = m.vm!.ioeventfds.map((e) => e.addr).sort((a, b) => a - b);
    expect(live).toEqual([0, 1, 2].map((q) => newBase + 0x3000 + 4 * q));
    // The driver re-reads the BAR on its next probe; a kick at the new address is served.
    const d2 = onVcpu(m, () => m.probe());
    onVcpu(m, () => d2.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(1);
    expect(d).not.toBe(d2);
  });
});

describe('snapshot / restore (vmstate)', () => {
  test('a proxy restored after the guest reset it serves the same driver again, rings included', () => {
    const m = netMachine();
    const d = onVcpu(m, () => m.probe());
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    const snap = JSON.parse(JSON.stringify(m.proxy.snapshot()));
    const base = m.proxy.pci.bar(4)!.address!;
    onVcpu(m, () => m.access.mmioWrite(base + CommonCfg.STATUS, 1, 0));
    expect(m.net.status).toBe(0);
    m.proxy.restore(snap);
    expect(m.net.status).toBe(15);
    expect(m.net.queues[1]!.ring!.getVringBase()).toBe(1);
    onVcpu(m, () => d.startXmit(new Uint8Array(64)));
    expect(m.peer.frames.length).toBe(2);
    expect(d.txCompleted).toBe(2);
    expect(() => m.proxy.restore({ ...snap, version: 9 })).toThrow(/version 9/);
  });
});
