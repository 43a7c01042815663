import type { MsiMessage, TraceChannel } from '@virq/core';

/** CPUState.interrupt_request bits the APIC raises (include/exec/cpu-all.h, target/i386/cpu.h). */
export const CPU_INTERRUPT_HARD = 0x0002;
/** x86's CPU_INTERRUPT_POLL (CPU_INTERRUPT_TGT_EXT_1): "re-evaluate your APIC" from another thread. */
export const CPU_INTERRUPT_POLL = 0x0010;

/** SVR bit 8 (APIC software enable) and bit 12 (directed EOI: no broadcast to the IOAPIC). */
export const APIC_SV_ENABLE = 0x100;
const APIC_SV_DIRECTED_IO = 0x1000;
const APIC_LVT_MASKED = 1 << 16;
/** QEMU's lvt[] order: timer, thermal, perf, LINT0, LINT1, error (registers 0x320…0x370). */
const APIC_LVT_LINT0 = 3;
const APIC_LVT_NB = 6;
const MSR_IA32_APICBASE_BSP = 1 << 8;
const MSR_IA32_APICBASE_ENABLE = 1 << 11;
/** APIC_DEFAULT_ADDRESS; the "apic-msi" region is 1 MiB (APIC_SPACE_SIZE). */
export const QEMU_APIC_DEFAULT_ADDRESS = 0xfee00000;
export const QEMU_APIC_SPACE_SIZE = 0x100000;

/** APIC_DM_* delivery modes. */
const DM_FIXED = 0;
const DM_LOWPRI = 1;
const DM_EXTINT = 7;
const DM_NAMES = ['fixed', 'lowest', 'smi', 'reserved', 'nmi', 'init', 'sipi', 'extint'] as const;

/** What the APIC needs of its CPU (QEMU's CPUState side of hw/intc/apic.c). */
export interface QemuApicCpu {
  /** qemu_cpu_is_self: the calling thread is this CPU's vCPU thread. */
  readonly isSelf: boolean;
  /** cpu_interrupt (sets interrupt_request bits; kicks the CPU unless it is the caller). */
  interrupt(mask: number, caller: string): void;
  /** cpu_reset_interrupt */
  resetInterrupt(mask: number): void;
}

/** get_highest_priority_int: the highest vector set in a 256-bit register, or -1. */
function highest(tab: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = tab[i]!;
    if (w !== 0) return i * 32 + (31 - Math.clz32(w));
  }
  return -1;
}
function getBit(tab: Uint32Array, n: number): boolean {
  return (tab[n >> 5]! & (1 << (n & 31))) !== 0;
}
function setBit(tab: Uint32Array, n: number): void {
  tab[n >> 5]! |= 1 << (n & 31);
}
function resetBit(tab: Uint32Array, n: number): void {
  tab[n >> 5]! &= ~(1 << (n & 31));
}

/**
 * QEMU's userspace local APIC (hw/intc/apic.c + apic_common.c; `kernel-irqchip=off`):
 * IRR/ISR/TMR, TPR/PPR, the spurious-vector enable, LINT0, ICR, and the register window that
 * QEMU maps as the "apic-msi" MemoryRegion at 0xFEE00000. Interrupts reach the CPU through
 * `apic_update_irq` → cpu_interrupt(CPU_INTERRUPT_HARD), and leave IRR for ISR in
 * `apic_get_interrupt`, which kvm_arch_pre_run calls before KVM_INTERRUPT.
 */
export class QemuApic {
  id: number;
  apicbase: number;
  tpr = 0;
  spuriousVec = 0xff;
  logDest = 0;
  destMode = 0xf;
  esr = 0;
  readonly lvt = new Uint32Array(APIC_LVT_NB).fill(APIC_LVT_MASKED);
  readonly irr = new Uint32Array(8);
  readonly isr = new Uint32Array(8);
  readonly tmr = new Uint32Array(8);
  readonly icr = [0, 0];
  /** Interrupts accepted into IRR (apic_set_irq) and taken (apic_get_interrupt), EOIs. */
  accepted = 0;
  taken = 0;
  eois = 0;

  constructor(
    readonly index: number,
    private readonly bus: QemuApicBus,
    readonly cpu: QemuApicCpu,
  ) {
    this.id = index;
    this.apicbase = QEMU_APIC_DEFAULT_ADDRESS | MSR_IA32_APICBASE_ENABLE | (index === 0 ? MSR_IA32_APICBASE_BSP : 0);
    bus.attach(this);
  }

  private get t(): TraceChannel {
    return this.bus.t;
  }

