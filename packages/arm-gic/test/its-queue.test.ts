import { GuestMemory, TraceRecorder, createSimContext, msiMessage } from '@virq/core';
import {
  GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, GITS_BASER, GITS_CBASER, GITS_CREADR, GITS_CTLR, GITS_CWRITER, GITS_TYPER,
  Gicv3, ItsCommand, ItsError, Its, type ItsOptions,
} from '@virq/arm-gic';

// Memory map of the test "guest": command queue, device table, collection table, ITTs,
// LPI property table and pending tables — what a Linux ITS driver allocates at probe time.
const CMDQ = 0x10000; // 4 KiB queue: 128 commands
const DEVTAB = 0x20000;
const COLLTAB = 0x30000;
const ITT = 0x40000;
const PROP = 0x50000;
const PEND = 0x60000; // 64 KiB per redistributor
const MEM = 0x100000 + 4 * 0x10000;

function rig(itsOptions: ItsOptions = {}, numCpus = 2) {
  const ctx = createSimContext();
  const mem = GuestMemory.ofSize(MEM);
  const gic = new Gicv3(ctx, { numCpus, memory: mem, defaultGroup: 1 });
  const its = new Its(gic, mem, itsOptions);
  // LPI configuration: every LPI enabled at priority 0xa0 (Linux's LPI_PROP_DEFAULT_PRIO | ENABLED | group1)
  mem.fill(PROP, 0x10000, 0xa0 | 0x2 | 0x1);
  for (let pe = 0; pe < numCpus; pe++) {
    const rd = gic.redistributors[pe];
    rd.write64(GICR_PROPBASER, BigInt(PROP) | 15n); // IDbits = 15 → 16 bits
    rd.write64(GICR_PENDBASER, BigInt(PEND + 0x10000 * pe));
    rd.write32(GICR_CTLR, 1);
    gic.cpuInterfaces[pe].writeSysreg('ICC_PMR_EL1', 0xf0);
    gic.cpuInterfaces[pe].writeSysreg('ICC_IGRPEN1_EL1', 1);
  }
  // The driver: tables, queue, enable.
  its.write64(GITS_BASER + 0, BigInt(DEVTAB) | (1n << 63n)); // 1 page of 64 KiB: 8192 devices
  its.write64(GITS_BASER + 8, BigInt(COLLTAB) | (1n << 63n));
  its.write64(GITS_CBASER, BigInt(CMDQ) | (1n << 63n)); // Size 0: one 4 KiB page
  its.write32(GITS_CTLR, 1);
  /** Linux's its_send_single_command: write at CWRITER, advance CWRITER, poll CREADR. */
  const send = (...cmds: Uint8Array[]): void => {
    let w = Number(its.read64(GITS_CWRITER));
    for (const c of cmds) {
      mem.writeBytes(CMDQ + w, c);
      w = (w + 32) % 4096;
    }
    its.write64(GITS_CWRITER, BigInt(w));
    expect(Number(its.read64(GITS_CREADR)) & ~1).toBe(w);
  };
  return { ctx, mem, gic, its, send };
}

