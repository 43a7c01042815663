import { type Actor, type ScheduledEvent, type SimContext, type TraceChannel } from '@virq/core';
import { QemuIrq } from './qemu-irq.js';
import type { KvmVm } from './vm.js';

/** Number of ISA IRQs (GSI 0–15 reach the 8259s). */
export const ISA_NUM_IRQS = 16;
/** GSIs of the PC machine's IOAPIC. */
export const IOAPIC_NUM_GSIS = 24;

/**
 * QEMU's userspace 8259 pair (hw/intc/i8259.c, `kernel-irqchip=off` or TCG): edge/level
 * inputs, IRR/IMR/ISR with rotating priority and special mask (which KVM's model ignores),
 * and the INT output to the CPU raised/lowered by `pic_update_irq` through `qemu_irq_raise`.
 */
export class QemuPic {
  readonly chips = [QemuPic.chip(true), QemuPic.chip(false)];
  /** The CPU's INT line (cpu_interrupt / KVM_INTERRUPT in the userspace-irqchip KVM mode). */
  readonly output: QemuIrq;
  private outputLevel = false;
  /** Lines as inputs (`i8259_irq[n]` of GSIState). */
  readonly irqs: QemuIrq[] = [];

  private static chip(master: boolean): { irr: number; imr: number; isr: number; lastIrr: number; elcr: number; priorityAdd: number; irqBase: number; specialMask: boolean; master: boolean } {
    return { irr: 0, imr: 0, isr: 0, lastIrr: 0, elcr: 0, priorityAdd: 0, irqBase: master ? 0x08 : 0x70, specialMask: false, master };
  }

  constructor(
    private readonly t: TraceChannel,
    cpuInt: (level: boolean) => void,
  ) {
    this.output = new QemuIrq('cpu-int', (_n, l) => cpuInt(l), 0, t);
    for (let n = 0; n < ISA_NUM_IRQS; n++) this.irqs.push(new QemuIrq(`i8259.${n}`, (irq, level) => this.setIrq(irq, level), n, t));
  }

  private static priority(s: ReturnType<typeof QemuPic.chip>, mask: number): number {
    if (mask === 0) return 8;
    let p = 0;
    while ((mask & (1 << ((p + s.priorityAdd) & 7))) === 0) p++;
    return p;
  }

  /** pic_get_irq (QEMU: special mask excludes masked lines from the in-service priority) */
  getIrq(s: ReturnType<typeof QemuPic.chip>): number {
    const p = QemuPic.priority(s, s.irr & ~s.imr);
    if (p === 8) return -1;
    let mask = s.isr;
    if (s.specialMask) mask &= ~s.imr;
    if (s.master) mask &= ~(1 << 2);
    const cur = QemuPic.priority(s, mask);
    return p < cur ? (p + s.priorityAdd) & 7 : -1;
  }

  /** pic_set_irq: edge detection against the line's last level (or level via ELCR). */
  setIrq(irq: number, level: boolean): void {
    if (this.t.on) this.t.emit('qemu.pic_set_irq', 'pic_set_irq', 'qemu_set_irq', { irq, level });
    const s = this.chips[irq >> 3]!;
    const mask = 1 << (irq & 7);
    if (s.elcr & mask) {
      if (level) s.irr |= mask;
      else s.irr &= ~mask;
    } else if (level) {
      if ((s.lastIrr & mask) === 0) s.irr |= mask;
      s.lastIrr |= mask;
    } else {
      s.lastIrr &= ~mask;
    }
    this.update();
  }

  /** pic_update_irq: slave → master IR2, then the INT output. */
  private update(): void {
    if (this.t.on) this.t.emit('qemu.pic_update_irq', 'pic_update_irq', 'pic_set_irq', {});
    const [m, sl] = this.chips as [ReturnType<typeof QemuPic.chip>, ReturnType<typeof QemuPic.chip>];
    if (this.getIrq(sl) >= 0) m.irr |= 1 << 2;
    else m.irr &= ~(1 << 2);
    const level = this.getIrq(m) >= 0;
    if (level !== this.outputLevel) {
      this.outputLevel = level;
      if (level) this.output.raise('pic_update_irq');
      else this.output.lower('pic_update_irq');
    }
  }

  /** pic_read_irq (INTA): the vector the CPU takes. */
  readIrq(): number {
    const [m, sl] = this.chips as [ReturnType<typeof QemuPic.chip>, ReturnType<typeof QemuPic.chip>];
    const ack = (s: typeof m, irq: number): void => {
      s.isr |= 1 << irq;
      if (!(s.elcr & (1 << irq))) s.irr &= ~(1 << irq);
    };
    let intno: number;
    const irq = this.getIrq(m);
    if (irq >= 0) {
      ack(m, irq);
      if (irq === 2) {
        let irq2 = this.getIrq(sl);
        if (irq2 >= 0) ack(sl, irq2);
        else irq2 = 7;
        intno = sl.irqBase + irq2;
      } else intno = m.irqBase + irq;
    } else intno = m.irqBase + 7;
    this.update();
    return intno;
  }

