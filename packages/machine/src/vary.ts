import { MachineErrorCode, machineError } from './errors.js';

/** One `--vary key=v1,v2,...` dimension of a comparison. */
export interface VaryDimension {
  key: string;
  values: string[];
}

type Doc = Record<string, unknown>;

const ONOFF = ['on', 'off', 'true', 'false'];

/** The knobs `--vary` understands, and how each edits a topology document. */
const KNOBS: Record<string, { values?: readonly string[]; help: string; apply: (doc: Doc, v: string) => void }> = {
  irqfd: { values: ONOFF, help: 'routing.irqfd', apply: (d, v) => (obj(d, 'routing').irqfd = bool(v)) },
  ioeventfd: { values: ONOFF, help: 'routing.ioeventfd', apply: (d, v) => (obj(d, 'routing').ioeventfd = bool(v)) },
  event_idx: { values: ONOFF, help: 'eventIdx of every virtio device', apply: (d, v) => virtio(d, (x) => (x.eventIdx = bool(v))) },
  packed: { values: ONOFF, help: 'packed virtqueues on every virtio device', apply: (d, v) => virtio(d, (x) => (x.packed = bool(v))) },
  msix: { values: ONOFF, help: 'MSI-X (on) or INTx (off) on every virtio device', apply: (d, v) => virtio(d, (x) => (x.msix = bool(v))) },
  backend: { values: ['in-vmm', 'vhost', 'vhost-user'], help: 'backend of every virtio device', apply: (d, v) => virtio(d, (x) => (x.backend = v)) },
  posted: { values: ONOFF, help: 'irqchip.posted (VT-d PI / GICv4 forwarding)', apply: (d, v) => (obj(d, 'irqchip').posted = bool(v)) },
  apicv: { values: ONOFF, help: 'irqchip.apicv', apply: (d, v) => (obj(d, 'irqchip').apicv = bool(v)) },
  avic: { values: ONOFF, help: 'irqchip.avic', apply: (d, v) => (obj(d, 'irqchip').avic = bool(v)) },
  irqchip: { values: ['kvm-x86', 'userspace-x86', 'gicv3', 'gicv4', 'gicv4.1'], help: 'irqchip.kind', apply: (d, v) => (obj(d, 'irqchip').kind = v) },
  seed: { help: 'seed', apply: (d, v) => (d.seed = int(v, 'seed')) },
  vcpus: {
    help: 'number of vCPUs (host CPUs 1..n)',
    apply: (d, v) => (d.vcpus = Array.from({ length: int(v, 'vcpus') }, (_, i) => ({ id: i, hostCpu: i + 1 }))),
  },
};

export function varyKnobs(): string[] {
  return [...Object.keys(KNOBS), 'cost.<name>', 'workload.<field>'];
}

/** Parses `key=v1,v2`. */
export function parseVary(spec: string): VaryDimension {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) throw machineError(MachineErrorCode.VaryInvalid, `--vary takes key=value1,value2,... (got "${spec}"); keys: ${varyKnobs().join(', ')}`);
  const key = spec.slice(0, eq).trim();
  const values = spec.slice(eq + 1).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (values.length === 0) throw machineError(MachineErrorCode.VaryInvalid, `--vary ${key}: no values`);
  if (new Set(values).size !== values.length) throw machineError(MachineErrorCode.VaryInvalid, `--vary ${key}: a value is repeated`);
  const knob = KNOBS[key];
  if (knob === undefined && !key.startsWith('cost.') && !key.startsWith('workload.')) {
    throw machineError(MachineErrorCode.VaryInvalid, `--vary: unknown key "${key}"; keys: ${varyKnobs().join(', ')}`);
  }
  for (const v of values) {
    if (knob?.values !== undefined && !knob.values.includes(v)) throw machineError(MachineErrorCode.VaryInvalid, `--vary ${key}: "${v}" is not one of ${knob.values.join(', ')}`);
  }
  return { key, values };
}

/** Applies one setting to a topology document (validation happens when it is parsed). */
export function applyVary(doc: Doc, key: string, value: string): void {
  const knob = KNOBS[key];
  if (knob !== undefined) return knob.apply(doc, value);
  if (key.startsWith('cost.')) {
    obj(doc, 'costs')[key.slice(5)] = num(value, key);
    return;
  }
  if (key.startsWith('workload.')) {
    obj(doc, 'workload')[key.slice(9)] = num(value, key);
    return;
  }
  throw machineError(MachineErrorCode.VaryInvalid, `--vary: unknown key "${key}"`);
}

/** Every combination of the dimensions, first dimension slowest. */
export function expandMatrix(dims: readonly VaryDimension[]): Array<Record<string, string>> {
  const keys = new Set<string>();
  let total = 1;
  for (const d of dims) {
    if (keys.has(d.key)) throw machineError(MachineErrorCode.VaryInvalid, `--vary ${d.key} is given twice; list all its values in one --vary ${d.key}=v1,v2`);
    keys.add(d.key);
    // Counted before building: a matrix of millions of cells must fail at once, not after allocating them.
    total *= d.values.length;
    if (total > 4096) throw machineError(MachineErrorCode.VaryInvalid, `the comparison has at least ${total} cells; at most 4096`);
  }
  let cells: Array<Record<string, string>> = [{}];
  for (const d of dims) cells = cells.flatMap((c) => d.values.map((v) => ({ ...c, [d.key]: v })));
  if (cells.length > 4096) throw machineError(MachineErrorCode.VaryInvalid, `the comparison has ${cells.length} cells; at most 4096`);
  return cells;
}

function obj(d: Doc, key: string): Doc {
  const v = d[key];
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Doc;
  const o: Doc = {};
  d[key] = o;
  return o;
}

function virtio(d: Doc, f: (dev: Doc) => void): void {
  const devs = d.devices;
  if (!Array.isArray(devs)) return;
  for (const x of devs) if (x !== null && typeof x === 'object' && String((x as Doc).kind).startsWith('virtio-')) f(x as Doc);
}

function bool(v: string): boolean {
  return v === 'on' || v === 'true';
}

function int(v: string, key: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw machineError(MachineErrorCode.VaryInvalid, `--vary ${key}: "${v}" is not a non-negative integer`);
  return n;
}

function num(v: string, key: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw machineError(MachineErrorCode.VaryInvalid, `--vary ${key}: "${v}" is not a number`);
  return n;
}
