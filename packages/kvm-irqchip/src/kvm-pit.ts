import type { Actor, ScheduledEvent } from '@virq/core';
import type { IrqAckNotifier } from './irqfd.js';
import type { KvmVm } from './vm.js';

/** The i8254's input clock (KVM_PIT_FREQ, Hz). */
export const KVM_PIT_FREQ = 1_193_182;
/** Its I/O ports: counters 0–2 at 0x40–0x42, the mode/command register at 0x43. */
export const KVM_PIT_BASE_ADDRESS = 0x40;
export const KVM_PIT_MEM_LENGTH = 4;
/** The IRQ source id KVM's PIT asserts GSI 0 with. */
export const KVM_PIT_IRQ_SOURCE_ID = 2;
/** kvm.ko's min_timer_period_us default: a periodic PIT faster than this is slowed down to it. */
export const KVM_MIN_TIMER_PERIOD_US = 200;

const RW_STATE_LSB = 1;
const RW_STATE_MSB = 2;
const RW_STATE_WORD0 = 3;
const RW_STATE_WORD1 = 4;

/** `struct kvm_kpit_channel_state` */
interface PitChannel {
  count: number;
  latchedCount: number;
  countLatched: number;
  statusLatched: boolean;
  status: number;
  readState: number;
  writeState: number;
  writeLatch: number;
  rwMode: number;
  mode: number;
  bcd: number;
  gate: number;
  /** Virtual ns of the last count load (the other channels' counting reference). */
  countLoadTime: number;
}

export interface KvmPitOptions {
  /** KVM_REINJECT_CONTROL (QEMU's kvm-pit lost_tick_policy=delay, the default): ticks not yet acknowledged are re-delivered. */
  reinject?: boolean;
  /** The VMM's pid for the worker's name (`kvm-pit/<pid>`). */
  ownerPid?: number;
  /** Called at each expiry of channel 0's timer (for a caller's latency accounting). */
  onExpire?: (timeNs: number) => void;
}

/**
 * KVM's in-kernel i8254 (arch/x86/kvm/i8254.c, KVM_CREATE_PIT2): the counters and mode
 * register on the kernel PIO bus (guest port writes are handled in KVM: `pit_ioport_write`),
 * channel 0's hrtimer (`create_pit_timer`, periodic in modes 2/3 and held to
 * min_timer_period_us), its expiry `pit_timer_fn` queuing `pit_do_work` on the `kvm-pit/<pid>`
 * kthread, which pulses GSI 0 (`kvm_set_irq` 1 then 0 from the PIT's own IRQ source). In
 * reinject mode (the default) a tick is injected only once the previous one was acknowledged
 * (`kvm_pit_ack_irq`, an ack notifier on GSI 0); the ticks that expired meanwhile are counted
 * in `pending` and re-delivered one per acknowledgement.
 *
 * Not modelled: the speaker port (0x61) and channel 2's gate, the HPET legacy flag
 * (KVM_PIT_FLAGS_HPET_LEGACY), NMI watchdog delivery through LVT0, KVM_GET/SET_PIT2 state.
 */
export class KvmPit implements IrqAckNotifier {
  readonly gsi = 0;
  readonly worker: Actor;
  private readonly hardirq: Actor;
  private readonly channels: PitChannel[] = [];
  readonly reinject: boolean;
  /** ps->period (ns) and whether channel 0 is periodic; 0 = no timer. */
  private period = 0;
  private periodic = false;
  private timer: ScheduledEvent | undefined;
  private timerExpires = 0;
  private pending = 0;
  private irqAck = true;
  private workQueued = false;
  private readonly onExpire: ((timeNs: number) => void) | undefined;
  /** Expiries of the hrtimer, GSI 0 pulses, and periods the guest asked for below the minimum. */
  readonly stats = { expiries: 0, injected: 0, clamped: 0 };

  constructor(
    private readonly vm: KvmVm,
    options: KvmPitOptions = {},
  ) {
    const s = vm.scheduler;
    this.worker = s.actor({ name: `kvm-pit/${options.ownerPid ?? 0}`, kind: 'kernel', cpu: 0 });
    this.hardirq = s.actor({ name: 'swapper/0', kind: 'host-cpu', cpu: 0 });
    for (let i = 0; i < 3; i++) {
      this.channels.push({ count: 0x10000, latchedCount: 0, countLatched: 0, statusLatched: false, status: 0, readState: 0, writeState: 0, writeLatch: 0, rwMode: 0, mode: 0, bcd: 0, gate: i === 2 ? 0 : 1, countLoadTime: 0 });
    }
    this.reinject = options.reinject ?? true;
    this.onExpire = options.onExpire;
    vm.pioBus.register(KVM_PIT_BASE_ADDRESS, KVM_PIT_MEM_LENGTH, { write: (a, _l, v) => this.ioportWrite(a, v), read: (a) => this.ioportRead(a) });
    if (this.reinject) vm.registerAckNotifier(this);
  }

