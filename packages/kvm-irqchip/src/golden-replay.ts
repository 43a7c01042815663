import { readFileSync } from 'node:fs';
import { createSimContext, EventFd, VirqError, type Actor, type MsiMessage } from '@virq/core';
import { KvmErrorCode } from './errors.js';
import { PIC_FIELDS, type PicStateRaw } from './i8259.js';
import { encodeRedirEntry, IOAPIC_NUM_PINS, type RedirEntryJson } from './ioapic.js';
import { KVM_IRQFD_FLAG_RESAMPLE } from './irqfd.js';
import { KVM_MAX_IRQ_ROUTES, type KvmRoutingEntry } from './irq-routing.js';
import { APIC, LAPIC_REG_BY_NAME } from './lapic-registers.js';
import { MP_STATE_NAMES } from './vcpu.js';
import { KvmVm } from './vm.js';

/** One `{op, args, result}` record of the golden corpus (../shared/golden/README.md). */
export interface GoldenStep {
  readonly op: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly result: Readonly<Record<string, unknown>>;
}

/** One recorded scenario. */
export interface GoldenScenario {
  readonly name: string;
  readonly group?: string;
  readonly description?: string;
  readonly nvcpus: number;
  readonly in_kernel_irqchip: boolean;
  readonly uses_guest?: boolean;
  readonly skipped?: boolean;
  readonly skip_reason?: string;
  readonly setup: { readonly actions: readonly GoldenStep[]; readonly state?: unknown };
  readonly steps: readonly GoldenStep[];
  readonly final_state?: unknown;
}

export interface GoldenScenarioResult {
  readonly name: string;
  readonly status: 'pass' | 'fail' | 'skipped';
  /** The first difference, e.g. `step 3 irq_line_status: result.status expected 1, got 0`. */
  readonly firstMismatch: string | undefined;
  readonly mismatches: readonly string[];
  /** Set when the replayed setup did not reproduce `setup.state` and the recorded state was loaded instead. */
  readonly setupNote: string | undefined;
}

const ERRNO_BY_NUMBER: Readonly<Record<number, string>> = { 1: 'EPERM', 2: 'ENOENT', 6: 'ENXIO', 11: 'EAGAIN', 12: 'ENOMEM', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 25: 'ENOTTY' };
const DEFAULT_ROUTING_VIEW =
  'default (KVM_CREATE_IRQCHIP): GSI 0-7 -> pic_master pin n + ioapic pin n; GSI 8-15 -> pic_slave pin n-8 + ioapic pin n; GSI 16-23 -> ioapic pin n';

type Json = unknown;

