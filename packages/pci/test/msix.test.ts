import { TraceRecorder, type MsiMessage } from '@virq/core';
import { Msix, MsixTable, PciReg, type MsixVectorNotifiers, type PciTraceEvent } from '@virq/pci';
import fc from 'fast-check';
import { BAR1, enableMsix, msixDevice, programEntry } from './helpers.js';

class RecordingNotifiers implements MsixVectorNotifiers {
  readonly log: string[] = [];
  failOn = -1;
  pendingSources = new Set<number>();
  constructor(private readonly msix?: MsixTable) {}
  use(vector: number, msg: MsiMessage): number {
    this.log.push(`use ${vector} data=0x${msg.data.toString(16)}`);
    return vector === this.failOn ? -22 : 0;
  }
  release(vector: number): void {
    this.log.push(`release ${vector}`);
  }
  poll(start: number, end: number): void {
    this.log.push(`poll ${start}-${end}`);
    for (const v of this.pendingSources) if (v >= start && v < end && this.msix!.isMasked(v)) this.msix!.setPending(v);
  }
}

describe('MSI-X capability and table layout (FACTS §4.1)', () => {
  test('capability: ID 0x11, Table Size N-1, BIR and offsets; control starts disabled, unmasked', () => {
    const { bus, bdf, msix } = msixDevice(5);
    const cap = msix.capOffset;
    expect(bus.configRead(bdf, cap, 1)).toBe(0x11);
    expect(bus.configRead(bdf, cap + 2, 2)).toBe(4);
    expect(bus.configRead(bdf, cap + 4, 4)).toBe(0x0000_0001); // table at 0 in BAR 1
    expect(bus.configRead(bdf, cap + 8, 4)).toBe(0x0000_0801); // PBA at 2 KiB in BAR 1
    expect(msix.pba.length).toBe(8); // round_up(5, 64) / 8
  });

  test('only Enable and Function Mask are writable in Message Control', () => {
    const { bus, bdf, msix } = msixDevice(5);
    bus.configWrite(bdf, msix.capOffset + 2, 2, 0xffff);
    expect(bus.configRead(bdf, msix.capOffset + 2, 2)).toBe(0xc004);
  });

  test('entries reset masked; fields at +0 addr lo, +4 addr hi, +8 data, +12 vector control', () => {
    const { bus } = msixDevice(4);
    for (let v = 0; v < 4; v++) expect(bus.mmioRead(BAR1 + 16 * v + 12, 4)).toBe(1);
    programEntry(bus, 2, 0x4031, false);
    expect(bus.mmioRead(BAR1 + 32, 4)).toBe(0xfee00000);
    expect(bus.mmioRead(BAR1 + 36, 4)).toBe(0);
    expect(bus.mmioRead(BAR1 + 40, 4)).toBe(0x4031);
    expect(bus.mmioRead(BAR1 + 44, 4)).toBe(1);
  });

  test('table accesses narrower than 4 bytes are ignored', () => {
    const { bus } = msixDevice(2);
    bus.mmioWrite(BAR1 + 12, 2, 0);
    expect(bus.mmioRead(BAR1 + 12, 4)).toBe(1);
  });

  test('notify of an unused vector does nothing; of a used unmasked vector sends address/data with requester id', () => {
    const { bus, bdf, msix, sink } = msixDevice(4);
    programEntry(bus, 1, 0x41);
    enableMsix(bus, bdf, msix.capOffset);
    msix.notify(1);
    expect(sink.msgs).toEqual([]);
    msix.vectorUse(1);
    msix.notify(1);
    expect(sink.msgs).toEqual([{ addressLo: 0xfee00000, addressHi: 0, data: 0x41, requesterId: 0x18 }]);
  });

  test('a masked vector sets PBA bit n%8 of byte n/8, and unmask replays it exactly once', () => {
    const { bus, bdf, msix, sink } = msixDevice(12);
    for (let v = 0; v < 12; v++) msix.vectorUse(v);
    enableMsix(bus, bdf, msix.capOffset);
    programEntry(bus, 10, 0x4a, false);
    msix.notify(10);
    msix.notify(10);
    expect(sink.msgs.length).toBe(0);
    expect(bus.mmioRead(BAR1 + 0x800, 4)).toBe(1 << 10);
    expect(msix.pba[1]).toBe(1 << 2);
    bus.mmioWrite(BAR1 + 10 * 16 + 12, 4, 0);
    expect(sink.msgs.map((m) => m.data)).toEqual([0x4a]);
    expect(bus.mmioRead(BAR1 + 0x800, 4)).toBe(0);
    bus.mmioWrite(BAR1 + 10 * 16 + 12, 4, 0); // unmasking an unmasked vector changes nothing
    expect(sink.msgs.length).toBe(1);
  });

  test('Function Mask holds every vector pending; clearing it replays each once', () => {
    const { bus, bdf, msix, sink } = msixDevice(4);
    for (let v = 0; v < 4; v++) {
      msix.vectorUse(v);
      programEntry(bus, v, 0x40 + v);
    }
    enableMsix(bus, bdf, msix.capOffset, true);
    msix.notify(0);
    msix.notify(3);
    expect(sink.msgs).toEqual([]);
    enableMsix(bus, bdf, msix.capOffset, false);
    expect(sink.msgs.map((m) => m.data)).toEqual([0x40, 0x43]);
  });

  test('enabling MSI-X deasserts INTx', () => {
    const { bus, bdf, msix, dev, intx } = msixDevice(2);
    dev.setIrq(true);
    expect(intx.level).toBe(true);
    enableMsix(bus, bdf, msix.capOffset);
    expect(intx.level).toBe(false);
  });

  test('bus mastering off drops MSI writes', () => {
    const { bus, bdf, msix, sink, dev } = msixDevice(2);
    msix.vectorUse(0);
    programEntry(bus, 0, 0x30);
    enableMsix(bus, bdf, msix.capOffset);
    bus.configWrite(bdf, PciReg.COMMAND, 2, 2);
    msix.notify(0);
    expect(sink.msgs).toEqual([]);
    expect(dev.droppedMsis).toBe(1);
  });

  test('vector_unuse of the last user clears the pending bit', () => {
    const { msix } = msixDevice(2);
    msix.vectorUse(0);
    msix.vectorUse(0);
    msix.notify(0);
    expect(msix.isPending(0)).toBe(true);
    msix.vectorUnuse(0);
    expect(msix.isPending(0)).toBe(true);
    msix.vectorUnuse(0);
    expect(msix.isPending(0)).toBe(false);
    expect(msix.vectorUse(2)).toBe(-22);
  });
});

