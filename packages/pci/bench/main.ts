// Benchmarks of @virq/pci's hot paths: msix_notify (unmasked → MsiSink, masked → PBA) and
// the table write that runs msix_handle_mask_update. A and B runs alternate; medians and
// per-pair ratios are printed. Run: cd packages/pci && npm run bench
import { type MsiMessage, TraceRecorder, createSimContext } from '@virq/core';
import { MsixTable, PciBus, PciCommand, PciDevice, PciReg } from '@virq/pci';

function setup(trace: boolean) {
  const ctx = createSimContext();
  let delivered = 0;
  const dev = new PciDevice(ctx, { name: 'bench', vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, msiSink: { deliverMsi: (_m: MsiMessage) => ++delivered } });
  const msix = MsixTable.exclusiveBar(dev, 8, 1);
  const bus = new PciBus(0);
  bus.attach(dev, 0x18);
  bus.configWrite(0x18, PciReg.BASE_ADDRESS_0 + 4, 4, 0xfebf0000);
  bus.configWrite(0x18, PciReg.COMMAND, 2, PciCommand.MEMORY | PciCommand.MASTER);
  for (let v = 0; v < 8; v++) {
    msix.vectorUse(v);
    bus.mmioWrite(0xfebf0000 + 16 * v, 4, 0xfee00000);
    bus.mmioWrite(0xfebf0000 + 16 * v + 8, 4, 0x40 + v);
    bus.mmioWrite(0xfebf0000 + 16 * v + 12, 4, v === 7 ? 1 : 0);
  }
  bus.configWrite(0x18, msix.capOffset + 2, 2, 0x8000);
  const rec = trace ? new TraceRecorder(ctx.trace.events$) : undefined;
  return { msix, bus, rec, get delivered() { return delivered; } };
}

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const N = 300_000;
const PAIRS = 5;

function pair(name: string, a: () => number, b: () => number, unit: string): void {
  const as: number[] = [];
  const bs: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const x = a();
    const y = b();
    as.push(x);
    bs.push(y);
    ratios.push(y / x);
  }
  console.log(`${name}: A median ${median(as).toFixed(1)} ${unit}, B median ${median(bs).toFixed(1)} ${unit}, B/A per pair ${ratios.map((r) => r.toFixed(2)).join(' ')} (median ${median(ratios).toFixed(2)})`);
}

const rate = (ms: number) => N / ms / 1000; // M ops/s

pair(
  'msix_notify unmasked (A: trace off, B: trace on) [M/s]',
  () => { const s = setup(false); return rate(time(() => { for (let i = 0; i < N; i++) s.msix.notify(i & 3); })); },
  () => { const s = setup(true); return rate(time(() => { for (let i = 0; i < N; i++) s.msix.notify(i & 3); })); },
  'M/s',
);
pair(
  'msix_notify (A: unmasked → MsiSink, B: masked → PBA) [M/s]',
  () => { const s = setup(false); return rate(time(() => { for (let i = 0; i < N; i++) s.msix.notify(1); })); },
  () => { const s = setup(false); return rate(time(() => { for (let i = 0; i < N; i++) s.msix.notify(7); })); },
  'M/s',
);
pair(
  'table Vector Control write (A: no notifiers, B: notifiers + replay) [M/s]',
  () => { const s = setup(false); return rate(time(() => { for (let i = 0; i < N; i++) s.bus.mmioWrite(0xfebf0000 + 16 + 12, 4, i & 1); })); },
  () => {
    const s = setup(false);
    s.msix.setVectorNotifiers({ use: () => 0, release: () => undefined });
    return rate(time(() => { for (let i = 0; i < N; i++) { s.bus.mmioWrite(0xfebf0000 + 16 + 12, 4, i & 1); if ((i & 1) === 1) s.msix.notify(1); } }));
  },
  'M/s',
);
