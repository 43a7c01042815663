import { IrqLine, type MsiMessage, type MsiSink, createSimContext } from '@virq/core';
import { CompositeRegion, MsixTable, PciBus, PciCommand, PciDevice, PciReg } from '@virq/pci';

export class RecordingSink implements MsiSink {
  readonly msgs: MsiMessage[] = [];
  deliverMsi(msg: MsiMessage): number {
    this.msgs.push(msg);
    return 1;
  }
}

export const BAR1 = 0xfebf_0000;

/** A function with MSI-X in an exclusive BAR 1, attached at 00:03.0, memory + bus master on. */
export function msixDevice(vectors = 4) {
  const ctx = createSimContext({ seed: 7 });
  const sink = new RecordingSink();
  const intx = new IrqLine('intx');
  const dev = new PciDevice(ctx, { name: 'dev0', vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, msiSink: sink, intx });
  const msix = MsixTable.exclusiveBar(dev, vectors, 1);
  const bus = new PciBus(0);
  bus.attach(dev, 3 << 3);
  const bdf = 3 << 3;
  bus.configWrite(bdf, PciReg.BASE_ADDRESS_0 + 4, 4, BAR1);
  bus.configWrite(bdf, PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
  return { ctx, sink, intx, dev, msix, bus, bdf };
}

/** Programs entry `v` through MMIO as a driver does (address, data, then unmask). */
export function programEntry(bus: PciBus, v: number, data: number, unmask = true): void {
  const base = BAR1 + v * 16;
  bus.mmioWrite(base, 4, 0xfee0_0000);
  bus.mmioWrite(base + 4, 4, 0);
  bus.mmioWrite(base + 8, 4, data);
  if (unmask) bus.mmioWrite(base + 12, 4, 0);
}

export function enableMsix(bus: PciBus, bdf: number, cap: number, maskAll = false): void {
  bus.configWrite(bdf, cap + 2, 2, 0x8000 | (maskAll ? 0x4000 : 0));
}

export { CompositeRegion };
