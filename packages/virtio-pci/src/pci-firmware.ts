import { type PciAccess, PciCommand, PciReg } from '@virq/pci';

export interface BarWindow {
  /** Next free MMIO address (32-bit window for 32-bit BARs, above 4 GiB allowed for 64-bit). */
  mmio: number;
  /** Next free I/O port. */
  pio: number;
}

/**
 * What firmware (SeaBIOS / OVMF pci enumeration) does before the guest kernel runs:
 * sizes every BAR of a function (write all-ones, read back) and assigns it an aligned
 * address from the window, then enables memory and I/O decoding.
 */
export function assignBars(access: PciAccess, bdf: number, window: BarWindow): void {
  for (let i = 0; i < 6; i++) {
    const off = PciReg.BASE_ADDRESS_0 + 4 * i;
    const orig = access.configRead(bdf, off, 4);
    access.configWrite(bdf, off, 4, 0xffffffff);
    const probe = access.configRead(bdf, off, 4);
    if (probe === 0) continue;
    const io = (probe & 1) === 1;
    const is64 = !io && (probe & 0x6) === 0x4;
    let sizeMask = io ? probe & 0xfffffffc : probe & 0xfffffff0;
    if (is64) {
      access.configWrite(bdf, off + 4, 4, 0xffffffff);
      const hi = access.configRead(bdf, off + 4, 4);
      if (hi !== 0xffffffff) sizeMask = 0; // > 4 GiB BARs are not modelled
    }
    const size = io ? ((~sizeMask >>> 0) & 0xffff) + 1 : (~sizeMask >>> 0) + 1;
    if (size <= 1) {
      access.configWrite(bdf, off, 4, orig);
      continue;
    }
    if (io) {
      const at = Math.ceil(window.pio / size) * size;
      window.pio = at + size;
      access.configWrite(bdf, off, 4, at);
    } else {
      const at = Math.ceil(window.mmio / size) * size;
      window.mmio = at + size;
      access.configWrite(bdf, off, 4, at % 2 ** 32);
      if (is64) access.configWrite(bdf, off + 4, 4, Math.floor(at / 2 ** 32));
    }
    if (is64) i++;
  }
  const cmd = access.configRead(bdf, PciReg.COMMAND, 2);
  access.configWrite(bdf, PciReg.COMMAND, 2, cmd | PciCommand.IO | PciCommand.MEMORY);
}