describe('MSI-X vector notifiers (msix_set_vector_notifiers, msix_handle_mask_update)', () => {
  test('set: use() for each unmasked vector when enabled, then poll(0, N); unset: release()', () => {
    const { bus, bdf, msix } = msixDevice(3);
    programEntry(bus, 0, 0x50);
    programEntry(bus, 2, 0x52);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    expect(n.log).toEqual(['use 0 data=0x50', 'use 2 data=0x52', 'poll 0-3']);
    msix.unsetVectorNotifiers();
    expect(n.log.slice(3)).toEqual(['release 0', 'release 2']);
  });

  test('set with MSI-X function-masked calls no use(), only poll', () => {
    const { bus, bdf, msix } = msixDevice(2);
    programEntry(bus, 0, 0x50);
    enableMsix(bus, bdf, msix.capOffset, true);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    expect(n.log).toEqual(['poll 0-2']);
  });

  test('a failing use() undoes the vectors already used and throws', () => {
    const { bus, bdf, msix } = msixDevice(3);
    for (let v = 0; v < 3; v++) programEntry(bus, v, 0x50 + v);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    n.failOn = 2;
    expect(() => msix.setVectorNotifiers(n)).toThrow(/vector 2/);
    expect(n.log).toEqual(['use 0 data=0x50', 'use 1 data=0x51', 'use 2 data=0x52', 'release 1', 'release 0']);
    expect(msix.hasNotifiers).toBe(false);
  });

  test('notifiers fire on mask transitions only, not on address/data rewrites', () => {
    const { bus, bdf, msix } = msixDevice(2);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    n.log.length = 0;
    programEntry(bus, 1, 0x61);
    bus.mmioWrite(BAR1 + 16 + 8, 4, 0x62);
    bus.mmioWrite(BAR1 + 16 + 12, 4, 1);
    bus.mmioWrite(BAR1 + 16 + 12, 4, 1);
    expect(n.log).toEqual(['use 1 data=0x61', 'release 1']);
  });

  test('PBA read polls the owner first for the vectors that dword covers', () => {
    const { bus, bdf, msix } = msixDevice(40);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    n.pendingSources.add(35);
    n.log.length = 0;
    expect(bus.mmioRead(BAR1 + 0x800 + 4, 4)).toBe(1 << 3);
    expect(n.log).toEqual(['poll 32-40']);
  });

  test('F12: mask → fire while masked → PBA → unmask → use → replay, in QEMU order', () => {
    const { ctx, bus, bdf, msix, sink } = msixDevice(4);
    msix.vectorUse(1);
    programEntry(bus, 1, 0x4041);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    const rec = new TraceRecorder<PciTraceEvent>(ctx.trace.channel<PciTraceEvent>('pci').events$);
    bus.mmioWrite(BAR1 + 16 + 12, 4, Msix.ENTRY_CTRL_MASKBIT); // mask
    msix.notify(1, 'vfio_msi_interrupt'); // the device fires while masked
    expect(bus.mmioRead(BAR1 + 0x800, 4)).toBe(2);
    bus.mmioWrite(BAR1 + 16 + 12, 4, 0); // unmask
    expect(rec.functions()).toEqual([
      'msix_table_mmio_write', 'msix_handle_mask_update', 'msix_fire_vector_notifier',
      'msix_notify', 'msix_set_pending',
      'msix_pba_mmio_read',
      'msix_table_mmio_write', 'msix_handle_mask_update', 'msix_fire_vector_notifier', 'msix_clr_pending', 'msix_notify', 'msi_send_message',
    ]);
    expect(n.log.filter((l) => !l.startsWith('poll')).slice(-2)).toEqual(['release 1', 'use 1 data=0x4041']);
    expect(sink.msgs.length).toBe(1);
    expect(msix.isPending(1)).toBe(false);
  });

  test('reset clears Enable first, so masking every entry fires no notifier (as msix_reset does)', () => {
    const { bus, bdf, msix } = msixDevice(2);
    msix.vectorUse(0);
    programEntry(bus, 0, 0x70);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    n.log.length = 0;
    msix.reset();
    expect(msix.enabled).toBe(false);
    expect(bus.mmioRead(BAR1 + 8, 4)).toBe(0);
    expect(bus.mmioRead(BAR1 + 12, 4)).toBe(1);
    expect(n.log).toEqual([]);
    expect(msix.isMasked(0)).toBe(true);
  });

  test('clearing Enable fires no release (msix_write_config returns early); re-enabling fires use again', () => {
    const { bus, bdf, msix } = msixDevice(1);
    programEntry(bus, 0, 0x70);
    enableMsix(bus, bdf, msix.capOffset);
    const n = new RecordingNotifiers(msix);
    msix.setVectorNotifiers(n);
    bus.configWrite(bdf, msix.capOffset + 2, 2, 0);
    bus.configWrite(bdf, msix.capOffset + 2, 2, 0x8000);
    expect(n.log.filter((l) => !l.startsWith('poll'))).toEqual(['use 0 data=0x70', 'use 0 data=0x70']);
  });

  test('snapshot and restore round-trip the table, PBA, use counts and control', () => {
    const a = msixDevice(3);
    a.msix.vectorUse(2);
    programEntry(a.bus, 2, 0x77, false);
    enableMsix(a.bus, a.bdf, a.msix.capOffset);
    a.msix.notify(2);
    const snap = JSON.parse(JSON.stringify(a.msix.snapshot()));
    const b = msixDevice(3);
    b.msix.restore(snap);
    expect(b.msix.isPending(2)).toBe(true);
    expect(b.msix.enabled).toBe(true);
    b.bus.mmioWrite(BAR1 + 32 + 12, 4, 0);
    expect(b.sink.msgs.map((m) => m.data)).toEqual([0x77]);
    expect(() => msixDevice(2).msix.restore(snap)).toThrow(/table size/);
  });
});