describe('ITS command queue, driven as a driver drives it', () => {
  test('GITS_TYPER advertises 8-byte ITT entries, 16 EventID and DeviceID bits, PTA = 0', () => {
    const { its } = rig();
    const t = its.read64(GITS_TYPER);
    expect(t & 1n).toBe(1n); // Physical
    expect((t >> 4n) & 0xfn).toBe(7n); // ITT_entry_size = bytes − 1
    expect((t >> 8n) & 0x1fn).toBe(15n); // IDbits
    expect((t >> 13n) & 0x1fn).toBe(15n); // Devbits
    expect((t >> 19n) & 1n).toBe(0n); // PTA = 0: RDbase is a processor number
  });

  test('MAPD/MAPC/MAPTI then a GITS_TRANSLATER write makes the LPI pending at the collection target; IAR1 returns it', () => {
    const { gic, its, send } = rig();
    send(ItsCommand.mapd(0x10, 5, ITT, true), ItsCommand.mapc(3, 1, true), ItsCommand.mapti(0x10, 7, 8192 + 100, 3), ItsCommand.sync(1));
    expect(its.deliverMsi(msiMessage(0x0808_0000 + 0x10040, 7, 0x10))).toBe(1);
    const cpu1 = gic.cpuInterfaces[1];
    expect(cpu1.irqAsserted).toBe(true);
    expect(gic.cpuInterfaces[0].irqAsserted).toBe(false);
    // pending table bit of redistributor 1: byte INTID/8, bit INTID%8
    expect(its.memory.read8(PEND + 0x10000 + ((8192 + 100) >> 3)) & (1 << ((8192 + 100) & 7))).not.toBe(0);
    expect(Number(cpu1.readSysreg('ICC_IAR1_EL1'))).toBe(8292);
    // LPIs have no active state: after IAR the pending bit is clear and nothing is active
    expect(its.memory.read8(PEND + 0x10000 + (8292 >> 3)) & (1 << (8292 & 7))).toBe(0);
    expect(Number(cpu1.readSysreg('ICC_RPR_EL1'))).toBe(0xa0);
    cpu1.writeSysreg('ICC_EOIR1_EL1', 8292);
    expect(Number(cpu1.readSysreg('ICC_RPR_EL1'))).toBe(0xff);
  });

  test('INT, CLEAR, MOVI, DISCARD, MAPI, INVALL and MOVALL act on the mapping', () => {
    const { gic, its, mem, send } = rig();
    send(ItsCommand.mapd(1, 4, ITT, true), ItsCommand.mapc(0, 0, true), ItsCommand.mapc(1, 1, true), ItsCommand.mapi(1, 8200, 0));
    expect(gic.lpis.has(8200)).toBe(false); // EventID 8200 ≥ 2^4: MAPI skipped (MAPTI_ID_OOR)
    send(ItsCommand.mapti(1, 2, 8200, 0), ItsCommand.int(1, 2));
    expect(gic.lpis.get(8200)!.pending).toBe(true);
    send(ItsCommand.clear(1, 2));
    expect(gic.lpis.get(8200)!.pending).toBe(false);
    send(ItsCommand.movi(1, 2, 1), ItsCommand.int(1, 2));
    expect(gic.lpis.get(8200)!.targetPe).toBe(1);
    expect(gic.cpuInterfaces[1].hppir1()).toBe(8200);
    send(ItsCommand.movall(1, 0));
    expect(gic.lpis.get(8200)!.targetPe).toBe(0);
    // INV re-reads the configuration byte: disable LPI 8200 in the property table
    mem.write8(PROP + 8, 0xa0 | 0x2);
    expect(gic.cpuInterfaces[0].hppir1()).toBe(8200); // cached configuration still enabled
    send(ItsCommand.invall(0));
    expect(gic.cpuInterfaces[0].hppir1()).toBe(1023);
    send(ItsCommand.discard(1, 2));
    expect(its.translate(1, 2)).toBe('dropped');
  });

  test('command errors are skipped with the architectural error number, and the queue keeps working', () => {
    const { ctx, its, gic, send } = rig();
    const rec = new TraceRecorder(ctx.trace.channel('arm-gic').events$);
    send(
      ItsCommand.mapti(0x99, 0, 8192, 0), // unmapped device
      ItsCommand.mapd(0x7fff_ffff, 4, ITT, true), // DeviceID beyond 16 bits
      ItsCommand.mapd(2, 17, ITT, true), // 17 EventID bits > 16
      ItsCommand.mapc(0, 9, true), // processor 9 of 2
      ItsCommand.mapd(2, 4, ITT, true),
      ItsCommand.mapti(2, 1, 100, 0), // pINTID < 8192
      ItsCommand.mapti(2, 1, 1 << 16, 0), // pINTID beyond PROPBASER.IDbits
      ItsCommand.movi(2, 9, 0),
      ItsCommand.int(2, 9),
      ItsCommand.clear(2, 9),
      ItsCommand.inv(2, 9),
      ItsCommand.discard(2, 9),
      ItsCommand.invall(44),
      ItsCommand.movall(0, 7),
    );
    const codes = rec.events.filter((e) => e.kind === 'its.command-error').map((e) => e.args['code']);
    expect(codes).toEqual([
      ItsError.MAPTI_UNMAPPED_DEVICE, ItsError.MAPD_DEVICE_OOR, ItsError.MAPD_ITTSIZE_OOR, ItsError.MAPC_PROCNUM_OOR,
      ItsError.MAPTI_PHYSICALID_OOR, ItsError.MAPTI_PHYSICALID_OOR, ItsError.MOVI_UNMAPPED_INTERRUPT, ItsError.INT_UNMAPPED_INTERRUPT,
      ItsError.CLEAR_UNMAPPED_INTERRUPT, ItsError.INV_UNMAPPED_INTERRUPT, ItsError.DISCARD_UNMAPPED_INTERRUPT,
      ItsError.INVALL_UNMAPPED_COLLECTION, ItsError.MOVALL_PROCNUM_OOR,
    ]);
    expect(codes).toEqual([0x010a04, 0x010801, 0x010802, 0x010902, 0x010a06, 0x010a06, 0x010107, 0x010307, 0x010507, 0x010c07, 0x010f07, 0x010d09, 0x010e01]);
    // still works
    send(ItsCommand.mapc(0, 0, true), ItsCommand.mapti(2, 1, 8192, 0));
    expect(its.translate(2, 1)).toBe('lpi');
    expect(gic.faults).toBeGreaterThanOrEqual(13);
    expect(its.read32(GITS_CTLR) >>> 31).toBe(1); // quiescent
  });
});
