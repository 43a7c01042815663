import { IrqLine } from '@virq/core';

/** `struct kvm_pic_state`'s fields, in uapi order. */
export const PIC_FIELDS = [
  'last_irr', 'irr', 'imr', 'isr', 'priority_add', 'irq_base', 'read_reg_select', 'poll', 'special_mask',
  'init_state', 'auto_eoi', 'rotate_on_auto_eoi', 'special_fully_nested_mode', 'init4', 'elcr', 'elcr_mask',
] as const;
export type PicField = (typeof PIC_FIELDS)[number];
export type PicStateRaw = Record<PicField, number>;

/** KVM_GET_IRQCHIP(PIC) as the golden corpus decodes it. */
export type PicStateJson = PicStateRaw & {
  irr_bits: number[];
  imr_bits: number[];
  isr_bits: number[];
  elcr_bits: number[];
  last_irr_bits: number[];
};

/** One 8259 (`struct kvm_kpic_state`). */
export class Kpic implements PicStateRaw {
  last_irr = 0;
  irr = 0;
  imr = 0;
  isr = 0;
  priority_add = 0;
  irq_base = 0;
  read_reg_select = 0;
  poll = 0;
  special_mask = 0;
  init_state = 0;
  auto_eoi = 0;
  rotate_on_auto_eoi = 0;
  special_fully_nested_mode = 0;
  init4 = 0;
  elcr = 0;
  elcr_mask = 0;
  constructor(readonly isMaster: boolean) {
    this.elcr_mask = isMaster ? 0xf8 : 0xde;
  }
}

/** What the PIC needs of its VM. */
export interface PicHost {
  /** kvm_notify_acked_irq(SELECT_PIC(irq), irq) for a cleared ISR bit (irq 0–15). */
  notifyAckedIrq(irqchip: number, pin: number): void;
  fireMaskNotifiers(irqchip: number, pin: number, masked: boolean): void;
  /** pic_unlock's wake-up: the first vCPU that accepts PIC interrupts gets KVM_REQ_EVENT + kick. Returns whether one did. */
  wakeFirstAcceptingVcpu(): boolean;
  anyVcpuAcceptsPic(): boolean;
  readonly tracing: boolean;
  tracePic(fn: string, caller: string, args: Readonly<Record<string, number | string | boolean>>): void;
}

const bits8 = (v: number): number[] => [0, 1, 2, 3, 4, 5, 6, 7].filter((i) => (v >> i) & 1);

/**
 * The 8259A pair of arch/x86/kvm/i8259.c: ICW/OCW programming, IRR/IMR/ISR, rotating
 * priority, ELCR level lines, per-source line state (`irq_states`), auto-EOI, poll mode,
 * cascade through master IR2, and the wake-up of the first vCPU accepting ExtINT.
 */
export class KvmPic {
  readonly pics: [Kpic, Kpic] = [new Kpic(true), new Kpic(false)];
  output = 0;
  private wakeupNeeded = false;
  readonly lines: IrqLine[] = [];

  constructor(private readonly host: PicHost) {
    for (let i = 0; i < 16; i++) this.lines.push(new IrqLine(`pic.${i}`));
  }

  /** pic_unlock: the deferred wake-up. */
  private unlock(): void {
    if (this.wakeupNeeded) {
      this.wakeupNeeded = false;
      if (this.host.tracing) this.host.tracePic('pic_unlock', 'kvm_pic_set_irq', { wakeup: true });
      this.host.wakeFirstAcceptingVcpu();
    }
  }

  private clearIsr(s: Kpic, irq: number): void {
    s.isr &= ~(1 << irq);
    const n = s.isMaster ? irq : irq + 8;
    this.unlock();
    this.host.notifyAckedIrq(n < 8 ? 0 : 1, n);
  }

  /** pic_set_irq1: edge/level detection; -1 masked, 1 newly latched, 0 coalesced. */
  private static setIrq1(s: Kpic, irq: number, level: boolean): number {
    const mask = 1 << irq;
    let ret = 1;
    if (s.elcr & mask) {
      if (level) {
        ret = s.irr & mask ? 0 : 1;
        s.irr |= mask;
        s.last_irr |= mask;
      } else {
        s.irr &= ~mask;
        s.last_irr &= ~mask;
      }
    } else if (level) {
      if ((s.last_irr & mask) === 0) {
        ret = s.irr & mask ? 0 : 1;
        s.irr |= mask;
      }
      s.last_irr |= mask;
    } else {
      s.last_irr &= ~mask;
    }
    return s.imr & mask ? -1 : ret;
  }