  /** apic_get_ppr */
  ppr(): number {
    const tpr = this.tpr >> 4;
    let isrv = highest(this.isr);
    if (isrv < 0) isrv = 0;
    isrv >>= 4;
    return tpr >= isrv ? this.tpr : isrv << 4;
  }

  /** apic_irq_pending: > 0 a deliverable vector, 0 nothing, < 0 only vectors PPR blocks. */
  irqPending(): number {
    if (!(this.spuriousVec & APIC_SV_ENABLE)) return 0;
    const irrv = highest(this.irr);
    if (irrv < 0) return 0;
    const ppr = this.ppr();
    if (ppr !== 0 && (irrv & 0xf0) <= (ppr & 0xf0)) return -1;
    return irrv;
  }

  /** apic_accept_pic_intr: LINT0 unmasked (or the APIC globally disabled) lets the 8259's INT through. */
  acceptPicIntr(): boolean {
    return ((this.apicbase & MSR_IA32_APICBASE_ENABLE) === 0 || (this.lvt[APIC_LVT_LINT0]! & APIC_LVT_MASKED) === 0) && this.bus.hasPic;
  }

  /** apic_update_irq: tell the CPU (from another thread: POLL, so its own thread re-evaluates). */
  updateIrq(caller: string): void {
    if (this.t.on) this.t.emit('qemu.apic_update_irq', 'apic_update_irq', caller, { apic: this.id, self: this.cpu.isSelf });
    if (!this.cpu.isSelf) this.cpu.interrupt(CPU_INTERRUPT_POLL, 'apic_update_irq');
    else if (this.irqPending() > 0) this.cpu.interrupt(CPU_INTERRUPT_HARD, 'apic_update_irq');
    else if (!this.acceptPicIntr() || !this.bus.picOutput()) this.cpu.resetInterrupt(CPU_INTERRUPT_HARD);
  }

  /** apic_poll_irq: the CPU's own thread handles CPU_INTERRUPT_POLL. */
  pollIrq(): void {
    this.updateIrq('apic_poll_irq');
  }

  /** apic_set_irq: IRR (and TMR for level) then apic_update_irq. */
  setIrq(vector: number, triggerMode: number, caller: string): void {
    if (this.t.on) this.t.emit('qemu.apic_set_irq', 'apic_set_irq', caller, { apic: this.id, vector, level: triggerMode, coalesced: getBit(this.irr, vector) });
    this.accepted++;
    setBit(this.irr, vector);
    if (triggerMode) setBit(this.tmr, vector);
    else resetBit(this.tmr, vector);
    this.updateIrq('apic_set_irq');
  }

  /**
   * apic_get_interrupt (from cpu_get_pic_interrupt): the vector the CPU takes — IRR → ISR —, -1
   * when there is none (or the 8259's ExtINT goes first), the spurious vector when PPR blocks it.
   */
  getInterrupt(): number {
    if (!(this.spuriousVec & APIC_SV_ENABLE)) return -1;
    const intno = this.irqPending();
    if (intno === 0 || this.checkPic()) return -1;
    if (intno < 0) return this.spuriousVec & 0xff;
    resetBit(this.irr, intno);
    setBit(this.isr, intno);
    this.taken++;
    if (this.t.on) this.t.emit('qemu.apic_get_interrupt', 'apic_get_interrupt', 'cpu_get_pic_interrupt', { apic: this.id, vector: intno });
    this.updateIrq('apic_get_interrupt');
    return intno;
  }

  /** apic_check_pic: the 8259's output goes first when LINT0 accepts it (apic_deliver_pic_intr). */
  private checkPic(): boolean {
    return this.acceptPicIntr() && this.bus.picOutput();
  }

  /** apic_eoi: the highest ISR bit clears; a level-triggered vector is broadcast to the IOAPIC. */
  eoi(): void {
    const isrv = highest(this.isr);
    if (this.t.on) this.t.emit('qemu.apic_eoi', 'apic_eoi', 'apic_mem_write', { apic: this.id, vector: isrv });
    if (isrv < 0) return;
    this.eois++;
    resetBit(this.isr, isrv);
    if (!(this.spuriousVec & APIC_SV_DIRECTED_IO) && getBit(this.tmr, isrv)) this.bus.eoiBroadcast(isrv);
    this.updateIrq('apic_eoi');
  }