  get intLevel(): boolean {
    return this.outputLevel;
  }

  /** QEMU's init_state per chip (0: operational; 1–3: expecting ICW2, ICW3, ICW4), single mode and ICW4 flags. */
  private readonly initState = [0, 0];
  private readonly singleMode = [false, false];
  private readonly init4 = [false, false];

  /** Whether `port` is one of the 8259s' (0x20/0x21, 0xa0/0xa1) or the ELCRs' (0x4d0/0x4d1). */
  static claims(port: number): boolean {
    return port === 0x20 || port === 0x21 || port === 0xa0 || port === 0xa1 || port === 0x4d0 || port === 0x4d1;
  }

  /**
   * pic_ioport_write / elcr_ioport_write, as far as a guest kernel uses them: ICW1–ICW4 (the
   * vector base), OCW1 (IMR), OCW2 non-specific and specific EOI, and the ELCR. Rotation
   * commands, poll mode and OCW3 (read select, special mask) are accepted and ignored.
   */
  ioportWrite(port: number, val: number): void {
    if (port === 0x4d0 || port === 0x4d1) {
      this.chips[port & 1]!.elcr = val & (port === 0x4d0 ? 0xf8 : 0xde);
      this.update();
      return;
    }
    const c = port >= 0xa0 ? 1 : 0;
    const s = this.chips[c]!;
    if ((port & 1) === 0) {
      if (val & 0x10) {
        // ICW1 (pic_init_reset, then ICW2…)
        s.imr = 0;
        s.isr = 0;
        s.irr = 0;
        s.lastIrr = 0;
        s.priorityAdd = 0;
        s.specialMask = false;
        this.initState[c] = 1;
        this.singleMode[c] = (val & 2) !== 0;
        this.init4[c] = (val & 1) !== 0;
        this.update();
        return;
      }
      if (val & 0x08) return; // OCW3
      const cmd = val >> 5;
      if (cmd === 1) {
        // non-specific EOI: the highest-priority in-service IRQ
        const p = QemuPic.priority(s, s.isr);
        if (p !== 8) s.isr &= ~(1 << ((p + s.priorityAdd) & 7));
        this.update();
      } else if (cmd === 3) {
        s.isr &= ~(1 << (val & 7));
        this.update();
      }
      return;
    }
    switch (this.initState[c]) {
      case 0:
        s.imr = val & 0xff;
        this.update();
        return;
      case 1:
        s.irqBase = val & 0xf8;
        this.initState[c] = this.singleMode[c] ? (this.init4[c] ? 3 : 0) : 2;
        return;
      case 2:
        this.initState[c] = this.init4[c] ? 3 : 0;
        return;
      default:
        this.initState[c] = 0;
    }
  }

  /** pic_ioport_read: IMR on the data port; IRR on the command port (OCW3 read select not modelled); the ELCR. */
  ioportRead(port: number): number {
    if (port === 0x4d0 || port === 0x4d1) return this.chips[port & 1]!.elcr;
    const s = this.chips[port >= 0xa0 ? 1 : 0]!;
    return port & 1 ? s.imr : s.irr;
  }
}

/**
 * The PC machine's GSI fan-out in both QEMU modes:
 * - `kernel-irqchip=off` / TCG: `gsi_handler` (hw/i386/x86.c) → `i8259_irq[n]` (userspace
 *   8259, `QemuPic`) for ISA IRQs, and `ioapic_irq[n]` (a userspace IOAPIC hook);
 * - `kernel-irqchip=on`: `kvm_pc_gsi_handler` (hw/i386/kvm/ioapic.c) → `kvm_pic_set_irq` for
 *   ISA IRQs ("the kernel forwards to both PIC and IOAPIC") or `kvm_ioapic_set_irq`, each of
 *   which is the `kvm_set_irq` ioctl (KVM_IRQ_LINE_STATUS) on the VM.
 */
export class PcGsi {
  /** `gsi[n]`: what devices are wired to. */
  readonly gsi: QemuIrq[] = [];
  readonly pic: QemuPic | undefined;
  private readonly t: TraceChannel;

  private constructor(ctx: SimContext) {
    this.t = ctx.trace.channel('qemu-irq');
  }