type Op =
  | { k: 'fire'; v: number }
  | { k: 'mask'; v: number; on: boolean }
  | { k: 'maskall'; on: boolean }
  | { k: 'enable'; on: boolean };

describe('MSI-X mask/pending state machine (property)', () => {
  test('no interrupt lost, none doubled, pending replayed exactly once on unmask', () => {
    const N = 4;
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('fire' as const), v: fc.integer({ min: 0, max: N - 1 }) }),
      fc.record({ k: fc.constant('mask' as const), v: fc.integer({ min: 0, max: N - 1 }), on: fc.boolean() }),
      fc.record({ k: fc.constant('maskall' as const), on: fc.boolean() }),
      fc.record({ k: fc.constant('enable' as const), on: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const { bus, bdf, msix, sink } = msixDevice(N);
        for (let v = 0; v < N; v++) {
          msix.vectorUse(v);
          programEntry(bus, v, 0x40 + v, false);
        }
        const n = new RecordingNotifiers(msix);
        msix.setVectorNotifiers(n);
        // Reference model (FACTS §4.3).
        const entryMask = Array<boolean>(N).fill(true);
        const pending = Array<boolean>(N).fill(false);
        const delivered = Array<number>(N).fill(0);
        let enabled = false;
        let maskAll = false;
        const eff = (v: number) => !enabled || maskAll || entryMask[v]!;
        let fired = Array<number>(N).fill(0);
        const uses = Array<number>(N).fill(0);
        const rels = Array<number>(N).fill(0);
        const notifyTransitions = (before: boolean[]) => {
          for (let v = 0; v < N; v++) {
            if (before[v] === eff(v)) continue;
            if (eff(v)) rels[v]!++;
            else uses[v]!++;
          }
        };
        const replay = (before: boolean[]) => {
          for (let v = 0; v < N; v++) {
            if (before[v] && !eff(v) && pending[v]) {
              pending[v] = false;
              delivered[v]!++;
            }
          }
        };
        for (const o of ops) {
          const before = Array.from({ length: N }, (_, v) => eff(v));
          if (o.k === 'fire') {
            fired[o.v]!++;
            msix.notify(o.v);
            if (eff(o.v)) pending[o.v] = true;
            else delivered[o.v]!++;
          } else if (o.k === 'mask') {
            bus.mmioWrite(BAR1 + 16 * o.v + 12, 4, o.on ? 1 : 0);
            entryMask[o.v] = o.on;
            notifyTransitions(before);
            replay(before);
          } else {
            if (o.k === 'maskall') maskAll = o.on;
            else enabled = o.on;
            bus.configWrite(bdf, msix.capOffset + 2, 2, (enabled ? 0x8000 : 0) | (maskAll ? 0x4000 : 0));
            if (enabled) {
              notifyTransitions(before);
              replay(before);
            }
          }
          for (let v = 0; v < N; v++) {
            if (msix.isPending(v) !== pending[v]) return false;
            if (sink.msgs.filter((m) => m.data === 0x40 + v).length !== delivered[v]) return false;
          }
          // Notifiers: exactly one use per unmask transition and one release per mask transition
          // (transitions made by clearing Enable fire nothing, as in msix_write_config).
          for (let v = 0; v < N; v++) {
            if (n.log.filter((l) => l.startsWith(`use ${v} `)).length !== uses[v]) return false;
            if (n.log.filter((l) => l === `release ${v}`).length !== rels[v]) return false;
          }
        }
        // Liveness: unmask everything; every vector that fired has been delivered at least once
        // and at most as many times as it fired.
        bus.configWrite(bdf, msix.capOffset + 2, 2, 0x8000);
        for (let v = 0; v < N; v++) bus.mmioWrite(BAR1 + 16 * v + 12, 4, 0);
        for (let v = 0; v < N; v++) {
          const d = sink.msgs.filter((m) => m.data === 0x40 + v).length;
          if (fired[v]! > 0 && d === 0) return false;
          if (d > fired[v]!) return false;
          if (msix.isPending(v)) return false;
        }
        fired = [];
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
