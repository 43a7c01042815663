import { CoreErrorCode, VirqError } from './errors.js';

/** Number of distinct interrupt sources one line tracks (KVM's irq_states are an unsigned long). */
export const IRQ_LINE_MAX_SOURCES = 64;

/** What changed when a source set its level. */
export interface IrqLineChange {
  /** The line's level after the change (OR of all sources). */
  level: boolean;
  /** The line went 0 → 1. */
  rose: boolean;
  /** The line went 1 → 0. */
  fell: boolean;
}

/**
 * A wired interrupt input (a PIC/IOAPIC pin, a GIC SPI) as seen by its controller.
 * Devices drive it; they never know which controller is behind it.
 */
export interface IrqPin {
  /** Drives the pin from `sourceId` (default 0: the userspace source, KVM_USERSPACE_IRQ_SOURCE_ID). */
  setLevel(level: boolean, sourceId?: number): void;
}

type Listener = (change: IrqLineChange, sourceId: number) => void;

/**
 * A level line shared by several sources, its level the OR of theirs — what KVM's
 * `__kvm_irq_line_state()` computes with one bit per irq source id. Edge detection is on
 * the line: `rose`/`fell` report transitions of the OR, not of one source.
 */
export class IrqLine implements IrqPin {
  private lo = 0;
  private hi = 0;
  private listeners: Listener[] = [];

  constructor(readonly name = 'irq') {}

  /** The line's level: the OR of every source. */
  get level(): boolean {
    return (this.lo | this.hi) !== 0;
  }

  /** Level asserted by one source. */
  sourceLevel(sourceId: number): boolean {
    checkSource(sourceId);
    return sourceId < 32 ? (this.lo & (1 << sourceId)) !== 0 : (this.hi & (1 << (sourceId - 32))) !== 0;
  }

  /** Sets one source's level and returns the line's new level and its transition. */
  set(sourceId: number, level: boolean): IrqLineChange {
    checkSource(sourceId);
    const before = (this.lo | this.hi) !== 0;
    if (sourceId < 32) {
      const bit = 1 << sourceId;
      this.lo = level ? this.lo | bit : this.lo & ~bit;
    } else {
      const bit = 1 << (sourceId - 32);
      this.hi = level ? this.hi | bit : this.hi & ~bit;
    }
    const after = (this.lo | this.hi) !== 0;
    const change = { level: after, rose: !before && after, fell: before && !after };
    for (let i = 0; i < this.listeners.length; i++) this.listeners[i]!(change, sourceId);
    return change;
  }

  setLevel(level: boolean, sourceId = 0): void {
    this.set(sourceId, level);
  }

  /** Clears every source (a line reset). */
  clearAll(): void {
    const before = this.level;
    this.lo = 0;
    this.hi = 0;
    if (before) for (const l of this.listeners) l({ level: false, rose: false, fell: true }, -1);
  }

  /** Calls `fn` after every `set`, with the change and the source. Returns an unsubscribe function. */
  onChange(fn: Listener): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }
}

function checkSource(sourceId: number): void {
  if (!Number.isInteger(sourceId) || sourceId < 0 || sourceId >= IRQ_LINE_MAX_SOURCES) {
    throw new VirqError(CoreErrorCode.IrqSourceInvalid, `irq source id must be an integer in [0, ${IRQ_LINE_MAX_SOURCES - 1}], got ${sourceId}`, { errno: 'EINVAL' });
  }
}

/** Edge detector for a single input: reports 0→1 transitions, like the 8259's per-pin `last_irr`. */
export class EdgeDetector {
  private last = false;
  /** Feeds a level; returns true on a rising edge. */
  feed(level: boolean): boolean {
    const rose = level && !this.last;
    this.last = level;
    return rose;
  }
  get level(): boolean {
    return this.last;
  }
}
