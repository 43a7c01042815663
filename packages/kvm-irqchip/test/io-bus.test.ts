import { KvmIoBus, kvmIoBusCmp, type KvmIoDevice } from '@virq/kvm-irqchip';

// Expectations come from kvm_main.c (kvm_io_bus_cmp, kvm_io_bus_register_dev, bsearch) and the
// recorded outcomes in test/golden-extra.json (scenarios named below).
function dev(name: string, hits: string[], claims: (addr: number, len: number) => boolean): KvmIoDevice {
  return {
    write: (addr, len) => {
      if (!claims(addr, len)) return false;
      hits.push(name);
      return true;
    },
    read: () => undefined,
  };
}

describe('KvmIoBus (struct kvm_io_bus)', () => {
  test('kvm_io_bus_cmp: a zero-length range matches only its exact address', () => {
    expect(kvmIoBusCmp(0x610, 1, 0x610, 0)).toBe(0);
    expect(kvmIoBusCmp(0x611, 1, 0x610, 0)).toBe(1);
    expect(kvmIoBusCmp(0x610, 0, 0x608, 8)).toBe(0); // the asymmetry that makes insertion order matter
    expect(kvmIoBusCmp(0x608, 8, 0x610, 0)).toBe(-1);
    expect(kvmIoBusCmp(0xfec000fe, 4, 0xfec00000, 0x100)).toBe(1); // crossing the end is "greater"
  });

  test('a zero-length PIO ioeventfd inserted before a covering range is never found (ioeventfd_pio_lengths_datamatch)', () => {
    const hits: string[] = [];
    const bus = new KvmIoBus();
    for (const p of [0x20, 0xa0, 0x4d0]) bus.register(p, 2, dev('pic', hits, () => true));
    bus.register(0x600, 1, dev('A', hits, (a, l) => a === 0x600 && l === 1));
    bus.register(0x610, 0, dev('C', hits, (a) => a === 0x610));
    bus.register(0x608, 8, dev('D', hits, (a, l) => a === 0x608 && l === 8));
    expect(bus.list().map((r) => r.addr)).toEqual([0x20, 0xa0, 0x4d0, 0x600, 0x610, 0x608]);
    expect(bus.write(0x610, 1, 1)).toBe(false); // the recorded OUT to 0x610 exited to userspace
    expect(bus.write(0x600, 1, 0x5a)).toBe(true);
    expect(hits).toEqual(['A']);
  });

  test('overlapping devices are offered the access in bus order (ioeventfd_on_lapic_and_pic_ports)', () => {
    const hits: string[] = [];
    const pio = new KvmIoBus();
    pio.register(0x20, 2, dev('pic', hits, () => true));
    pio.register(0x21, 1, dev('efd', hits, () => true));
    expect(pio.write(0x21, 1, 0x55)).toBe(true);
    const mmio = new KvmIoBus();
    mmio.register(0xfec00000, 0x100, dev('ioapic', hits, () => true));
    mmio.register(0xfec00000, 4, dev('efd', hits, () => true));
    expect(mmio.write(0xfec00000, 4, 1)).toBe(true);
    expect(hits).toEqual(['pic', 'efd']); // the PIC kept IMR 0x55; the ioeventfd ate the IOREGSEL write
  });

  test('unregister removes the device and lookups still work', () => {
    const hits: string[] = [];
    const bus = new KvmIoBus();
    const a = dev('A', hits, () => true);
    bus.register(0x700, 2, a);
    expect(bus.unregister(a)).toBe(true);
    expect(bus.unregister(a)).toBe(false);
    expect(bus.write(0x700, 2, 0)).toBe(false);
    expect(bus.devCount).toBe(0);
  });
});
