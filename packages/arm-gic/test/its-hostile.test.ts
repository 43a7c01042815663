import fc from 'fast-check';
import { GuestMemory, TraceRecorder, createSimContext } from '@virq/core';
import {
  GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER, GITS_CREADR, GITS_CTLR, GITS_CWRITER, Gicv3, ITS_CMD_SIZE, Its,
  ItsCommand, ItsError, type ItsOptions,
} from '@virq/arm-gic';

const CMDQ = 0x10000;
const DEVTAB = 0x20000;
const COLLTAB = 0x30000;
const ITT = 0x40000;
const PROP = 0x50000;
const MEM = 0xa0000;

function rig(o: ItsOptions = {}, tables: { devtab?: bigint; colltab?: bigint; cbaser?: bigint } = {}) {
  const ctx = createSimContext();
  const mem = GuestMemory.ofSize(MEM);
  const gic = new Gicv3(ctx, { numCpus: 2, memory: mem, defaultGroup: 1 });
  const its = new Its(gic, mem, o);
  mem.fill(PROP, 0x10000, 0xa3);
  for (let pe = 0; pe < 2; pe++) {
    const rd = gic.redistributors[pe];
    rd.write64(GICR_PROPBASER, BigInt(PROP) | 15n);
    rd.write64(GICR_PENDBASER, BigInt(0x60000 + pe * 0x10000));
    rd.write32(GICR_CTLR, 1);
  }
  its.write64(GITS_BASER, tables.devtab ?? (BigInt(DEVTAB) | (1n << 63n)));
  its.write64(GITS_BASER + 8, tables.colltab ?? (BigInt(COLLTAB) | (1n << 63n)));
  its.write64(GITS_CBASER, tables.cbaser ?? (BigInt(CMDQ) | (1n << 63n)));
  its.write32(GITS_CTLR, 1);
  const rec = new TraceRecorder(ctx.trace.channel('arm-gic').events$);
  const post = (...cmds: Uint8Array[]): number => {
    let w = Number(its.read64(GITS_CWRITER));
    for (const c of cmds) {
      if (mem.isValid(its.queueBase + w, 32)) mem.writeBytes(its.queueBase + w, c);
      w = (w + 32) % its.queueSize;
    }
    its.write64(GITS_CWRITER, BigInt(w));
    return w;
  };
  const errors = () => rec.events.filter((e) => e.kind === 'its.command-error').map((e) => e.args['code']);
  return { ctx, mem, gic, its, post, rec, errors };
}