  private static priority(s: Kpic, mask: number): number {
    if (mask === 0) return 8;
    let p = 0;
    while ((mask & (1 << ((p + s.priority_add) & 7))) === 0) p++;
    return p;
  }

  /** pic_get_irq */
  private getIrq(s: Kpic): number {
    const p = KvmPic.priority(s, s.irr & ~s.imr);
    if (p === 8) return -1;
    let mask = s.isr;
    if (s.special_fully_nested_mode && s.isMaster) mask &= ~(1 << 2);
    const cur = KvmPic.priority(s, mask);
    return p < cur ? (p + s.priority_add) & 7 : -1;
  }

  /** pic_update_irq */
  private update(): void {
    const [m, sl] = this.pics;
    if (this.getIrq(sl) >= 0) {
      KvmPic.setIrq1(m, 2, true);
      KvmPic.setIrq1(m, 2, false);
    }
    const level = this.getIrq(m) >= 0 ? 1 : 0;
    if (!this.output && level) this.wakeupNeeded = true;
    this.output = level;
  }

  /** kvm_pic_update_irq (after KVM_SET_IRQCHIP). */
  updateIrq(): void {
    this.update();
    this.unlock();
  }

  /** kvm_pic_set_irq: pin 0–15 (slave pins +8) from `sourceId`. */
  setIrq(pin: number, sourceId: number, level: boolean): number {
    if (this.host.tracing) this.host.tracePic('kvm_pic_set_irq', 'kvm_set_pic_irq', { pin, src: sourceId, level });
    const lvl = this.lines[pin]!.set(sourceId, level).level;
    const s = this.pics[pin >> 3];
    if (this.host.tracing) this.host.tracePic('pic_set_irq1', 'kvm_pic_set_irq', { chip: pin >> 3, pin: pin & 7, level: lvl });
    const ret = KvmPic.setIrq1(s, pin & 7, lvl);
    if (this.host.tracing) this.host.tracePic('pic_update_irq', 'kvm_pic_set_irq', { chip: pin >> 3, elcr: s.elcr, imr: s.imr, coalesced: ret === 0 });
    this.update();
    this.unlock();
    return ret;
  }

  /** Whether the master's INTR output is up (an ExtINT is pending). */
  hasInterrupt(): boolean {
    return this.output !== 0;
  }

  private intack(s: Kpic, irq: number): void {
    s.isr |= 1 << irq;
    if (!(s.elcr & (1 << irq))) s.irr &= ~(1 << irq);
    if (s.auto_eoi) {
      if (s.rotate_on_auto_eoi) s.priority_add = (irq + 1) & 7;
      this.clearIsr(s, irq);
    }
  }

  /** kvm_pic_read_irq: the INTA cycle of an ExtINT injection; returns the vector. */
  readIrq(): number {
    const [m, sl] = this.pics;
    this.output = 0;
    let irq = this.getIrq(m);
    let intno: number;
    if (irq >= 0) {
      this.intack(m, irq);
      if (irq === 2) {
        let irq2 = this.getIrq(sl);
        if (irq2 >= 0) this.intack(sl, irq2);
        else irq2 = 7;
        intno = sl.irq_base + irq2;
      } else intno = m.irq_base + irq;
    } else {
      irq = 7;
      intno = m.irq_base + irq;
    }
    this.update();
    this.unlock();
    if (this.host.tracing) this.host.tracePic('kvm_pic_read_irq', 'kvm_cpu_get_interrupt', { vector: intno });
    return intno & 0xff;
  }

