import { DEFAULT_COSTS } from '@virq/core';
import { MachineErrorCode, machineError } from './errors.js';

/** The interrupt controller a machine is built around: the one line that swaps x86 ↔ ARM. */
export type IrqchipKind = 'kvm-x86' | 'userspace-x86' | 'gicv3' | 'gicv4' | 'gicv4.1';
export type Arch = 'x86' | 'arm64';
export type VirtioBackend = 'in-vmm' | 'vhost' | 'vhost-user';

export interface IrqchipConfig {
  kind: IrqchipKind;
  /** x86: APICv (virtual interrupt delivery + posted interrupts for KVM-originated interrupts). Ignored on ARM. */
  apicv: boolean;
  /**
   * Use the hardware's direct path for assigned-device interrupts when the irqchip has one:
   * VT-d posted interrupts through irqbypass on x86, GICv4 vLPI forwarding on ARM. GICv3 and
   * the userspace irqchip have none, so there it changes nothing — a topology keeps working
   * when only its irqchip line changes.
   */
  posted: boolean;
  /** x86: AMD AVIC instead of Intel APICv/VT-d posting. Ignored on ARM. */
  avic: boolean;
}

export interface VcpuConfig {
  id: number;
  hostCpu: number;
}

export interface VirtioNetConfig {
  kind: 'virtio-net';
  name: string;
  backend: VirtioBackend;
  queuePairs: number;
  /** MSI-X vectors (per-queue); false → INTx. */
  msix: boolean;
  eventIdx: boolean;
  packed: boolean;
  queueSize: number;
}

export interface VirtioBlkConfig {
  kind: 'virtio-blk';
  name: string;
  backend: VirtioBackend;
  msix: boolean;
  eventIdx: boolean;
  packed: boolean;
  queueSize: number;
}

export interface VfioConfig {
  kind: 'vfio';
  name: string;
  /** MSI-X vectors the assigned device uses. */
  vectors: number;
  /** Host CPU taking the device's physical interrupts. */
  hostCpu: number;
  /**
   * vCPU each vector targets (round-robin over the vCPUs when omitted). Written as vCPU ids;
   * after parsing, positions in `Topology.vcpus` (what the machines index by).
   */
  targetVcpus: number[] | undefined;
}

export interface SerialConfig {
  kind: 'serial';
  name: string;
  irq: number;
}

export interface TimerConfig {
  kind: 'pit' | 'hpet';
  name: string;
  /**
   * pit: KVM's in-kernel i8254 (KVM_CREATE_PIT2, QEMU's kvm-pit: the default with the kernel
   * irqchip) or QEMU's userspace i8254 (the only one with userspace-x86). Resolved at parse time.
   */
  inKernel?: boolean;
}

export type DeviceConfig = VirtioNetConfig | VirtioBlkConfig | VfioConfig | SerialConfig | TimerConfig;

export interface WorkloadConfig {
  /** Packets per second offered to each virtio-net device's receive side (backend → guest). */
  rxPacketsPerSec: number;
  /** Packets per second the guest transmits on each virtio-net device. */
  txPacketsPerSec: number;
  /** Outstanding requests per virtio-blk device. */
  ioDepth: number;
  /** Interrupts per second raised by each VFIO device (spread over its vectors). */
  vfioInterruptsPerSec: number;
  /** Characters per second the guest writes to its serial console (tty output: the UART's transmit path). */
  serialPerSec: number;
  /** Characters per second arriving at the serial port from the host side (console input: the receive interrupt path). */
  serialRxPerSec: number;
  /** Guest IPIs per second per vCPU. */
  ipisPerSec: number;
  /** Guest timer ticks per second (PIT/HPET). */
  timerHz: number;
}

export interface Topology {
  name: string;
  seed: number;
  /** Virtual run time. */
  durationUs: number;
  irqchip: IrqchipConfig;
  vcpus: VcpuConfig[];
  memoryMiB: number;
  routing: { irqfd: boolean; ioeventfd: boolean };
  devices: DeviceConfig[];
  workload: WorkloadConfig;
  costs: Partial<Record<string, number>>;
}