/** Deep comparison of `actual` against `expected` (only the keys `expected` has). Returns the first difference. */
export function firstDifference(expected: Json, actual: Json, path: string): string | undefined {
  if (expected === null || typeof expected !== 'object') {
    if (expected === actual) return undefined;
    if (typeof expected === 'number' && typeof actual === 'number' && expected === actual) return undefined;
    return `${path} expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path} expected an array, got ${JSON.stringify(actual)}`;
    if (expected.length !== actual.length && (expected.length === 0 || typeof expected[0] !== 'object')) {
      return `${path} expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
    }
    if (expected.length !== actual.length) return `${path} expected ${expected.length} items, got ${actual.length}`;
    for (let i = 0; i < expected.length; i++) {
      const d = firstDifference(expected[i], actual[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  const e = expected as Record<string, unknown>;
  if (actual === null || typeof actual !== 'object') return `${path} expected an object, got ${JSON.stringify(actual)}`;
  const a = actual as Record<string, unknown>;
  if ('error' in e) return 'error' in a ? undefined : `${path} expected an error (${String(e['error'])}), got a state`;
  for (const k of Object.keys(e)) {
    const d = firstDifference(e[k], a[k], path === '' ? k : `${path}.${k}`);
    if (d !== undefined) return d;
  }
  return undefined;
}

/** KVM_PIO_PAGE_OFFSET * PAGE_SIZE: what an IO exit stores in kvm_run.io.data_offset. */
const KVM_RUN_IO_DATA_OFFSET = 0x1000;

/**
 * A u64 field read from JSON: integers above 2^53 arrive rounded to a double, and those within
 * 2^10 of 2^64 round up to 2^64 itself, which no u64 can be; such a value was 2^64 - 1 or just
 * below it, so it is read as the largest u64 (KVM's range checks then see the overflow).
 */
function u64(v: unknown, what: string): bigint {
  const n = num(v, what);
  const b = BigInt(n);
  return b >= 1n << 64n ? (1n << 64n) - 1n : BigInt.asUintN(64, b);
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new VirqError(KvmErrorCode.GoldenInvalid, `golden step: ${what} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Replays golden scenarios against the model: a fresh VM per scenario, the setup actions,
 * the recorded `setup.state` (loaded if the replayed setup differs), then every step with its
 * result compared, and the final state. Ioctls run on a userspace thread (`qemu-system-x86`)
 * and guest accesses on vCPU 0's thread, each followed by running the scheduler until idle
 * (irqfd work items, wake-ups, the IOAPIC's delayed work).
 */
export class GoldenReplayer {
  readonly vm: KvmVm;
  private readonly ctx = createSimContext({ seed: 1 });
  private readonly user: Actor;
  private readonly fds = new Map<string, EventFd>();
  private routingView: unknown = DEFAULT_ROUTING_VIEW;
  /** Last low 32 bits in each vCPU's kvm_run.mmio.data (what an MMIO read exit reports). */
  private readonly mmio = new Map<number, number>();

  constructor(readonly scenario: GoldenScenario) {
    this.vm = new KvmVm(this.ctx, { nvcpus: scenario.nvcpus, irqchip: scenario.in_kernel_irqchip });
    this.user = this.ctx.scheduler.actor({ name: 'qemu-system-x86', kind: 'vmm-main', cpu: 0 });
  }

  /** Runs `fn` as an event on `actor`, then lets the machine settle. */
  private onActor<T>(actor: Actor, fn: () => T): T {
    let out: { v: T } | { e: unknown } | undefined;
    this.ctx.scheduler.after(0, actor, () => {
      try {
        out = { v: fn() };
      } catch (e) {
        out = { e };
      }
    });
    this.settle();
    if (out === undefined) throw new VirqError(KvmErrorCode.GoldenInvalid, 'replay event did not run');
    if ('e' in out) throw out.e;
    return out.v;
  }

  private settle(): void {
    this.ctx.scheduler.runUntilIdle(1_000_000);
  }

  private ioctl(fn: () => Record<string, unknown>): Record<string, unknown> {
    try {
      return this.onActor(this.user, fn);
    } catch (e) {
      if (e instanceof VirqError && e.errno !== undefined) return { ret: -1, errno: e.errno };
      throw e;
    }
  }

  /** The state in the corpus' shape (plus the userspace routing view when asked). */
  state(withRouting: boolean): Record<string, unknown> {
    const s: Record<string, unknown> = { ...this.vm.getState() };
    if (withRouting) s['gsi_routing_userspace_view'] = this.routingView;
    return s;
  }

  private fd(name: unknown): EventFd {
    const f = typeof name === 'string' ? this.fds.get(name) : undefined;
    if (f === undefined) throw new VirqError(KvmErrorCode.GoldenInvalid, `golden step names eventfd ${JSON.stringify(name)} that was never created`);
    return f;
  }

  /** Applies one operation and returns its result in the corpus' shape. */
  apply(step: GoldenStep): Record<string, unknown> {
    const a = step.args;
    const vm = this.vm;
    switch (step.op) {
      case 'irq_line_status': {
        const r = this.ioctl(() => ({ ret: 0, errno: null, status: vm.irqLine(num(a['irq'], 'irq'), num(a['level'], 'level') !== 0, true) }));
        return 'status' in r ? r : { ...r, status: null };
      }
      case 'irq_line':
        return this.ioctl(() => (vm.irqLine(num(a['irq'], 'irq'), num(a['level'], 'level') !== 0, false), { ret: 0, errno: null }));
      case 'set_gsi_routing':
        return this.ioctl(() => {
          const nr = num(a['nr'], 'nr');
          if (nr > KVM_MAX_IRQ_ROUTES) throw new VirqError(KvmErrorCode.RoutingTooLarge, `nr ${nr} > KVM_MAX_IRQ_ROUTES`, { errno: 'EINVAL' });
          const entries = ((a['entries'] as readonly Record<string, unknown>[]) ?? []).slice(0, nr).map(toRoutingEntry);
          vm.setGsiRouting(entries, num(a['flags'] ?? 0, 'flags'));
          this.routingView = a['entries'];
          return { ret: 0, errno: null };
        });
      case 'signal_msi':
        return this.ioctl(() => {
          const flags = num(a['flags'] ?? 0, 'flags');
          const msg: MsiMessage = { addressLo: num(a['address_lo'], 'address_lo'), addressHi: num(a['address_hi'] ?? 0, 'address_hi'), data: num(a['data'], 'data'), ...(flags & 1 ? { requesterId: num(a['devid'] ?? 0, 'devid') } : {}) };
          const r = vm.signalMsi(msg, flags);
          return r < 0 ? { ret: -1, errno: ERRNO_BY_NUMBER[-r] ?? `E${-r}` } : { ret: r, errno: null };
        });
      case 'set_irqchip_pic':
        return this.ioctl(() => {
          const chip = a['chip'] === 'slave' || a['chip'] === 1 ? 1 : 0;
          const cur = vm.getIrqchip(chip) as unknown as Record<string, number>;
          const st = {} as PicStateRaw;
          for (const f of PIC_FIELDS) st[f] = cur[f]!;
          const fields = (a['fields'] ?? {}) as Record<string, number>;
          for (const [k, v] of Object.entries(fields)) if ((PIC_FIELDS as readonly string[]).includes(k)) st[k as keyof PicStateRaw] = v;
          vm.setIrqchipPic(chip, st);
          return { ret: 0, errno: null };
        });
      case 'set_irqchip_ioapic':
        return this.ioctl(() => {
          const io = vm.ioapic;
          if (io === undefined) vm.getIrqchip(2);
          const cur = vm.getIrqchip(2) as { irr: number; id: number };
          const lo = Array.from(io!.lo);
          const hi = Array.from(io!.hi);
          const redir = (a['redir'] ?? {}) as Record<string, RedirEntryJson>;
          for (const [pin, e] of Object.entries(redir)) {
            const p = Number(pin);
            if (p >= 0 && p < IOAPIC_NUM_PINS) {
              const enc = encodeRedirEntry(e);
              lo[p] = enc.lo;
              hi[p] = enc.hi;
            }
          }
          const irr = typeof a['irr_written'] === 'number' ? a['irr_written'] : typeof a['irr'] === 'number' ? a['irr'] : cur.irr;
          vm.setIrqchipIoapic({ irr, id: typeof a['id'] === 'number' ? a['id'] : cur.id, lo, hi });
          return { ret: 0, errno: null };
        });
      case 'set_lapic':
        return this.ioctl(() => {
          const cpu = num(a['cpu'], 'cpu');
          const page = vm.getLapic(cpu);
          for (const [name, val] of Object.entries((a['regs'] ?? {}) as Record<string, number>)) {
            const off = LAPIC_REG_BY_NAME[name] ?? (name.startsWith('0x') ? parseInt(name, 16) : NaN);
            if (Number.isInteger(off) && off >= 0 && off < 0x400) page[off >> 2] = val >>> 0;
          }
          const vecs = (k: string): number[] => (Array.isArray(a[k]) ? (a[k] as number[]) : []);
          const setBit = (base: number, vec: number, on: boolean): void => {
            const w = (base >> 2) + ((vec >> 5) << 2);
            page[w] = on ? page[w]! | (1 << (vec & 31)) : page[w]! & ~(1 << (vec & 31));
          };
          for (const [k, base, on] of [['set_irr', APIC.IRR, true], ['set_isr', APIC.ISR, true], ['set_tmr', APIC.TMR, true], ['clear_irr', APIC.IRR, false], ['clear_isr', APIC.ISR, false], ['clear_tmr', APIC.TMR, false]] as const) {
            for (const vec of vecs(k)) setBit(base, vec, on);
          }
          vm.setLapic(cpu, page);
          return { ret: 0, errno: null };
        });
      case 'simulated_ack':
        return this.ioctl(() => {
          const cpu = num(a['cpu'], 'cpu');
          const vec = num(a['vector'], 'vector');
          const page = vm.getLapic(cpu);
          const w = (b: number): number => (b >> 2) + ((vec >> 5) << 2);
          const was = (page[w(APIC.IRR)]! & (1 << (vec & 31))) !== 0;
          page[w(APIC.IRR)] = page[w(APIC.IRR)]! & ~(1 << (vec & 31));
          page[w(APIC.ISR)] = page[w(APIC.ISR)]! | (1 << (vec & 31));
          vm.setLapic(cpu, page);
          return { ret: 0, errno: null, vector_was_in_irr: was };
        });
      case 'set_msr':
        return this.ioctl(() => ({ ret: vm.vcpuOrThrow(num(a['cpu'], 'cpu')).setMsr(num(a['index'], 'index'), BigInt(num(a['value'], 'value'))), errno: null }));
      case 'get_mp_state':
        return this.onActor(this.user, () => {
          const s = vm.vcpuOrThrow(num(a['cpu'], 'cpu')).getMpState();
          return { mp_state: s, mp_state_name: MP_STATE_NAMES[s] ?? String(s) };
        });
      case 'eventfd_create': {
        const name = String(a['name']);
        this.fds.set(name, new EventFd(this.ctx.scheduler, { initval: num(a['initval'] ?? 0, 'initval'), name }));
        return { ok: true };
      }
      case 'eventfd_write': {
        const f = this.fd(a['eventfd']);
        this.onActor(this.user, () => f.write(num(a['value'] ?? 1, 'value')));
        return { ok: true };
      }
      case 'eventfd_read': {
        const f = this.fd(a['eventfd']);
        const v = this.onActor(this.user, () => f.tryRead());
        return v === undefined ? { value: 0, errno: 'EAGAIN' } : { value: Number(v), errno: null };
      }
      case 'irqfd':
        return this.ioctl(() => {
          const flags = num(a['flags'] ?? 0, 'flags');
          const note = typeof a['note'] === 'string' ? a['note'] : '';
          const notEventfd = /not an eventfd/.test(note);
          const fd = notEventfd && /^fd is/.test(note) ? null : this.fd(a['eventfd']);
          let rfd: EventFd | null = null;
          if (typeof a['resamplefd'] === 'string') rfd = this.fd(a['resamplefd']);
          if (flags & KVM_IRQFD_FLAG_RESAMPLE && notEventfd && /resamplefd is/.test(note)) rfd = null;
          vm.kvmIrqfd({ fd, gsi: num(a['gsi'], 'gsi'), flags, resampleFd: rfd });
          return { ret: 0, errno: null };
        });
      case 'ioeventfd':
        return this.ioctl(() => {
          const dm = a['datamatch'];
          vm.kvmIoeventfd({ fd: this.fd(a['eventfd']), addr: u64(a['addr'], 'addr'), len: num(a['len'], 'len'), flags: num(a['flags'] ?? 0, 'flags'), ...(typeof dm === 'number' ? { datamatch: BigInt(dm) } : {}) });
          return { ret: 0, errno: null };
        });
      case 'guest_access': {
        const cpu = num(a['cpu'] ?? 0, 'cpu');
        const v = vm.vcpuOrThrow(cpu);
        const reads: (number | null)[] = [];
        const exits: Record<string, unknown>[] = [];
        // Each KVM_RUN the recorder issues (at the start, and again after every exit to
        // userspace) enters through vcpu_enter_guest: pending requests are processed there
        // (IOAPIC scan, KVM_REQ_EVENT) and a pending NMI is injected (IF does not block it): the
        // guest's IDT stub reports vector 2 with OUT 0x84 and the run stops there, NMIs blocked.
        // Accesses handled in the kernel do not re-enter that way on this host: an NMI the
        // guest sends itself mid-run waits for the next KVM_RUN (recorded).
        const nmiAtEntry = (): boolean => {
          vm.vcpuRunEntry(cpu);
          v.processNmi();
          if (v.nmiPending === 0 || v.nmiMasked) return false;
          v.nmiPending--;
          v.nmiMasked = true;
          exits.push({ errno: null, exit_name: 'IO', io_dir: 'out', port: 0x84, data: 2 });
          this.mmio.set(cpu, KVM_RUN_IO_DATA_OFFSET);
          return true;
        };
        const accesses = (a['accesses'] ?? []) as readonly Record<string, unknown>[];
        const unread = (): (number | null)[] => accesses.map((acc) => (acc['kind'] === 'mmio_read' || acc['kind'] === 'in' ? 0 : null));
        // An INIT the vCPU accepted reset its registers (real mode at the reset vector); the
        // recorder only reloads RIP/RFLAGS, and from there every run stops with
        // KVM_EXIT_INTERNAL_ERROR (emulation) before the first access. The entry itself still
        // processes requests (a newly latched INIT, PPR) — recorded.
        vm.vcpuRunEntry(cpu);
        if (v.initResets > 0) return { reads: unread(), exits_to_userspace: [{ errno: null, exit_name: 'INTERNAL_ERROR', suberror: 1 }] };
        let stopped = nmiAtEntry();
        for (const acc of accesses) {
          if (stopped) {
            reads.push(acc['kind'] === 'mmio_read' || acc['kind'] === 'in' ? 0 : null);
            continue;
          }
          const kind = String(acc['kind']) as 'mmio_write' | 'mmio_read' | 'out' | 'in';
          const addr = num(acc['addr'] ?? acc['port'], 'addr');
          const value = typeof acc['value'] === 'number' ? acc['value'] : 0;
          const r = this.onActor(v.actor, () => vm.guestAccess(cpu, kind, addr, value));
          reads.push(kind === 'mmio_read' || kind === 'in' ? r.value : null);
          // emulator_pio_in_out (x86.c) touches kvm_run's PIO data page only when the access
          // goes to userspace: OUT copies the value there, IN zeroes it before the exit.
          if (kind === 'out' || kind === 'in') {
            if (r.toUserspace) {
              exits.push({ errno: null, exit_name: 'IO', io_dir: kind, port: addr, data: kind === 'out' ? value & 0xff : 0 });
              // kvm_run.io.data_offset shares its bytes with kvm_run.mmio.data: a later MMIO
              // read exit (KVM leaves mmio.data alone) shows it (recorded: 4096).
              this.mmio.set(cpu, KVM_RUN_IO_DATA_OFFSET);
            }
          } else if (r.toUserspace) {
            const data = kind === 'mmio_write' ? value >>> 0 : (this.mmio.get(cpu) ?? 0);
            exits.push({ errno: null, exit_name: 'MMIO', mmio_addr: addr, data });
            this.mmio.set(cpu, kind === 'mmio_write' ? value >>> 0 : 0);
          }
          if (r.toUserspace) stopped = nmiAtEntry();
        }
        return { reads, exits_to_userspace: exits };
      }
      case 'get_state':
        return { state: this.state(false) };
      case 'wait':
        this.ctx.scheduler.runUntil(this.ctx.scheduler.now + Math.round(num(a['ms'] ?? 0, 'ms') * 1e6));
        this.settle();
        return { ok: true };
      case 'get_irqchip':
        return this.ioctl(() => (vm.getIrqchip(num(a['chip_id'] ?? a['chip'], 'chip_id')), { ret: 0, errno: null }));
      case 'set_irqchip':
        return this.ioctl(() => {
          const chip = num(a['chip_id'] ?? a['chip'], 'chip_id');
          const cur = vm.getIrqchip(chip);
          if (chip === 2) vm.setIrqchipIoapic({ irr: (cur as { irr: number }).irr, lo: vm.ioapic!.lo, hi: vm.ioapic!.hi });
          else vm.setIrqchipPic(chip as 0 | 1, cur as unknown as PicStateRaw);
          return { ret: 0, errno: null };
        });
      case 'create_irqchip':
        return this.ioctl(() => {
          throw new VirqError(KvmErrorCode.IrqchipExists, 'KVM_CREATE_IRQCHIP: ' + (vm.irqchipInKernel ? 'already created' : 'vCPUs already exist'), { errno: vm.irqchipInKernel ? 'EEXIST' : 'EINVAL' });
        });
      default:
        throw new VirqError(KvmErrorCode.GoldenInvalid, `golden op "${step.op}" is unknown to this replayer`);
    }
  }

  /** Loads a recorded snapshot as raw chip state (no side effects), for when the replayed setup differs. */
  loadState(state: Record<string, unknown>): void {
    const vm = this.vm;
    const pic = state['pic'] as Record<string, Record<string, number>> | undefined;
    if (vm.pic !== undefined && pic !== undefined) {
      ([0, 1] as const).forEach((c) => {
        const s = pic[c === 0 ? 'master' : 'slave'];
        if (s === undefined || 'error' in s) return;
        const k = vm.pic!.pics[c];
        for (const f of PIC_FIELDS) if (typeof s[f] === 'number') k[f] = s[f]! & 0xff;
      });
    }
    const io = state['ioapic'] as (Record<string, unknown> & { redirtbl?: RedirEntryJson[] }) | undefined;
    if (vm.ioapic !== undefined && io !== undefined && !('error' in io)) {
      const x = vm.ioapic;
      x.id = Number(io['id'] ?? 0);
      x.ioregsel = Number(io['ioregsel'] ?? 0);
      x.irr = Number(io['irr'] ?? 0);
      x.irrDelivered = 0;
      for (const e of io.redirtbl ?? []) {
        const enc = encodeRedirEntry(e);
        x.lo[e.pin] = enc.lo;
        x.hi[e.pin] = enc.hi;
      }
    }
    const lapics = (state['lapic'] ?? []) as Record<string, unknown>[];
    lapics.forEach((l, i) => {
      const v = vm.vcpu(i);
      if (v === undefined || 'error' in l) return;
      const page = v.lapic.getState();
      const set = (off: number, key: string): void => {
        if (typeof l[key] === 'number') page[off >> 2] = (l[key] as number) >>> 0;
      };
      set(APIC.ID, 'id_reg');
      set(APIC.TASKPRI, 'tpr');
      set(APIC.PROCPRI, 'ppr');
      set(APIC.LDR, 'ldr');
      set(APIC.DFR, 'dfr');
      set(APIC.SPIV, 'spiv');
      set(APIC.ESR, 'esr');
      set(APIC.ICR, 'icr');
      set(APIC.ICR2, 'icr2');
      set(APIC.LVT0, 'lvt0');
      set(APIC.LVT1, 'lvt1');
      set(APIC.LVTT, 'lvtt');
      set(APIC.LVTERR, 'lvterr');
      for (const [key, base] of [['irr', APIC.IRR], ['isr', APIC.ISR], ['tmr', APIC.TMR]] as const) {
        for (let w = 0; w < 8; w++) page[(base >> 2) + w * 4] = 0;
        for (const vec of (l[key] ?? []) as number[]) page[(base >> 2) + ((vec >> 5) << 2)]! |= 1 << (vec & 31);
      }
      if (typeof l['apic_base_msr'] === 'number') v.lapic.apicBase = l['apic_base_msr'];
      const ppr = page[APIC.PROCPRI >> 2]!;
      v.lapic.setState(page);
      v.lapic.setReg(APIC.PROCPRI, ppr);
    });
    const evs = (state['vcpu_events'] ?? []) as Record<string, number>[];
    evs.forEach((e, i) => {
      const v = vm.vcpu(i);
      if (v === undefined || e === null || typeof e !== 'object') return;
      v.nmiPending = e['nmi_pending'] ?? 0;
      v.nmiQueued = 0;
    });
    if ('gsi_routing_userspace_view' in state) this.routingView = state['gsi_routing_userspace_view'];
  }

  /** Replays the whole scenario. */
  run(): GoldenScenarioResult {
    const sc = this.scenario;
    if (sc.skipped) return { name: sc.name, status: 'skipped', firstMismatch: sc.skip_reason, mismatches: [], setupNote: undefined };
    const mismatches: string[] = [];
    let setupNote: string | undefined;
    const guard = (where: string, fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        mismatches.push(`${where}: ${e instanceof Error ? e.message : String(e)}`);
      }
    };
    guard('setup', () => {
      for (const st of sc.setup.actions) this.apply(st);
      if (sc.setup.state !== undefined) {
        const d = firstDifference(sc.setup.state, this.state(true), 'setup.state');
        if (d !== undefined) {
          setupNote = `replayed setup differs (${d}); recorded setup.state loaded`;
          this.loadState(sc.setup.state as Record<string, unknown>);
        }
      }
    });
    sc.steps.forEach((st, i) => {
      guard(`step ${i} ${st.op}`, () => {
        const got = this.apply(st);
        const d = firstDifference(st.result, got, 'result');
        if (d !== undefined) mismatches.push(`step ${i} ${st.op}: ${d}`);
      });
    });
    if (sc.final_state !== undefined) {
      guard('final_state', () => {
        const d = firstDifference(sc.final_state, this.state(true), 'final_state');
        if (d !== undefined) mismatches.push(d);
      });
    }
    return { name: sc.name, status: mismatches.length === 0 ? 'pass' : 'fail', firstMismatch: mismatches[0], mismatches, setupNote };
  }
}

function toRoutingEntry(e: Record<string, unknown>): KvmRoutingEntry {
  const gsi = Number(e['gsi']);
  const flags = Number(e['flags'] ?? 0);
  if (e['type'] === 'irqchip') return { gsi, type: 'irqchip', irqchip: Number(e['irqchip']), pin: Number(e['pin']), flags };
  if (e['type'] === 'msi') {
    return { gsi, type: 'msi', msi: { addressLo: Number(e['address_lo']), addressHi: Number(e['address_hi'] ?? 0), data: Number(e['data']), ...(flags & 1 ? { requesterId: Number(e['devid'] ?? 0) } : {}) }, flags };
  }
  return { gsi, type: 'other', typeNum: Number(e['type_num'] ?? 0), flags };
}

/** Replays one golden scenario (a fresh VM). */
export function replayGoldenScenario(scenario: GoldenScenario): GoldenScenarioResult {
  return new GoldenReplayer(scenario).run();
}

/** Reads a golden file (`{header, scenarios}`) and replays every scenario. */
export function replayGoldenFile(path: string): { header: unknown; results: GoldenScenarioResult[] } {
  let doc: { header?: unknown; scenarios?: GoldenScenario[] };
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as typeof doc;
  } catch (e) {
    throw new VirqError(KvmErrorCode.GoldenInvalid, `cannot read golden file ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (!Array.isArray(doc.scenarios)) throw new VirqError(KvmErrorCode.GoldenInvalid, `${path} has no "scenarios" array (expected the kvm-irqchip golden format)`);
  return { header: doc.header, results: doc.scenarios.map(replayGoldenScenario) };
}

/**
 * `virq golden FILE...`: one line per scenario (`name PASS`, `name FAIL first-mismatch`,
 * `name SKIP reason`) and a last line `N passed, M failed`.
 */
export function runGoldenCli(paths: readonly string[]): { lines: string[]; passed: number; failed: number } {
  const lines: string[] = [];
  let passed = 0;
  let failed = 0;
  for (const p of paths) {
    let results: GoldenScenarioResult[];
    try {
      results = replayGoldenFile(p).results;
    } catch (e) {
      failed++;
      lines.push(`${p} FAIL ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    for (const r of results) {
      if (r.status === 'pass') {
        passed++;
        lines.push(`${r.name} PASS`);
      } else if (r.status === 'skipped') {
        lines.push(`${r.name} SKIP ${r.firstMismatch ?? ''}`.trimEnd());
      } else {
        failed++;
        lines.push(`${r.name} FAIL ${r.firstMismatch ?? ''}`);
      }
    }
  }
  lines.push(`${passed} passed, ${failed} failed`);
  return { lines, passed, failed };
}