  /** pic_ioport_write */
  private ioportWrite(s: Kpic, addr: number, val: number): void {
    if ((addr & 1) === 0) {
      if (val & 0x10) {
        const edgeIrr = s.irr & ~s.elcr;
        s.init4 = val & 1;
        s.last_irr = 0;
        s.irr &= s.elcr;
        s.imr = 0;
        s.priority_add = 0;
        s.special_mask = 0;
        s.read_reg_select = 0;
        if (!s.init4) {
          s.special_fully_nested_mode = 0;
          s.auto_eoi = 0;
        }
        s.init_state = 1;
        if (this.host.anyVcpuAcceptsPic()) {
          for (let irq = 0; irq < 8; irq++) if (edgeIrr & (1 << irq)) this.clearIsr(s, irq);
        }
      } else if (val & 0x08) {
        if (val & 0x04) s.poll = 1;
        if (val & 0x02) s.read_reg_select = val & 1;
        if (val & 0x40) s.special_mask = (val >> 5) & 1;
      } else {
        const cmd = val >> 5;
        switch (cmd) {
          case 0:
          case 4:
            s.rotate_on_auto_eoi = cmd >> 2;
            break;
          case 1:
          case 5: {
            const p = KvmPic.priority(s, s.isr);
            if (p !== 8) {
              const irq = (p + s.priority_add) & 7;
              if (cmd === 5) s.priority_add = (irq + 1) & 7;
              this.clearIsr(s, irq);
              this.update();
            }
            break;
          }
          case 3:
            this.clearIsr(s, val & 7);
            this.update();
            break;
          case 6:
            s.priority_add = (val + 1) & 7;
            this.update();
            break;
          case 7: {
            const irq = val & 7;
            s.priority_add = (irq + 1) & 7;
            this.clearIsr(s, irq);
            this.update();
            break;
          }
          default:
            break;
        }
      }
    } else {
      switch (s.init_state) {
        case 0: {
          const diff = s.imr ^ val;
          const off = s.isMaster ? 0 : 8;
          s.imr = val & 0xff;
          for (let irq = 0; irq < 8; irq++) {
            if (diff & (1 << irq)) this.host.fireMaskNotifiers(s.isMaster ? 0 : 1, irq + off, (s.imr & (1 << irq)) !== 0);
          }
          this.update();
          break;
        }
        case 1:
          s.irq_base = val & 0xf8;
          s.init_state = 2;
          break;
        case 2:
          s.init_state = s.init4 ? 3 : 0;
          break;
        case 3:
          s.special_fully_nested_mode = (val >> 4) & 1;
          s.auto_eoi = (val >> 1) & 1;
          s.init_state = 0;
          break;
        default:
          break;
      }
    }
  }

  /** pic_poll_read */
  private pollRead(s: Kpic, addr1: number): number {
    let ret = this.getIrq(s);
    if (ret >= 0) {
      if (addr1 >> 7) {
        this.pics[0].isr &= ~(1 << 2);
        this.pics[0].irr &= ~(1 << 2);
      }
      s.irr &= ~(1 << ret);
      this.clearIsr(s, ret);
      if (addr1 >> 7 || ret !== 2) this.update();
      ret |= 0x80;
    } else {
      ret = 0x07;
      this.update();
    }
    return ret;
  }

  private ioportRead(s: Kpic, addr1: number): number {
    if (s.poll) {
      const r = this.pollRead(s, addr1);
      s.poll = 0;
      return r;
    }
    if ((addr1 & 1) === 0) return s.read_reg_select ? s.isr : s.irr;
    return s.imr;
  }

  /** Whether the PIC claims this I/O port (picdev_in_range). */
  static claims(port: number): boolean {
    return port === 0x20 || port === 0x21 || port === 0xa0 || port === 0xa1 || port === 0x4d0 || port === 0x4d1;
  }

  /** picdev_write (only 1-byte accesses do anything). */
  portWrite(port: number, len: number, val: number): void {
    if (len !== 1) return;
    const data = val & 0xff;
    switch (port) {
      case 0x20:
      case 0x21:
        this.ioportWrite(this.pics[0], port, data);
        break;
      case 0xa0:
      case 0xa1:
        this.ioportWrite(this.pics[1], port, data);
        break;
      case 0x4d0:
      case 0x4d1: {
        const s = this.pics[port & 1];
        s.elcr = data & s.elcr_mask;
        break;
      }
      default:
        return;
    }
    this.unlock();
  }

  /** picdev_read */
  portRead(port: number, len: number): number {
    if (len !== 1) return 0;
    let r = 0;
    switch (port) {
      case 0x20:
      case 0x21:
      case 0xa0:
      case 0xa1:
        r = this.ioportRead(this.pics[port >> 7], port);
        break;
      case 0x4d0:
      case 0x4d1:
        r = this.pics[port & 1].elcr;
        break;
      default:
        return 0;
    }
    this.unlock();
    return r & 0xff;
  }

  toJson(chip: 0 | 1): PicStateJson {
    const s = this.pics[chip];
    const raw = {} as PicStateRaw;
    for (const f of PIC_FIELDS) raw[f] = s[f];
    return { ...raw, irr_bits: bits8(s.irr), imr_bits: bits8(s.imr), isr_bits: bits8(s.isr), elcr_bits: bits8(s.elcr), last_irr_bits: bits8(s.last_irr) };
  }

  /** KVM_SET_IRQCHIP(PIC): copy every field (byte-sized), then kvm_pic_update_irq. */
  setState(chip: 0 | 1, st: Partial<PicStateRaw>): void {
    const s = this.pics[chip];
    for (const f of PIC_FIELDS) {
      const v = st[f];
      if (v !== undefined) s[f] = v & 0xff;
    }
    this.updateIrq();
  }
}