describe('hostile ITS input: typed events, no exception, the queue keeps working', () => {
  test('a CWRITER beyond the queue is ignored and reported; the next valid CWRITER is processed', () => {
    const { its, post, rec } = rig();
    expect(() => its.write64(GITS_CWRITER, 0x1000n)).not.toThrow(); // queue is 4 KiB: offset 0x1000 is out of range
    expect(rec.events.some((e) => e.kind === 'its.cwriter-out-of-range')).toBe(true);
    expect(its.read64(GITS_CWRITER)).toBe(0n);
    const w = post(ItsCommand.mapd(1, 4, ITT, true), ItsCommand.mapc(0, 0, true), ItsCommand.mapti(1, 0, 8192, 0));
    expect(its.read64(GITS_CREADR)).toBe(BigInt(w));
    expect(its.translate(1, 0)).toBe('lpi');
  });

  test('tables not mapped: BASER pointing outside memory, no BASER, an invalid level-1 entry → MAPD/MAPC OOR', () => {
    const outside = rig({}, { devtab: 0x7f0000n | (1n << 63n), colltab: 0x7e0000n | (1n << 63n) });
    outside.post(ItsCommand.mapd(1, 4, ITT, true), ItsCommand.mapc(0, 0, true), ItsCommand.mapti(1, 0, 8192, 0));
    expect(outside.errors()).toEqual([ItsError.MAPD_DEVICE_OOR, ItsError.MAPC_COLLECTION_OOR, ItsError.MAPTI_UNMAPPED_DEVICE]);
    // no collection BASER: vgic_mmio_write_its_ctlr refuses to enable the ITS (UNPREDICTABLE), so nothing is processed
    const noColl = rig({}, { colltab: 0n });
    expect(noColl.its.read32(GITS_CTLR) & 1).toBe(0);
    const w = noColl.post(ItsCommand.mapd(1, 4, ITT, true));
    expect(noColl.its.read64(GITS_CREADR)).toBe(0n);
    expect(w).toBe(ITS_CMD_SIZE);
    // two-level device table: DeviceID 0x2001 needs level-1 entry 1 (8192 eight-byte entries per 64 KiB page)
    const ind = rig({}, { devtab: BigInt(DEVTAB) | (1n << 62n) | (1n << 63n) });
    ind.mem.write64(DEVTAB + 8, 0n); // L1 entry 1 not valid
    ind.post(ItsCommand.mapd(0x2001, 4, ITT, true));
    expect(ind.errors()).toEqual([ItsError.MAPD_DEVICE_OOR]);
    ind.mem.write64(DEVTAB + 8, (1n << 63n) | 0x70000n); // valid, level-2 page at 0x70000
    ind.post(ItsCommand.mapd(0x2001, 4, ITT, true));
    expect(ind.errors()).toEqual([ItsError.MAPD_DEVICE_OOR]);
    expect(ind.its.devices.has(0x2001)).toBe(true);
    ind.mem.write64(DEVTAB + 16, (1n << 63n) | 0x990000n); // level-2 page outside memory
    ind.post(ItsCommand.mapd(0x4001, 4, ITT, true));
    expect(ind.errors()).toEqual([ItsError.MAPD_DEVICE_OOR, ItsError.MAPD_DEVICE_OOR]);
  });

  test('an ITT outside memory makes MAPTI fail with MAPTI_ID_OOR; translations of unmapped IDs are dropped, not thrown', () => {
    const { its, post, errors, gic } = rig();
    post(ItsCommand.mapd(3, 8, 0x9ff00, true), ItsCommand.mapc(0, 0, true)); // ITT at the very end of memory
    post(ItsCommand.mapti(3, 0, 8192, 0), ItsCommand.mapti(3, 200, 8193, 0)); // event 200 · 8 bytes runs past the end
    expect(errors()).toEqual([ItsError.MAPTI_ID_OOR]);
    expect(its.translate(3, 0)).toBe('lpi');
    for (const [d, e] of [[3, 200], [3, 1 << 20], [0xffff_ffff, 0], [9, 9]] as const) expect(its.translate(d, e)).toBe('dropped');
    expect(gic.faults).toBeGreaterThanOrEqual(5);
  });

  test('a command queue in unmapped memory: each command is a read fault, skipped; CREADR still reaches CWRITER', () => {
    const { its, rec } = rig({}, { cbaser: 0x7ff000n | (1n << 63n) });
    its.write64(GITS_CWRITER, 0x60n);
    expect(its.read64(GITS_CREADR)).toBe(0x60n);
    expect(rec.events.filter((e) => e.kind === 'its.command-read-fault')).toHaveLength(3);
  });

  test('stall policy: CREADR.Stalled on the failing command; fixing it and CWRITER.Retry resumes', () => {
    const { its, post, mem, errors } = rig({ flavor: 'hardware', onCommandError: 'stall' });
    const w = post(ItsCommand.mapc(0, 0, true), ItsCommand.mapti(7, 0, 8192, 0), ItsCommand.mapd(8, 4, ITT, true));
    expect(errors()).toEqual([ItsError.MAPTI_UNMAPPED_DEVICE]);
    const r = its.read64(GITS_CREADR);
    expect(r & 1n).toBe(1n); // Stalled
    expect(r & ~1n).toBe(32n); // pointing at the failing command
    expect(its.read32(GITS_CTLR) >>> 31).toBe(0); // not quiescent
    mem.writeBytes(CMDQ + 32, ItsCommand.mapd(7, 4, ITT, true)); // the driver repairs the command
    its.write64(GITS_CWRITER, BigInt(w) | 1n); // Retry
    expect(its.read64(GITS_CREADR)).toBe(BigInt(w));
    expect(its.devices.has(7) && its.devices.has(8)).toBe(true);
  });

  test('KVM ignores the GICv4 commands (the guest sees a GICv3 ITS), reporting them', () => {
    const { post, rec } = rig();
    post(ItsCommand.vmapp(1, 0, 0x70000, 16, true), ItsCommand.vsync(1));
    const unsupported = rec.events.filter((e) => e.kind === 'its.command-unsupported');
    expect(unsupported.map((e) => e.args['what'])).toEqual(['VMAPP', 'VSYNC']);
    // vgic_its_handle_command has no case for them (-ENODEV), called from vgic_its_process_commands
    expect(unsupported.every((e) => e.fn === 'vgic_its_handle_command' && e.caller === 'vgic_its_process_commands')).toBe(true);
  });

  test('property: arbitrary 32-byte garbage in the queue never throws, never loops, and a later valid command still works', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 0xfffff }), (cmds, cwriter) => {
        const { its, post } = rig({ flavor: 'hardware' });
        expect(() => post(...cmds)).not.toThrow();
        expect(() => its.write64(GITS_CWRITER, BigInt(cwriter))).not.toThrow();
        expect(() => its.write64(GITS_CWRITER, BigInt(cwriter & ~31))).not.toThrow();
        // recover: whatever happened, a fresh mapping works
        const w = Number(its.read64(GITS_CWRITER));
        its.write64(GITS_CREADR, 0n); // ignored while enabled
        post(ItsCommand.mapd(0x55, 4, ITT, true), ItsCommand.mapc(1, 1, true), ItsCommand.mapti(0x55, 1, 9000, 1));
        expect(Number(its.read64(GITS_CREADR)) & ~1).toBe((w + 3 * ITS_CMD_SIZE) % its.queueSize);
        expect(its.translate(0x55, 1)).toBe('lpi');
      }),
      { numRuns: 200 },
    );
  });
});
