import { IrqLine, createSimContext } from '@virq/core';
import { MsiCap, MsiCapability, PciCommand, PciDevice, PciReg } from '@virq/pci';
import { RecordingSink } from './helpers.js';

function make(perVectorMask: boolean) {
  const ctx = createSimContext();
  const sink = new RecordingSink();
  const intx = new IrqLine('intx');
  const dev = new PciDevice(ctx, { name: 'm', vendorId: 0x8086, deviceId: 0x10d3, classCode: 0x020000, msiSink: sink, intx });
  const msi = new MsiCapability(dev, { vectors: 4, is64: true, perVectorMask });
  dev.configWrite(PciReg.COMMAND, 2, PciCommand.MASTER);
  return { dev, msi, sink, intx };
}

describe('MSI capability (pci_regs.h PCI_MSI_*)', () => {
  test('layout: ID 0x05, Multiple Message Capable = log2(4), 64-bit and per-vector-mask flags', () => {
    const { dev, msi } = make(true);
    const c = msi.capOffset;
    expect(dev.configRead(c, 1)).toBe(0x05);
    const flags = dev.configRead(c + MsiCap.FLAGS, 2);
    expect((flags & MsiCap.FLAGS_QMASK) >> 1).toBe(2);
    expect(flags & MsiCap.FLAGS_64BIT).toBe(MsiCap.FLAGS_64BIT);
    expect(flags & MsiCap.FLAGS_MASKBIT).toBe(MsiCap.FLAGS_MASKBIT);
  });

  test('multi-message: the vector number replaces the low data bits; enabling deasserts INTx', () => {
    const { dev, msi, sink, intx } = make(false);
    const c = msi.capOffset;
    dev.setIrq(true);
    dev.configWrite(c + MsiCap.ADDRESS_LO, 4, 0xfee00000);
    dev.configWrite(c + MsiCap.DATA_64, 2, 0x4060);
    dev.configWrite(c + MsiCap.FLAGS, 2, MsiCap.FLAGS_ENABLE | (2 << 4));
    expect(intx.level).toBe(false);
    msi.notify(3);
    expect(sink.msgs.map((m) => m.data)).toEqual([0x4063]);
  });

  test('a masked vector becomes pending and is sent when unmasked', () => {
    const { dev, msi, sink } = make(true);
    const c = msi.capOffset;
    dev.configWrite(c + MsiCap.ADDRESS_LO, 4, 0xfee00000);
    dev.configWrite(c + MsiCap.DATA_64, 2, 0x50);
    dev.configWrite(c + MsiCap.MASK_64, 4, 1);
    dev.configWrite(c + MsiCap.FLAGS, 2, MsiCap.FLAGS_ENABLE);
    msi.notify(0);
    expect(sink.msgs).toEqual([]);
    expect(msi.isPending(0)).toBe(true);
    dev.configWrite(c + MsiCap.MASK_64, 4, 0);
    expect(sink.msgs.map((m) => m.data)).toEqual([0x50]);
    expect(msi.isPending(0)).toBe(false);
  });
});
