import { IrqLine, createSimContext } from '@virq/core';
import { CompositeRegion, PciBus, PciCapId, PciCommand, PciDevice, PciReg, PciStatus, pciBdf, type MmioRegion } from '@virq/pci';

class Regs implements MmioRegion {
  readonly writes: [number, number, number][] = [];
  constructor(
    readonly name: string,
    readonly size: number,
  ) {}
  read(offset: number): number {
    return offset;
  }
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.writes.push([offset, size, value]);
  }
}

function make() {
  const ctx = createSimContext();
  const intx = new IrqLine('gsi11');
  const dev = new PciDevice(ctx, { name: 'd', vendorId: 0x1af4, deviceId: 0x1000, revision: 0, classCode: 0x020000, subsystemVendorId: 0x1af4, subsystemId: 1, intx });
  return { ctx, intx, dev };
}

describe('PCI config space header (type 0)', () => {
  test('identity registers at their pci_regs.h offsets, little-endian', () => {
    const { dev } = make();
    expect(dev.configRead(0x00, 4)).toBe(0x1000_1af4);
    expect(dev.configRead(0x08, 4)).toBe(0x0200_0000); // class 02 (network), subclass 00, prog-if 00, rev 0
    expect(dev.configRead(0x2c, 4)).toBe(0x0001_1af4);
    expect(dev.configRead(0x3d, 1)).toBe(1); // INTA
  });

  test('read-only registers ignore writes; COMMAND keeps only its writable bits', () => {
    const { dev } = make();
    dev.configWrite(0x00, 4, 0xdeadbeef);
    expect(dev.configRead(0x00, 4)).toBe(0x1000_1af4);
    dev.configWrite(PciReg.COMMAND, 2, 0xffff);
    expect(dev.configRead(PciReg.COMMAND, 2)).toBe(0x0507);
  });

  test('BAR sizing: all-ones write reads back ~(size-1) with the type bits', () => {
    const { dev } = make();
    dev.registerBar(0, { kind: 'pio', size: 32, region: new Regs('io', 32) });
    dev.registerBar(1, { kind: 'mmio', size: 4096, region: new Regs('m', 4096) });
    dev.registerBar(4, { kind: 'mmio', size: 0x4000, is64: true, prefetchable: true, region: new Regs('m64', 0x4000) });
    for (let i = 0; i < 6; i++) dev.configWrite(0x10 + 4 * i, 4, 0xffffffff);
    expect(dev.configRead(0x10, 4)).toBe(0xffffffe1);
    expect(dev.configRead(0x14, 4)).toBe(0xfffff000);
    expect(dev.configRead(0x20, 4)).toBe(0xffffc00c); // 64-bit (0x4) prefetchable (0x8)
    expect(dev.configRead(0x24, 4)).toBe(0xffffffff);
    expect(dev.configRead(0x18, 4)).toBe(0); // unimplemented BAR
  });

  test('BARs decode only while COMMAND enables their space; the bus dispatches by address', () => {
    const { dev } = make();
    const io = new Regs('io', 32);
    const mem = new Regs('m', 4096);
    dev.registerBar(0, { kind: 'pio', size: 32, region: io });
    dev.registerBar(1, { kind: 'mmio', size: 4096, region: mem });
    const bus = new PciBus(0);
    const bdf = pciBdf(0, 4);
    bus.attach(dev, bdf & 0xff);
    bus.configWrite(bdf, 0x10, 4, 0xc040);
    bus.configWrite(bdf, 0x14, 4, 0xfebf1000);
    bus.pioWrite(0xc050, 2, 1);
    expect(io.writes).toEqual([]);
    expect(bus.unassigned).toBe(1);
    bus.configWrite(bdf, PciReg.COMMAND, 2, PciCommand.IO | PciCommand.MEMORY);
    bus.pioWrite(0xc050, 2, 1);
    bus.mmioWrite(0xfebf1008, 4, 7);
    expect(io.writes).toEqual([[0x10, 2, 1]]);
    expect(mem.writes).toEqual([[8, 4, 7]]);
    expect(bus.mmioRead(0xfebf1ffc, 4)).toBe(0xffc);
    expect(bus.configRead(pciBdf(0, 9), 0, 4)).toBe(0xffffffff); // empty slot: master abort
  });

  test('capabilities are linked head-first from 0x34 and set STATUS.CAP_LIST', () => {
    const { dev } = make();
    const a = dev.config.addCapability(PciCapId.VNDR, 16);
    const b = dev.config.addCapability(PciCapId.MSIX, 12);
    expect(dev.configRead(PciReg.STATUS, 2) & PciStatus.CAP_LIST).toBe(PciStatus.CAP_LIST);
    expect(dev.configRead(PciReg.CAPABILITY_LIST, 1)).toBe(b);
    expect(dev.configRead(b, 1)).toBe(0x11);
    expect(dev.configRead(b + 1, 1)).toBe(a);
    expect(dev.configRead(a + 1, 1)).toBe(0);
    expect(a % 4).toBe(0);
    expect(dev.config.findCapabilities(PciCapId.VNDR)).toEqual([a]);
  });

  test('INTx: pci_set_irq drives the pin and STATUS.INTERRUPT; INTX_DISABLE gates only the pin', () => {
    const { dev, intx } = make();
    dev.setIrq(true);
    expect(intx.level).toBe(true);
    expect(dev.configRead(PciReg.STATUS, 2) & PciStatus.INTERRUPT).toBe(PciStatus.INTERRUPT);
    dev.configWrite(PciReg.COMMAND, 2, PciCommand.INTX_DISABLE);
    expect(intx.level).toBe(false);
    expect(dev.configRead(PciReg.STATUS, 2) & PciStatus.INTERRUPT).toBe(PciStatus.INTERRUPT);
    dev.configWrite(PciReg.COMMAND, 2, 0);
    expect(intx.level).toBe(true);
    dev.setIrq(false);
    expect(intx.level).toBe(false);
    expect(dev.configRead(PciReg.STATUS, 2) & PciStatus.INTERRUPT).toBe(0);
  });

  test('composite regions dispatch to subregions; holes read 0', () => {
    const r = new CompositeRegion('bar4', 0x4000);
    const a = new Regs('a', 0x1000);
    r.add(0x3000, a);
    expect(r.read(0x3004, 4)).toBe(4);
    expect(r.read(0x2004, 4)).toBe(0);
    r.write(0x3002, 2, 5);
    expect(a.writes).toEqual([[2, 2, 5]]);
  });

  test('bad user input is a VirqError that says what to change', () => {
    const { dev } = make();
    expect(() => dev.registerBar(1, { kind: 'mmio', size: 3000, region: new Regs('x', 3000) })).toThrow(/power of two/);
    expect(() => dev.configRead(0x101, 2)).toThrow(/naturally aligned/);
  });

  test('snapshot/restore brings back config space, BAR mappings and the INTx level', () => {
    const a = make();
    a.dev.registerBar(1, { kind: 'mmio', size: 4096, region: new Regs('m', 4096) });
    a.dev.configWrite(0x14, 4, 0xfebf1000);
    a.dev.configWrite(PciReg.COMMAND, 2, PciCommand.MEMORY);
    a.dev.setIrq(true);
    const snap = JSON.parse(JSON.stringify(a.dev.snapshot()));
    const b = make();
    b.dev.registerBar(1, { kind: 'mmio', size: 4096, region: new Regs('m', 4096) });
    b.dev.restore(snap);
    expect(b.dev.bar(1)!.address).toBe(0xfebf1000);
    expect(b.intx.level).toBe(true);
    expect(() => b.dev.restore({ ...snap, version: 2 })).toThrow(/version 2/);
  });
});
