import type { TraceChannel } from '@virq/core';

/** IOAPIC_NUM_PINS; the MMIO window (IO_APIC_DEFAULT_ADDRESS, IOREGSEL at 0x00, IOWIN at 0x10). */
export const QEMU_IOAPIC_NUM_PINS = 24;
export const QEMU_IOAPIC_BASE = 0xfec00000;
const IOAPIC_WINDOW = 0x1000;
const LVT_MASKED = 1 << 16;
const LVT_TRIGGER_LEVEL = 1 << 15;
const LVT_REMOTE_IRR = 1 << 14;
const LVT_DELIV_STATUS = 1 << 12;
/** ioapic_eoi_broadcast's interrupt-storm guard (SUCCESSIVE_IRQ_MAX_COUNT). */
const SUCCESSIVE_IRQ_MAX_COUNT = 10000;

/**
 * QEMU's userspace IOAPIC (hw/intc/ioapic.c, `kernel-irqchip=off`): 24 redirection entries,
 * IRR per pin, remote IRR for level-triggered pins. `ioapic_service` turns a pending pin into
 * the MSI its entry encodes (`ioapic_entry_parse`) and writes it into the APIC address space
 * (`stl_le_phys` → the "apic-msi" region → apic_send_msi); `ioapic_eoi_broadcast` clears remote
 * IRR on a level pin and re-services it while its line is still asserted.
 */
export class QemuIoapic {
  id = 0;
  ioregsel = 0;
  irr = 0;
  readonly lo = new Uint32Array(QEMU_IOAPIC_NUM_PINS).fill(LVT_MASKED);
  readonly hi = new Uint32Array(QEMU_IOAPIC_NUM_PINS);
  readonly irqEoi = new Uint32Array(QEMU_IOAPIC_NUM_PINS);
  /** Messages sent (ioapic_service → stl_le_phys), and edges/levels dropped as coalesced. */
  sent = 0;
  coalesced = 0;

  constructor(
    private readonly t: TraceChannel,
    /** stl_le_phys(ioapic_as, addr, data): the write lands in the APIC's "apic-msi" region. */
    private readonly writeMsi: (addr: number, data: number) => void,
  ) {}

  /** ioapic_set_irq: ISA IRQ 0 lands on pin 2; level pins latch IRR, edges on masked pins are ignored. */
  setIrq(vector: number, level: boolean): void {
    if (vector === 0) vector = 2;
    if (this.t.on) this.t.emit('qemu.ioapic_set_irq', 'ioapic_set_irq', 'qemu_set_irq', { pin: vector, level: level ? 1 : 0 });
    if (vector < 0 || vector >= QEMU_IOAPIC_NUM_PINS) return;
    const mask = 1 << vector;
    const entry = this.lo[vector]!;
    if (entry & LVT_TRIGGER_LEVEL) {
      if (level) {
        this.irr |= mask;
        if (!(entry & LVT_REMOTE_IRR)) this.service();
        else this.coalesced++;
      } else {
        this.irr &= ~mask;
      }
    } else if (level && !(entry & LVT_MASKED)) {
      this.irr |= mask;
      this.service();
    }
  }

  /** ioapic_service: every pending, unmasked pin sends its message (level pins set remote IRR first). */
  service(): void {
    for (let i = 0; i < QEMU_IOAPIC_NUM_PINS; i++) {
      const mask = 1 << i;
      if (!(this.irr & mask)) continue;
      const entry = this.lo[i]!;
      if (entry & LVT_MASKED) continue;
      let coalesce = false;
      if (!(entry & LVT_TRIGGER_LEVEL)) this.irr &= ~mask;
      else {
        coalesce = (entry & LVT_REMOTE_IRR) !== 0;
        this.lo[i] = entry | LVT_REMOTE_IRR;
      }
      if (coalesce) continue;
      // ioapic_entry_parse: destination, mode, vector and trigger as an MSI address/data pair.
      const dest = this.hi[i]! >>> 24;
      const destMode = (entry >> 11) & 1;
      const delivery = (entry >> 8) & 7;
      const trig = (entry >> 15) & 1;
      const addr = (0xfee00000 | (dest << 12) | (destMode << 2)) >>> 0;
      const data = (entry & 0xff) | (trig << 15) | (delivery << 8);
      this.sent++;
      if (this.t.on) this.t.emit('qemu.ioapic_service', 'ioapic_service', 'ioapic_set_irq', { pin: i, addr, data });
      this.writeMsi(addr, data);
    }
  }