  /** apic_mem_write for this CPU's own register page (index = offset >> 4). */
  regWrite(offset: number, val: number): void {
    const index = (offset >> 4) & 0xff;
    if (this.t.on) this.t.emit('qemu.apic_mem_writel', 'apic_mem_write', 'memory_region_write_accessor', { apic: this.id, addr: offset, val });
    switch (index) {
      case 0x02:
        this.id = val >>> 24;
        return;
      case 0x08:
        this.tpr = val & 0xff;
        this.updateIrq('apic_mem_write');
        return;
      case 0x0b:
        this.eoi();
        return;
      case 0x0d:
        this.logDest = val >>> 24;
        return;
      case 0x0e:
        this.destMode = val >>> 28;
        return;
      case 0x0f:
        this.spuriousVec = val & 0x1ff;
        this.updateIrq('apic_mem_write');
        return;
      case 0x30:
        this.icr[0] = val >>> 0;
        this.bus.deliver(this, (this.icr[1]! >>> 24) & 0xff, (val >> 11) & 1, (val >> 8) & 7, val & 0xff, (val >> 15) & 1);
        return;
      case 0x31:
        this.icr[1] = val >>> 0;
        return;
      default:
        if (index >= 0x32 && index <= 0x37) {
          this.lvt[index - 0x32] = val >>> 0;
          if (index - 0x32 === APIC_LVT_LINT0 && this.checkPic()) this.updateIrq('apic_mem_write');
          return;
        }
        if ((index >= 0x10 && index <= 0x28) || index === 0x03 || index === 0x09 || index === 0x0a) return;
        this.esr |= 0x80; // APIC_ESR_ILLEGAL_ADDRESS
    }
  }

  /** apic_mem_read for this CPU's register page. */
  regRead(offset: number): number {
    const index = (offset >> 4) & 0xff;
    switch (index) {
      case 0x02:
        return (this.id << 24) >>> 0;
      case 0x03:
        return 0x14 | ((APIC_LVT_NB - 1) << 16);
      case 0x08:
        return this.tpr;
      case 0x0a:
        return this.ppr();
      case 0x0d:
        return (this.logDest << 24) >>> 0;
      case 0x0e:
        return ((this.destMode << 28) | 0xfffffff) >>> 0;
      case 0x0f:
        return this.spuriousVec;
      case 0x28:
        return this.esr;
      case 0x30:
      case 0x31:
        return this.icr[index & 1]!;
      default:
        if (index >= 0x10 && index <= 0x17) return this.isr[index & 7]!;
        if (index >= 0x18 && index <= 0x1f) return this.tmr[index & 7]!;
        if (index >= 0x20 && index <= 0x27) return this.irr[index & 7]!;
        if (index >= 0x32 && index <= 0x37) return this.lvt[index - 0x32]!;
        return 0;
    }
  }

  /** Highest vector pending in IRR (apic_get_highest_priority_irr), -1 if none. */
  highestIrr(): number {
    return highest(this.irr);
  }
  /** Whether `vector` is in ISR (being serviced). */
  inService(vector: number): boolean {
    return getBit(this.isr, vector);
  }
}

/**
 * QEMU's `local_apics[]` and what connects the APICs: MSI writes into the "apic-msi" region
 * (apic_send_msi → apic_deliver_irq → apic_bus_deliver), IPIs from an ICR write
 * (apic_deliver), the EOI broadcast to the IOAPIC (ioapic_eoi_broadcast) and the 8259's
 * output (pic_get_output / apic_accept_pic_intr).
 */
export class QemuApicBus {
  readonly apics: QemuApic[] = [];
  /** ioapic_eoi_broadcast (set by the IOAPIC). */
  eoiBroadcastHandler: ((vector: number) => void) | undefined;
  /** pic_get_output(isa_pic) and whether there is an ISA PIC. */
  picOutput: () => boolean = () => false;
  hasPic = false;
  /** apic_send_msi calls (MSIs and IOAPIC messages alike). */
  msis = 0;

  constructor(readonly t: TraceChannel) {}

  attach(apic: QemuApic): void {
    this.apics[apic.index] = apic;
  }

  eoiBroadcast(vector: number): void {
    if (this.t.on) this.t.emit('qemu.ioapic_eoi_broadcast', 'ioapic_eoi_broadcast', 'apic_eoi', { vector });
    this.eoiBroadcastHandler?.(vector);
  }

  /** apic_send_msi: decode address/data and deliver (the redirection hint is ignored, as in QEMU). */
  sendMsi(msg: MsiMessage, caller = 'apic_mem_write'): number {
    const addr = msg.addressLo >>> 0;
    const data = msg.data;
    const dest = (addr >>> 12) & 0xff;
    const vector = data & 0xff;
    const destMode = (addr >>> 2) & 1;
    const trigger = (data >>> 15) & 1;
    const delivery = (data >>> 8) & 7;
    this.msis++;
    if (this.t.on) this.t.emit('qemu.apic_send_msi', 'apic_send_msi', caller, { addr, data, dest, vector });
    return this.deliverIrq(dest, destMode, delivery, vector, trigger);
  }

