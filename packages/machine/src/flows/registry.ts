import type { TraceEvent } from '@virq/core';
import { MachineErrorCode, machineError } from '../errors.js';
import type { FlowSpec } from './expected.js';
import { f01VirtioBlkKick } from './f01-virtio-blk-kick.js';
import { f02VirtioNetCtrlPromisc } from './f02-virtio-net-ctrl-promisc.js';
import { f03VirtioNetTransmit } from './f03-virtio-net-transmit.js';
import { f04LegacyTimerUserspaceIrqchip } from './f04-legacy-timer-userspace-irqchip.js';
import { f05SerialIrq4KernelIrqchip } from './f05-serial-irq4-kernel-irqchip.js';
import { f06UserspaceApicMsi } from './f06-userspace-apic-msi.js';
import { f07IcrIpi } from './f07-icr-ipi.js';
import { f08VirtioIrqWithoutIrqfd } from './f08-virtio-irq-without-irqfd.js';
import { f09VirtioIrqThroughIrqfd } from './f09-virtio-irq-through-irqfd.js';
import { f10NicToGuestUserspaceBackend } from './f10-nic-to-guest-userspace-backend.js';
import { f11MoveMsixVector } from './f11-move-msix-vector.js';
import { f12MaskUnmaskMsixVector } from './f12-mask-unmask-msix-vector.js';
import { f13IrqfdBypassConsumer } from './f13-irqfd-bypass-consumer.js';
import { f14VhostStart } from './f14-vhost-start.js';
import { f15VhostUserBackend } from './f15-vhost-user-backend.js';
import { f16BackendNotifiesGuest } from './f16-backend-notifies-guest.js';
import { f17ArmVirtioIrqfd } from './f17-arm-virtio-irqfd.js';
import { f18Gicv3ForwardedIrq } from './f18-gicv3-forwarded-irq.js';
import { f19Gicv4DirectVlpi } from './f19-gicv4-direct-vlpi.js';

/** One run of a flow: its trace (every event of the run, in order) and what the run showed. */
export interface FlowRun {
  id: string;
  title: string;
  variant: string;
  trace: TraceEvent[];
  notes: string[];
}

/** A built-in scenario: the FLOWS.md flow it shows (with its expected function order) and how to run it. */
export interface FlowDefinition {
  spec: FlowSpec;
  /** Runs `variant` (default: the spec's first) on a fresh SimContext seeded with `seed` (default 1). */
  run(variant?: string, seed?: number): FlowRun;
}

export const FLOWS: readonly FlowDefinition[] = [
  f01VirtioBlkKick,
  f02VirtioNetCtrlPromisc,
  f03VirtioNetTransmit,
  f04LegacyTimerUserspaceIrqchip,
  f05SerialIrq4KernelIrqchip,
  f06UserspaceApicMsi,
  f07IcrIpi,
  f08VirtioIrqWithoutIrqfd,
  f09VirtioIrqThroughIrqfd,
  f10NicToGuestUserspaceBackend,
  f11MoveMsixVector,
  f12MaskUnmaskMsixVector,
  f13IrqfdBypassConsumer,
  f14VhostStart,
  f15VhostUserBackend,
  f16BackendNotifiesGuest,
  f17ArmVirtioIrqfd,
  f18Gicv3ForwardedIrq,
  f19Gicv4DirectVlpi,
];

/** The flow named `id`: 'F11', 'f11', '11' or 'F011' all name F11. */
export function flowById(id: string): FlowDefinition {
  const m = /^\s*[fF]?0*(\d+)\s*$/.exec(id);
  const found = m === null ? undefined : FLOWS.find((f) => f.spec.id === `F${Number(m[1])}`);
  if (found === undefined) {
    const ids = FLOWS.map((f) => f.spec.id);
    throw machineError(MachineErrorCode.FlowUnknown, `unknown flow '${id}': the built-in flows are ${ids.join(', ')} (list them with \`virq flows\`)`, { id, flows: ids });
  }
  return found;
}

/** The function names of a trace in order, with each `kvm_exit` written `exit:<REASON>`. */
export function flowFunctionNames(trace: readonly TraceEvent[]): string[] {
  return trace.map((e) => (e.fn === 'kvm_exit' ? `exit:${String(e.args['reason'])}` : e.fn));
}