export function archOf(kind: IrqchipKind): Arch {
  return kind === 'kvm-x86' || kind === 'userspace-x86' ? 'x86' : 'arm64';
}

/** Why a valid topology cannot be run as a machine (checked before any cell of a comparison runs). */
export function machineRunProblem(_t: Topology): string | undefined {
  // Every valid topology runs: kvm-x86 and userspace-x86 (QEMU's kernel-irqchip=off) on the
  // x86 machine, the GICs on the ARM one.
  return undefined;
}

type Json = unknown;
type Obj = Record<string, Json>;

const IRQCHIPS: readonly IrqchipKind[] = ['kvm-x86', 'userspace-x86', 'gicv3', 'gicv4', 'gicv4.1'];
const BACKENDS: readonly VirtioBackend[] = ['in-vmm', 'vhost', 'vhost-user'];

/** Reads typed fields from an untrusted object, naming the path of anything wrong. */
class Reader {
  constructor(
    readonly path: string,
    readonly obj: Obj,
    private readonly known: Set<string> = new Set(),
  ) {}

  static of(path: string, v: Json): Reader {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(path, 'an object', v);
    return new Reader(path, v as Obj);
  }

  private take(key: string): Json {
    this.known.add(key);
    return this.obj[key];
  }

  int(key: string, dflt: number | undefined, min: number, max: number): number {
    const v = this.take(key);
    const p = `${this.path}.${key}`;
    if (v === undefined) {
      if (dflt === undefined) throw missing(p, `an integer in [${min}, ${max}]`);
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(p, `an integer in [${min}, ${max}]`, v);
    return v;
  }

  num(key: string, dflt: number, min: number, max: number): number {
    const v = this.take(key);
    const p = `${this.path}.${key}`;
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw bad(p, `a number in [${min}, ${max}]`, v);
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.take(key);
    if (v === undefined) return dflt;
    if (typeof v === 'boolean') return v;
    if (v === 'on') return true;
    if (v === 'off') return false;
    throw bad(`${this.path}.${key}`, 'true/false (or "on"/"off")', v);
  }

  str(key: string, dflt: string | undefined): string {
    const v = this.take(key);
    const p = `${this.path}.${key}`;
    if (v === undefined) {
      if (dflt === undefined) throw missing(p, 'a string');
      return dflt;
    }
    if (typeof v !== 'string' || v.length === 0 || v.length > 200) throw bad(p, 'a non-empty string', v);
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[], dflt: T | undefined): T {
    const v = this.take(key);
    const p = `${this.path}.${key}`;
    if (v === undefined) {
      if (dflt === undefined) throw missing(p, `one of ${values.join(', ')}`);
      return dflt;
    }
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw bad(p, `one of ${values.join(', ')}`, v);
    return v as T;
  }

  sub(key: string): Reader {
    const v = this.take(key);
    return Reader.of(`${this.path}.${key}`, v === undefined ? {} : v);
  }

  list(key: string): Json[] | undefined {
    const v = this.take(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw bad(`${this.path}.${key}`, 'a list', v);
    return v;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  raw(key: string): Json {
    return this.take(key);
  }

  /** Rejects keys nobody asked for (typos must not pass silently). */
  done(): void {
    for (const k of Object.keys(this.obj)) {
      if (!this.known.has(k)) {
        throw machineError(MachineErrorCode.TopologyInvalid, `${this.path}.${k}: unknown field (known here: ${[...this.known].join(', ')})`, { path: `${this.path}.${k}` });
      }
    }
  }
}

function show(v: Json): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v); // JSON would say null
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
function bad(path: string, expected: string, got: Json) {
  return machineError(MachineErrorCode.TopologyInvalid, `${path}: expected ${expected}, got ${show(got)}`, { path });
}
function missing(path: string, expected: string) {
  return machineError(MachineErrorCode.TopologyInvalid, `${path}: missing; expected ${expected}`, { path });
}

/**
 * Checks an untrusted topology (parsed YAML/JSON) and fills defaults. Every error names the
 * path (`topology.devices[2].backend`) and what is expected there.
 */
export function parseTopology(input: Json): Topology {
  const r = Reader.of('topology', input);
  const name = r.str('name', 'custom');
  const seed = r.int('seed', 1, 0, 2 ** 32 - 1);
  const durationUs = r.int('durationUs', 2000, 1, 60_000_000);
  // Guest RAM is one ArrayBuffer; the flows need a few MiB of it (rings, buffers).
  const memoryMiB = r.int('memoryMiB', 64, 1, 4096);

  const ic = r.sub('irqchip');
  const kind = ic.oneOf('kind', IRQCHIPS, 'kvm-x86');
  const irqchip: IrqchipConfig = {
    kind,
    apicv: ic.bool('apicv', false),
    posted: ic.bool('posted', true),
    avic: ic.bool('avic', false),
  };
  ic.done();
  let vcpus: VcpuConfig[];
  const vlist = r.list('vcpus');
  if (vlist === undefined) {
    vcpus = [0, 1].map((id) => ({ id, hostCpu: id + 1 }));
  } else if (vlist.length === 0 || vlist.length > 4096) {
    throw bad('topology.vcpus', 'a list of 1 to 4096 vCPUs', vlist);
  } else {
    vcpus = vlist.map((v, i) => {
      const vr = Reader.of(`topology.vcpus[${i}]`, v);
      const out = { id: vr.int('id', i, 0, 4095), hostCpu: vr.int('hostCpu', i + 1, 0, 4095) };
      vr.done();
      return out;
    });
    const ids = new Set(vcpus.map((v) => v.id));
    if (ids.size !== vcpus.length) throw machineError(MachineErrorCode.TopologyInvalid, 'topology.vcpus: vCPU ids must be unique', { path: 'topology.vcpus' });
  }
  // What each architecture's composed machine can address: the x86 machine composes xAPIC
  // MSIs and IOAPIC entries (8-bit physical destination, 0xff = broadcast; x2APIC is not
  // modelled), KVM's vGICv3 takes at most 512 vCPUs (VGIC_V3_MAX_CPUS).
  const maxVcpus = archOf(kind) === 'x86' ? 255 : 512;
  if (vcpus.length > maxVcpus) {
    const why = archOf(kind) === 'x86' ? 'xAPIC destination IDs are 8 bits and 0xff is the broadcast (x2APIC is not modelled)' : "KVM's vGICv3 takes at most 512 vCPUs";
    throw machineError(MachineErrorCode.TopologyInvalid, `topology.vcpus: ${vcpus.length} vCPUs on ${kind}; at most ${maxVcpus} (${why})`, { path: 'topology.vcpus' });
  }

  const rt = r.sub('routing');
  // irqfd needs an in-kernel irqchip: with userspace-x86 it is unavailable whatever this says
  // (QEMU checks kvm_irqfds_enabled()); the machine reports the effective setting.
  const routing = { irqfd: rt.bool('irqfd', true), ioeventfd: rt.bool('ioeventfd', true) };
  rt.done();

  const devices: DeviceConfig[] = [];
  const dlist = r.list('devices') ?? [];
  dlist.forEach((d, i) => devices.push(parseDevice(Reader.of(`topology.devices[${i}]`, d), i, vcpus.length)));
  const names = new Set<string>();
  for (const d of devices) {
    if (names.has(d.name)) throw machineError(MachineErrorCode.TopologyInvalid, `topology.devices: two devices are named "${d.name}"`, { path: 'topology.devices' });
    names.add(d.name);
  }
  if (archOf(kind) === 'arm64') {
    // The ARM machine's host has one CPU per hostCpu up to the highest named (arm-gic: ≤ 512).
    const i = vcpus.findIndex((v) => v.hostCpu > 511);
    if (i >= 0) throw bad(`topology.vcpus[${i}].hostCpu`, 'an integer in [0, 511] on ARM (the modelled host has at most 512 CPUs)', vcpus[i]!.hostCpu);
  }
  // One PCI bus, one function per slot: the x86 machine places devices from slot 3, the ARM one from slot 1.
  const pciFunctions = devices.filter((d) => d.kind === 'virtio-net' || d.kind === 'virtio-blk' || d.kind === 'vfio').length;
  const pciSlots = archOf(kind) === 'x86' ? 29 : 31;
  if (pciFunctions > pciSlots) throw machineError(MachineErrorCode.TopologyInvalid, `topology.devices: ${pciFunctions} PCI devices (virtio-net, virtio-blk, vfio); the machine's one PCI bus has ${pciSlots} free slots`, { path: 'topology.devices' });
  const indexOfId = new Map(vcpus.map((v, i) => [v.id, i]));
  for (const d of devices) {
    if (d.kind === 'vfio' && d.targetVcpus !== undefined) {
      // The user names vCPU ids; the machines index their vCPUs by position in `vcpus`.
      d.targetVcpus = d.targetVcpus.map((t) => {
        const i = indexOfId.get(t);
        if (i === undefined) throw machineError(MachineErrorCode.TopologyInvalid, `topology.devices(${d.name}).targetVcpus: vCPU ${t} does not exist`, { path: `topology.devices(${d.name}).targetVcpus` });
        return i;
      });
    }
    if (d.kind === 'serial') {
      const p = `topology.devices(${d.name}).irq`;
      // ISA IRQ 0 is the PIT (IOAPIC pin 2 by the interrupt source override) and IRQ 2 the PIC cascade.
      if (archOf(kind) === 'x86' && (d.irq === 0 || d.irq === 2)) throw machineError(MachineErrorCode.TopologyInvalid, `${p}: IRQ ${d.irq} is taken on a PC (0: the timer, 2: the PIC cascade); use 3, 4 or another free ISA IRQ`, { path: p });
      // An ISA interrupt is edge-triggered on the IOAPIC: two UARTs cannot share one.
      const other = devices.find((o) => o !== d && o.kind === 'serial' && o.irq === d.irq);
      if (other !== undefined) throw machineError(MachineErrorCode.TopologyInvalid, `${p}: IRQ ${d.irq} is also ${other.name}'s; each UART needs its own IRQ`, { path: p });
    }
    if ((d.kind === 'pit' || d.kind === 'hpet') && archOf(kind) === 'arm64') {
      throw machineError(MachineErrorCode.TopologyInvalid, `topology.devices(${d.name}): ${d.kind} is an x86 legacy timer; an ARM machine uses the generic timer`, { path: `topology.devices(${d.name})` });
    }
    if (d.kind === 'pit') {
      // QEMU puts the PIT in the kernel whenever the irqchip is there (kvm_pit_in_kernel).
      if (d.inKernel === true && kind === 'userspace-x86') {
        throw machineError(MachineErrorCode.TopologyInvalid, `topology.devices(${d.name}).inKernel: KVM's in-kernel PIT needs the in-kernel irqchip (its timer drives the in-kernel IOAPIC); with userspace-x86 use inKernel: false`, { path: `topology.devices(${d.name}).inKernel` });
      }
      d.inKernel ??= kind === 'kvm-x86';
    }
  }

  const w = r.sub('workload');
  const workload: WorkloadConfig = {
    rxPacketsPerSec: w.num('rxPacketsPerSec', 200_000, 0, 1e9),
    txPacketsPerSec: w.num('txPacketsPerSec', 100_000, 0, 1e9),
    ioDepth: w.int('ioDepth', 4, 0, 65536),
    vfioInterruptsPerSec: w.num('vfioInterruptsPerSec', 100_000, 0, 1e9),
    serialPerSec: w.num('serialPerSec', 1000, 0, 1e7),
    serialRxPerSec: w.num('serialRxPerSec', 0, 0, 1e7),
    ipisPerSec: w.num('ipisPerSec', 0, 0, 1e8),
    timerHz: w.num('timerHz', 0, 0, 1e6),
  };
  w.done();
  // Each in-flight virtio-blk request reads 4 KiB into guest RAM (buffers stay allocated while
  // in flight, at most a queue's worth): keep them within half of the guest's RAM.
  const blkBytes = devices.reduce((n, d) => n + (d.kind === 'virtio-blk' ? Math.min(workload.ioDepth, d.queueSize) * 4096 : 0), 0);
  if (blkBytes > (memoryMiB * 1024 * 1024) / 2) {
    throw machineError(MachineErrorCode.TopologyInvalid, `topology.workload.ioDepth: ${blkBytes / 4096} in-flight 4 KiB virtio-blk reads need ${Math.ceil(blkBytes / 1048576)} MiB of buffers, more than half of memoryMiB ${memoryMiB}; lower ioDepth or raise memoryMiB`, { path: 'topology.workload.ioDepth' });
  }

  const costs: Record<string, number> = {};
  const cr = r.sub('costs');
  for (const k of Object.keys(cr.obj)) {
    // Own keys only: `constructor`/`toString` are "in" every object.
    if (!Object.hasOwn(DEFAULT_COSTS, k)) throw machineError(MachineErrorCode.TopologyInvalid, `topology.costs.${k}: unknown cost; known: ${Object.keys(DEFAULT_COSTS).join(', ')}`, { path: `topology.costs.${k}` });
    costs[k] = cr.num(k, 0, 0, 1e12);
  }
  r.done();
  return { name, seed, durationUs, irqchip, vcpus, memoryMiB, routing, devices, workload, costs };
}

function parseDevice(d: Reader, index: number, nvcpus: number): DeviceConfig {
  const kind = d.oneOf('kind', ['virtio-net', 'virtio-blk', 'vfio', 'serial', 'pit', 'hpet'] as const, undefined);
  let out: DeviceConfig;
  switch (kind) {
    case 'virtio-net':
      out = {
        kind,
        name: d.str('name', `net${index}`),
        backend: d.oneOf('backend', BACKENDS, 'vhost-user'),
        queuePairs: d.int('queuePairs', 1, 1, 256),
        msix: d.bool('msix', true),
        eventIdx: d.bool('eventIdx', true),
        packed: d.bool('packed', false),
        queueSize: queueSize(d),
      };
      break;
    case 'virtio-blk':
      out = { kind, name: d.str('name', `blk${index}`), backend: d.oneOf('backend', BACKENDS, 'in-vmm'), msix: d.bool('msix', true), eventIdx: d.bool('eventIdx', true), packed: d.bool('packed', false), queueSize: queueSize(d) };
      break;
    case 'vfio': {
      const targets = d.list('targetVcpus');
      out = {
        kind,
        name: d.str('name', `vfio${index}`),
        vectors: d.int('vectors', 1, 1, 2048),
        hostCpu: d.int('hostCpu', 0, 0, 4095),
        targetVcpus: targets?.map((t, i) => {
          if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= 4096) throw bad(`${d.path}.targetVcpus[${i}]`, 'a vCPU id', t);
          return t;
        }),
      };
      void nvcpus;
      break;
    }
    case 'serial':
      out = { kind, name: d.str('name', `serial${index}`), irq: d.int('irq', 4, 0, 15) };
      break;
    case 'pit': {
      const name = d.str('name', kind);
      const inKernel = d.has('inKernel') ? d.bool('inKernel', true) : undefined;
      out = inKernel === undefined ? { kind, name } : { kind, name, inKernel };
      break;
    }
    default:
      out = { kind, name: d.str('name', kind) };
  }
  d.done();
  return out;
}

function queueSize(d: Reader): number {
  const n = d.int('queueSize', 256, 1, 32768);
  if ((n & (n - 1)) !== 0) throw bad(`${d.path}.queueSize`, 'a power of two up to 32768 (split virtqueue rule)', n);
  return n;
}
