// The `virq run` default end to end: wall time per simulated run of the default x86 machine,
// with the trace kept (what the command does) — alternating x86 and ARM runs, medians.
import { parseTopology, presetDocument, runTopology } from '@virq/machine';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = (preset: string): { ms: number; events: number } => {
  const t = parseTopology(presetDocument(preset));
  const t0 = process.hrtime.bigint();
  const r = runTopology(t, { keepTrace: true });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, events: r.metrics.events };
};
time('x86-q35');
time('arm-virt-gicv4');
const x: number[] = [];
const a: number[] = [];
const xe: number[] = [];
for (let i = 0; i < 5; i++) {
  const r1 = time('x86-q35');
  const r2 = time('arm-virt-gicv4');
  x.push(r1.ms);
  xe.push(r1.events / (r1.ms / 1000));
  a.push(r2.ms);
}
console.log('cli bench: `virq run` default machines (2 ms of virtual time each), 5 alternating pairs');
console.log(`  x86-q35        median ${median(x).toFixed(1)} ms wall (${(median(xe) / 1e6).toFixed(2)} M events/s)   runs ${x.map((v) => v.toFixed(0)).join(' ')}`);
console.log(`  arm-virt-gicv4 median ${median(a).toFixed(1)} ms wall   runs ${a.map((v) => v.toFixed(0)).join(' ')}`);
console.log(`  arm/x86 per pair: ${a.map((v, i) => (v / x[i]!).toFixed(2)).join(' ')}`);