  /** Channel 0's programmed period in ns (after the min_timer_period_us clamp), 0 when stopped. */
  get periodNs(): number {
    return this.period;
  }
  /** Ticks waiting for the guest's acknowledgement (reinject mode). */
  get pendingTicks(): number {
    return this.pending;
  }

  // ---- the PIO device -------------------------------------------------------------------------

  /** pit_ioport_write */
  private ioportWrite(addr: number, value: number): boolean {
    const port = addr - KVM_PIT_BASE_ADDRESS;
    if (port < 0 || port > 3) return false;
    const val = value & 0xff;
    if (this.vm.tracing) this.vm.trace('pit_ioport_write', '__kvm_io_bus_write', { port: addr, val });
    if (port === 3) {
      const channel = val >> 6;
      if (channel === 3) {
        // Read-Back command: latch count and/or status of the selected counters.
        for (let c = 0; c < 3; c++) {
          if ((val & (2 << c)) === 0) continue;
          if ((val & 0x20) === 0) this.latchCount(c);
          if ((val & 0x10) === 0) this.latchStatus(c);
        }
        return true;
      }
      const s = this.channels[channel]!;
      const access = (val >> 4) & 3;
      if (access === 0) {
        this.latchCount(channel);
      } else {
        s.rwMode = access;
        s.readState = access;
        s.writeState = access;
        s.mode = (val >> 1) & 7;
        if (s.mode > 5) s.mode -= 4;
        s.bcd = val & 1;
      }
      return true;
    }
    const s = this.channels[port]!;
    switch (s.writeState) {
      case RW_STATE_MSB:
        this.loadCount(port, val << 8);
        break;
      case RW_STATE_WORD0:
        s.writeLatch = val;
        s.writeState = RW_STATE_WORD1;
        break;
      case RW_STATE_WORD1:
        this.loadCount(port, s.writeLatch | (val << 8));
        s.writeState = RW_STATE_WORD0;
        break;
      default:
        this.loadCount(port, val);
        break;
    }
    return true;
  }

  /** pit_ioport_read */
  private ioportRead(addr: number): number | undefined {
    const port = addr - KVM_PIT_BASE_ADDRESS;
    if (port < 0 || port > 3) return undefined;
    if (port === 3) return 0;
    const s = this.channels[port]!;
    if (s.statusLatched) {
      s.statusLatched = false;
      return s.status;
    }
    if (s.countLatched !== 0) {
      switch (s.countLatched) {
        case RW_STATE_MSB:
          s.countLatched = 0;
          return (s.latchedCount >> 8) & 0xff;
        case RW_STATE_WORD0:
          s.countLatched = RW_STATE_MSB;
          return s.latchedCount & 0xff;
        default:
          s.countLatched = 0;
          return s.latchedCount & 0xff;
      }
    }
    const count = this.getCount(port);
    switch (s.readState) {
      case RW_STATE_MSB:
        return (count >> 8) & 0xff;
      case RW_STATE_WORD0:
        s.readState = RW_STATE_WORD1;
        return count & 0xff;
      case RW_STATE_WORD1:
        s.readState = RW_STATE_WORD0;
        return (count >> 8) & 0xff;
      default:
        return count & 0xff;
    }
  }

  private latchCount(c: number): void {
    const s = this.channels[c]!;
    if (s.countLatched !== 0) return;
    s.latchedCount = this.getCount(c);
    s.countLatched = s.rwMode;
  }

  private latchStatus(c: number): void {
    const s = this.channels[c]!;
    if (s.statusLatched) return;
    s.status = (this.getOut(c) << 7) | (s.rwMode << 4) | (s.mode << 1) | s.bcd;
    s.statusLatched = true;
  }

  /** Input clock ticks since the channel's reference (channel 0: into the current period). */
  private elapsedTicks(c: number): number {
    const now = this.vm.scheduler.now;
    let ns: number;
    if (c === 0) ns = this.period === 0 ? 0 : this.period - Math.max(0, this.timerExpires - now);
    else ns = now - this.channels[c]!.countLoadTime;
    return Math.floor((ns * KVM_PIT_FREQ) / 1e9);
  }

