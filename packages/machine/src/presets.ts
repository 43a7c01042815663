import { MachineErrorCode, machineError } from './errors.js';
import { parseTopology, type Topology } from './topology.js';

/**
 * Built-in topologies. They are plain topology documents (what a user would write in YAML),
 * so a preset and a file go through the same validation. The default devices work on both
 * architectures: the serial port's IRQ 4 is an IOAPIC pin on x86 and an SPI on ARM.
 */
const base = {
  seed: 1,
  durationUs: 2000,
  memoryMiB: 64,
  vcpus: [
    { id: 0, hostCpu: 1 },
    { id: 1, hostCpu: 2 },
  ],
  routing: { irqfd: true, ioeventfd: true },
  devices: [
    { kind: 'virtio-net', name: 'net0', backend: 'vhost-user', queuePairs: 1, msix: true, eventIdx: true },
    { kind: 'vfio', name: 'nic1', vectors: 2, hostCpu: 0 },
    { kind: 'serial', name: 'ttyS0', irq: 4 },
  ],
  workload: { rxPacketsPerSec: 200_000, txPacketsPerSec: 100_000, vfioInterruptsPerSec: 100_000, serialPerSec: 2000 },
};

const PRESETS: Record<string, object> = {
  'x86-q35': { ...base, name: 'x86-q35', irqchip: { kind: 'kvm-x86', apicv: true, posted: true } },
  'x86-q35-noapicv': { ...base, name: 'x86-q35-noapicv', irqchip: { kind: 'kvm-x86', apicv: false, posted: false } },
  'x86-q35-avic': { ...base, name: 'x86-q35-avic', irqchip: { kind: 'kvm-x86', apicv: true, posted: true, avic: true } },
  'x86-q35-userspace-irqchip': { ...base, name: 'x86-q35-userspace-irqchip', irqchip: { kind: 'userspace-x86', posted: false }, routing: { irqfd: false, ioeventfd: true } },
  'arm-virt-gicv3': { ...base, name: 'arm-virt-gicv3', irqchip: { kind: 'gicv3' } },
  'arm-virt-gicv4': { ...base, name: 'arm-virt-gicv4', irqchip: { kind: 'gicv4' } },
  'arm-virt-gicv4.1': { ...base, name: 'arm-virt-gicv4.1', irqchip: { kind: 'gicv4.1' } },
};

export const DEFAULT_PRESET = 'x86-q35';

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

/** The preset's topology document (a fresh copy, to edit before parsing). */
export function presetDocument(name: string): Record<string, unknown> {
  const p = PRESETS[name];
  if (p === undefined) throw machineError(MachineErrorCode.PresetUnknown, `unknown preset "${name}"; presets: ${presetNames().join(', ')}`, { name });
  return structuredClone(p) as Record<string, unknown>;
}

export function preset(name: string): Topology {
  return parseTopology(presetDocument(name));
}
