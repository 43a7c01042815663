import 'reflect-metadata';

export { Actor, type ActorInit, type ActorKind } from './actor.js';
export { createSimContext, type SimContext, type SimContextOptions } from './context.js';
export { CostModel, DEFAULT_COSTS, type CostName, type CostTable } from './cost.js';
export { CoreErrorCode, VirqError, type ErrnoName, type VirqErrorOptions } from './errors.js';
export { KvmRoutingTable, type IoeventfdRequest, type IrqfdRequest, type VmInterruptApi } from './vm-interrupt-api.js';
export { EVENTFD_MAX, EventFd, type EventFdOptions, type EventFdWaiter } from './eventfd.js';
export { Histogram } from './histogram.js';
export { Tokens, type GsiRoute, type IrqPinProvider, type IrqRouting, type VcpuInterruptTarget } from './interfaces.js';
export { EdgeDetector, IRQ_LINE_MAX_SOURCES, IrqLine, type IrqLineChange, type IrqPin } from './irq-line.js';
export { GPA_LIMIT, GuestMemory, MemoryRegion, type MemoryRegionInit } from './memory.js';
export { formatMsi, msiAddress, msiMessage, type MsiMessage, type MsiSink } from './msi.js';
export { Prng } from './prng.js';
export { Scheduler, type ScheduledEvent, type SchedulerOptions } from './scheduler.js';
export { checkSnapshot, type Snapshot, type Snapshottable } from './snapshot.js';
export {
  TraceBus,
  TraceChannel,
  TraceRecorder,
  formatFtrace,
  formatFtraceLine,
  formatSeconds,
  toChromeTrace,
  type ChromeTrace,
  type ChromeTraceEvent,
  type TraceArgs,
  type TraceEvent,
  type TraceValue,
} from './trace.js';