  /** pit_get_count */
  private getCount(c: number): number {
    const s = this.channels[c]!;
    const d = this.elapsedTicks(c);
    switch (s.mode) {
      case 0:
      case 1:
      case 4:
      case 5:
        return (s.count - d) & 0xffff;
      case 3:
        return s.count - ((2 * d) % s.count);
      default:
        return s.count - (d % s.count);
    }
  }

  /** pit_get_out */
  private getOut(c: number): number {
    const s = this.channels[c]!;
    const d = this.elapsedTicks(c);
    switch (s.mode) {
      case 1:
        return d < s.count ? 1 : 0;
      case 2:
        return d % s.count === 0 && d !== 0 ? 1 : 0;
      case 3:
        return d % s.count < (s.count + 1) >> 1 ? 1 : 0;
      case 4:
      case 5:
        return d === s.count ? 1 : 0;
      default:
        return d >= s.count ? 1 : 0;
    }
  }

  /** pit_load_count: a count of 0 means 0x10000; channel 0 (re)starts its timer. */
  private loadCount(c: number, value: number): void {
    const val = value === 0 ? 0x10000 : value;
    const s = this.channels[c]!;
    s.count = val;
    if (c !== 0) {
      s.countLoadTime = this.vm.scheduler.now;
      return;
    }
    switch (s.mode) {
      case 0:
      case 1:
      case 4:
        this.createTimer(val, false);
        break;
      case 2:
      case 3:
        this.createTimer(val, true);
        break;
      default:
        this.destroyTimer();
    }
  }

  /** create_pit_timer (needs the in-kernel IOAPIC). */
  private createTimer(val: number, periodic: boolean): void {
    if (this.vm.ioapic === undefined) return;
    const interval = Math.floor((val * 1e9) / KVM_PIT_FREQ);
    this.destroyTimer();
    this.period = interval;
    this.periodic = periodic;
    this.pending = 0;
    this.irqAck = true;
    if (periodic && this.period < KVM_MIN_TIMER_PERIOD_US * 1000) {
      // "requested %lld ns i8254 timer period limited to %lld ns"
      this.stats.clamped++;
      this.period = KVM_MIN_TIMER_PERIOD_US * 1000;
    }
    if (this.vm.tracing) this.vm.trace('create_pit_timer', 'pit_load_count', { interval, period: this.period, periodic });
    this.armTimer(this.vm.scheduler.now + interval);
  }

  private destroyTimer(): void {
    if (this.timer !== undefined) this.vm.scheduler.cancel(this.timer);
    this.timer = undefined;
    this.period = 0;
  }

  private armTimer(at: number): void {
    this.timerExpires = at;
    this.timer = this.vm.scheduler.at(at, this.hardirq, () => this.timerFn());
  }

  /** pit_timer_fn (hrtimer, hard irq context): count the tick, queue the work, re-arm if periodic. */
  private timerFn(): void {
    this.timer = undefined;
    this.stats.expiries++;
    if (this.reinject) this.pending++;
    if (this.vm.tracing) this.vm.trace('pit_timer_fn', '__hrtimer_run_queues', { pending: this.pending });
    this.onExpire?.(this.timerExpires);
    this.queueWork();
    if (this.periodic && this.period > 0) this.armTimer(this.timerExpires + this.period);
  }

  /** kthread_queue_work(pit->worker, &pit->expired): the kvm-pit thread wakes up. */
  private queueWork(): void {
    if (this.workQueued) return;
    this.workQueued = true;
    this.vm.scheduler.after(this.vm.costs.ns.threadWakeup, this.worker, () => {
      this.workQueued = false;
      this.doWork();
    });
  }

  /** pit_do_work: in reinject mode only after the previous tick's acknowledgement; a 1-then-0 pulse on GSI 0. */
  private doWork(): void {
    if (this.reinject) {
      if (!this.irqAck) return;
      this.irqAck = false;
    }
    this.stats.injected++;
    if (this.vm.tracing) this.vm.trace('pit_do_work', 'kthread_worker_fn', { reinject: this.reinject });
    this.vm.kvmSetIrq(KVM_PIT_IRQ_SOURCE_ID, 0, true, false);
    this.vm.kvmSetIrq(KVM_PIT_IRQ_SOURCE_ID, 0, false, false);
  }

  /** kvm_pit_ack_irq (the ack notifier on GSI 0): a tick that waited is re-delivered. */
  irqAcked(): void {
    this.irqAck = true;
    if (this.vm.tracing) this.vm.trace('kvm_pit_ack_irq', 'kvm_notify_acked_gsi', { pending: this.pending });
    if (this.pending > 0) {
      this.pending--;
      if (this.pending > 0) this.queueWork();
    }
  }
}