  /** apic_deliver_irq: destination bitmask, then apic_bus_deliver. Returns the number of APICs reached. */
  deliverIrq(dest: number, destMode: number, deliveryMode: number, vector: number, trigger: number): number {
    if (this.t.on) this.t.emit('qemu.apic_deliver_irq', 'apic_deliver_irq', 'apic_send_msi', { dest, dest_mode: destMode, delivery: DM_NAMES[deliveryMode & 7]!, vector, trigger });
    return this.busDeliver(this.deliveryBitmask(dest, destMode), deliveryMode, vector, trigger);
  }

  /** apic_deliver: an IPI from `src`'s ICR write (shorthand: none, self, all, all-but-self). */
  deliver(src: QemuApic, dest: number, destMode: number, deliveryMode: number, vector: number, trigger: number): number {
    const shorthand = (src.icr[0]! >>> 18) & 3;
    let targets: QemuApic[];
    if (shorthand === 0) targets = this.deliveryBitmask(dest, destMode);
    else if (shorthand === 1) targets = [src];
    else targets = this.apics.filter((a) => a !== undefined && (shorthand === 2 || a !== src));
    if (this.t.on) this.t.emit('qemu.apic_deliver', 'apic_deliver', 'apic_mem_write', { src: src.id, dest, shorthand, delivery: DM_NAMES[deliveryMode & 7]!, vector });
    return this.busDeliver(targets, deliveryMode, vector, trigger);
  }

  /** apic_get_delivery_bitmask (physical: one APIC id or 0xff broadcast; logical: flat/cluster LDR match). */
  private deliveryBitmask(dest: number, destMode: number): QemuApic[] {
    const out: QemuApic[] = [];
    if (destMode === 0) {
      if (dest === 0xff) {
        for (const a of this.apics) if (a !== undefined) out.push(a);
      } else {
        const a = this.apics.find((x) => x !== undefined && x.id === dest);
        if (a !== undefined) out.push(a);
      }
      return out;
    }
    for (const a of this.apics) {
      if (a === undefined) continue;
      if (a.destMode === 0xf) {
        if (dest & a.logDest) out.push(a);
      } else if (a.destMode === 0 && (dest & 0xf0) === (a.logDest & 0xf0) && (dest & a.logDest & 0x0f) !== 0) out.push(a);
    }
    return out;
  }

  /**
   * apic_bus_deliver: fixed (and ExtINT, "handled in the IOAPIC") set IRR on every target;
   * lowest priority picks the first target (QEMU does no arbitration). SMI/NMI/INIT/SIPI are
   * not modelled here (they are traced and dropped).
   */
  private busDeliver(targets: readonly QemuApic[], deliveryMode: number, vector: number, trigger: number): number {
    if (this.t.on) this.t.emit('qemu.apic_bus_deliver', 'apic_bus_deliver', 'apic_deliver_irq', { targets: targets.length, delivery: DM_NAMES[deliveryMode & 7]!, vector });
    if (deliveryMode === DM_LOWPRI) {
      const first = targets[0];
      if (first === undefined) return 0;
      first.setIrq(vector, trigger, 'apic_bus_deliver');
      return 1;
    }
    if (deliveryMode !== DM_FIXED && deliveryMode !== DM_EXTINT) return 0;
    for (const a of targets) a.setIrq(vector, trigger, 'apic_bus_deliver');
    return targets.length;
  }

  /**
   * A write into the "apic-msi" region (apic_mem_write): beyond the first page, or at offset 0,
   * it is an MSI; otherwise a register of the calling CPU's own APIC (cpu_get_current_apic;
   * none on a non-vCPU thread: the write is dropped).
   */
  memWrite(current: QemuApic | undefined, addr: number, val: number, len: number): void {
    const off = (addr - QEMU_APIC_DEFAULT_ADDRESS) >>> 0;
    if (len < 4) return;
    const index = (off >> 4) & 0xff;
    if (off > 0xfff || index === 0) {
      this.sendMsi({ addressLo: addr >>> 0, addressHi: 0, data: val >>> 0 });
      return;
    }
    current?.regWrite(off, val >>> 0);
  }

  /** apic_mem_read: the calling CPU's register (0 from a non-vCPU thread or for sub-dword reads). */
  memRead(current: QemuApic | undefined, addr: number, len: number): number {
    if (len < 4 || current === undefined) return 0;
    return current.regRead((addr - QEMU_APIC_DEFAULT_ADDRESS) & 0xfff);
  }
}