  /** ioapic_eoi_broadcast: remote IRR off on level pins with `vector`, re-serviced while still asserted. */
  eoiBroadcast(vector: number): void {
    for (let n = 0; n < QEMU_IOAPIC_NUM_PINS; n++) {
      const entry = this.lo[n]!;
      if ((entry & 0xff) !== vector || !(entry & LVT_TRIGGER_LEVEL)) continue;
      if (!(entry & LVT_REMOTE_IRR)) continue;
      if (this.t.on) this.t.emit('qemu.ioapic_clear_remote_irr', 'ioapic_clear_remote_irr', 'ioapic_eoi_broadcast', { pin: n, vector });
      this.lo[n] = entry & ~LVT_REMOTE_IRR;
      if (!(entry & LVT_MASKED) && this.irr & (1 << n)) {
        // QEMU delays the re-assertion after SUCCESSIVE_IRQ_MAX_COUNT back-to-back EOIs; here it
        // is re-serviced at once and the count only restarts (the storm timer is not modelled).
        if (++this.irqEoi[n]! >= SUCCESSIVE_IRQ_MAX_COUNT) this.irqEoi[n] = 0;
        this.service();
      } else {
        this.irqEoi[n] = 0;
      }
    }
  }

  inRange(addr: number): boolean {
    return addr >= QEMU_IOAPIC_BASE && addr < QEMU_IOAPIC_BASE + IOAPIC_WINDOW;
  }

  /** ioapic_mem_write: IOREGSEL, then IOWIN on the selected register (ID, redirection entries). */
  memWrite(addr: number, val: number): void {
    const off = (addr - QEMU_IOAPIC_BASE) & 0xff;
    if (off === 0x00) {
      this.ioregsel = val & 0xff;
      return;
    }
    if (off !== 0x10) return;
    const sel = this.ioregsel;
    if (sel === 0) {
      this.id = (val >>> 24) & 0xf;
      return;
    }
    if (sel < 0x10 || sel >= 0x10 + QEMU_IOAPIC_NUM_PINS * 2) return;
    const pin = (sel - 0x10) >> 1;
    if (sel & 1) {
      this.hi[pin] = val >>> 0;
      return;
    }
    // The remote IRR and delivery status bits are read-only.
    const ro = this.lo[pin]! & (LVT_REMOTE_IRR | LVT_DELIV_STATUS);
    let v = ((val >>> 0) & ~(LVT_REMOTE_IRR | LVT_DELIV_STATUS)) | ro;
    // ioapic_fix_edge_remote_irr: an edge entry has no remote IRR.
    if (!(v & LVT_TRIGGER_LEVEL)) v &= ~LVT_REMOTE_IRR;
    this.lo[pin] = v >>> 0;
    if (this.t.on) this.t.emit('qemu.ioapic_mem_write', 'ioapic_mem_write', 'memory_region_write_accessor', { pin, lo: this.lo[pin]!, hi: this.hi[pin]! });
    this.service();
  }

  /** ioapic_mem_read (IOWIN: ID, version 0x20 with 23 as the highest entry, redirection halves). */
  memRead(addr: number): number {
    const off = (addr - QEMU_IOAPIC_BASE) & 0xff;
    if (off === 0x00) return this.ioregsel;
    if (off !== 0x10) return 0;
    const sel = this.ioregsel;
    if (sel === 0) return (this.id << 24) >>> 0;
    if (sel === 1) return 0x20 | ((QEMU_IOAPIC_NUM_PINS - 1) << 16);
    if (sel < 0x10 || sel >= 0x10 + QEMU_IOAPIC_NUM_PINS * 2) return 0;
    const pin = (sel - 0x10) >> 1;
    return sel & 1 ? this.hi[pin]! : this.lo[pin]!;
  }

  /** The pin's remote IRR (a level interrupt delivered and not yet EOIed). */
  remoteIrr(pin: number): boolean {
    return (this.lo[pin]! & LVT_REMOTE_IRR) !== 0;
  }
}
