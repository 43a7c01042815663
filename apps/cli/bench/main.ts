// The CLI's default scenario end to end: simulated round trips per second of wall time.
import { runPingPong } from '../src/commands/pingpong.js';

const rounds = 100_000;
const runs: number[] = [];
for (let i = 0; i < 5; i++) {
  const t0 = process.hrtime.bigint();
  runPingPong(1 + i, rounds);
  runs.push(rounds / (Number(process.hrtime.bigint() - t0) / 1e9));
}
runs.sort((a, b) => a - b);
console.log(`cli bench: virq run default scenario, ${rounds} round trips per run (tracing subscribed by the recorder)`);
console.log(`  median ${(runs[2]! / 1e3).toFixed(0)} k round trips/s   runs ${runs.map((r) => (r / 1e3).toFixed(0)).join(' ')}`);