  /** kernel-irqchip=on: kvm_pc_gsi_handler → KVM_IRQ_LINE_STATUS on `vm`. */
  static kernelIrqchip(ctx: SimContext, vm: KvmVm): PcGsi {
    const g = new PcGsi(ctx);
    const kvmSetIrq = (fn: string, gsi: number, level: boolean): void => {
      if (g.t.on) g.t.emit(`qemu.${fn}`, fn, 'qemu_set_irq', { irq: gsi, level });
      if (g.t.on) g.t.emit('qemu.kvm_set_irq', 'kvm_set_irq', fn, { irq: gsi, level, ioctl: 'KVM_IRQ_LINE_STATUS' });
      const cur = ctx.scheduler.current;
      if (cur !== undefined) cur.charge(ctx.costs.ns.syscall);
      vm.irqLine(gsi, level, true);
    };
    const i8259 = Array.from({ length: ISA_NUM_IRQS }, (_, n) => new QemuIrq(`kvm-i8259.${n}`, (irq, l) => kvmSetIrq('kvm_pic_set_irq', irq, l), n, g.t));
    const ioapic = Array.from({ length: IOAPIC_NUM_GSIS }, (_, n) => new QemuIrq(`kvm-ioapic.${n}`, (irq, l) => kvmSetIrq('kvm_ioapic_set_irq', irq, l), n, g.t));
    for (let n = 0; n < IOAPIC_NUM_GSIS; n++) {
      g.gsi.push(
        new QemuIrq(`gsi.${n}`, (irq, level) => {
          if (g.t.on) g.t.emit('qemu.kvm_pc_gsi_handler', 'kvm_pc_gsi_handler', 'qemu_set_irq', { n: irq, level });
          if (irq < ISA_NUM_IRQS) i8259[irq]!.set(level, 'kvm_pc_gsi_handler');
          else ioapic[irq]!.set(level, 'kvm_pc_gsi_handler');
        }, n, g.t),
      );
    }
    return g;
  }

  /**
   * kernel-irqchip=off / TCG: gsi_handler → userspace 8259 (`QemuPic`, whose INT output calls
   * `cpuInt`) and `ioapicIn` for the IOAPIC inputs (QEMU's userspace IOAPIC).
   */
  static userspace(ctx: SimContext, cpuInt: (level: boolean) => void, ioapicIn?: (n: number, level: boolean) => void): PcGsi {
    const g = new PcGsi(ctx);
    const pic = new QemuPic(g.t, cpuInt);
    (g as { pic: QemuPic | undefined }).pic = pic;
    for (let n = 0; n < IOAPIC_NUM_GSIS; n++) {
      g.gsi.push(
        new QemuIrq(`gsi.${n}`, (irq, level) => {
          if (g.t.on) g.t.emit('qemu.gsi_handler', 'gsi_handler', 'qemu_set_irq', { n: irq, level });
          if (irq < ISA_NUM_IRQS) pic.irqs[irq]!.set(level, 'gsi_handler');
          ioapicIn?.(irq, level);
        }, n, g.t),
      );
    }
    return g;
  }
}

/**
 * The HPET's legacy-replacement routing (hw/timer/hpet.c `hpet_handle_legacy_irq`): with
 * legacy mode off the PIT's and RTC's lines pass through to GSI 0/8; with it on they are cut.
 */
export class HpetLegacy {
  legacyMode = false;
  readonly irqs: QemuIrq[];
  constructor(t: TraceChannel, out: readonly QemuIrq[]) {
    this.irqs = [0, 1].map(
      (n) =>
        new QemuIrq(`hpet-legacy.${n}`, (i, level) => {
          if (t.on) t.emit('qemu.hpet_handle_legacy_irq', 'hpet_handle_legacy_irq', 'qemu_set_irq', { n: i, level, legacy: this.legacyMode });
          if (!this.legacyMode) out[i === 0 ? 0 : 8]!.set(level, 'hpet_handle_legacy_irq');
        }, n, t),
    );
  }
}

/**
 * The i8254 PIT's channel 0 as far as interrupts go (hw/timer/i8254.c): `pit_irq_timer`
 * fires every period on QEMU's main loop, `pit_irq_timer_update` drives the output (rate
 * generator: a short pulse) through `qemu_set_irq`.
 */
export class QemuPit {
  private timer: ScheduledEvent | undefined;
  ticks = 0;
  constructor(
    private readonly ctx: SimContext,
    private readonly actor: Actor,
    private readonly out: QemuIrq,
    readonly periodNs: number,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = this.ctx.scheduler.after(this.periodNs, this.actor, () => this.irqTimer());
  }

  stop(): void {
    if (this.timer !== undefined) this.ctx.scheduler.cancel(this.timer);
    this.timer = undefined;
  }

  /** pit_irq_timer */
  private irqTimer(): void {
    const t = this.ctx.trace.channel('qemu-irq');
    if (t.on) t.emit('qemu.pit_irq_timer', 'pit_irq_timer', 'timerlist_run_timers', { tick: this.ticks });
    this.ticks++;
    if (t.on) t.emit('qemu.pit_irq_timer_update', 'pit_irq_timer_update', 'pit_irq_timer', { level: true });
    this.out.set(true, 'pit_irq_timer_update');
    this.out.set(false, 'pit_irq_timer_update');
    this.timer = this.ctx.scheduler.after(this.periodNs, this.actor, () => this.irqTimer());
  }
}
