import { GuestMemory, createSimContext, type SimContext } from '@virq/core';
import {
  PackedVirtqueueDevice,
  PackedVirtqueueDriver,
  SplitVirtqueueDevice,
  SplitVirtqueueDriver,
  packedRingLayout,
  splitRingLayout,
  type RingFeatures,
  type VirtioRingEvent,
  type VirtioRingTrace,
  type VirtqueueDeviceConfig,
  type VirtqueueDriverConfig,
  type VirtqueueLayout,
} from '@virq/virtio-ring';

/** Guest memory used by the tests: 1 MiB of RAM at 0; rings at 0x10000, indirect area at 0x40000, data from 0x80000. */
export const RING_GPA = 0x10000;
export const INDIRECT_GPA = 0x40000;
export const DATA_GPA = 0x80000;
export const MEM_SIZE = 0x100000;

export interface Pair<D, V> {
  mem: GuestMemory;
  layout: VirtqueueLayout;
  driver: D;
  device: V;
  ctx: SimContext;
  trace: VirtioRingTrace;
  kicks: number;
  calls: number;
}

export interface PairOptions {
  size?: number;
  features?: Partial<RingFeatures>;
  indirectEntries?: number;
  device?: Partial<VirtqueueDeviceConfig>;
  driver?: Partial<VirtqueueDriverConfig>;
  mem?: GuestMemory;
}

export function splitPair(o: PairOptions = {}): Pair<SplitVirtqueueDriver<number>, SplitVirtqueueDevice> {
  const size = o.size ?? 8;
  const mem = o.mem ?? GuestMemory.ofSize(MEM_SIZE);
  const layout = splitRingLayout(size, RING_GPA);
  const ctx = createSimContext();
  const trace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  const p = { mem, layout, ctx, trace, kicks: 0, calls: 0 } as Pair<SplitVirtqueueDriver<number>, SplitVirtqueueDevice>;
  p.driver = new SplitVirtqueueDriver<number>(mem, {
    ...layout,
    features: o.features,
    trace,
    notify: () => {
      p.kicks++;
    },
    indirectArea: o.indirectEntries === undefined ? undefined : { gpa: INDIRECT_GPA, maxEntries: o.indirectEntries },
    ...o.driver,
  });
  p.device = new SplitVirtqueueDevice(mem, {
    ...layout,
    features: o.features,
    trace,
    call: () => {
      p.calls++;
    },
    ...o.device,
  });
  return p;
}

export function packedPair(o: PairOptions = {}): Pair<PackedVirtqueueDriver<number>, PackedVirtqueueDevice> {
  const size = o.size ?? 8;
  const mem = o.mem ?? GuestMemory.ofSize(MEM_SIZE);
  const layout = packedRingLayout(size, RING_GPA);
  const ctx = createSimContext();
  const trace = ctx.trace.channel<VirtioRingEvent>('virtio-ring');
  const features = { ...o.features, packed: true };
  const p = { mem, layout, ctx, trace, kicks: 0, calls: 0 } as Pair<PackedVirtqueueDriver<number>, PackedVirtqueueDevice>;
  p.driver = new PackedVirtqueueDriver<number>(mem, {
    ...layout,
    features,
    trace,
    notify: () => {
      p.kicks++;
    },
    indirectArea: o.indirectEntries === undefined ? undefined : { gpa: INDIRECT_GPA, maxEntries: o.indirectEntries },
    ...o.driver,
  });
  p.device = new PackedVirtqueueDevice(mem, {
    ...layout,
    features,
    trace,
    call: () => {
      p.calls++;
    },
    ...o.device,
  });
  return p;
}

/** A 64-byte buffer for token `i`. */
export function buf(i: number): number {
  return DATA_GPA + 64 * (i % 4096);
}
