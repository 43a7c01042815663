import { readFileSync } from 'node:fs';
import path from 'node:path';
import { replayGoldenFile, replayGoldenScenario, runGoldenCli, type GoldenScenario } from '@virq/kvm-irqchip';

// Extra scenarios recorded from /dev/kvm (Linux 6.18, kvm_pvm) with the shared recorder by
// tools/golden-extra/record.py — same format as ../shared/golden/kvm-irqchip.json.
const EXTRA = path.resolve(__dirname, 'golden-extra.json');
const doc = JSON.parse(readFileSync(EXTRA, 'utf8')) as { header: { kernel: string }; scenarios: GoldenScenario[] };
const scenarios = doc.scenarios;

describe('golden-extra.json replays exactly', () => {
  test('the file holds real recordings of every group', () => {
    expect(doc.header.kernel).toMatch(/^6\.18\./);
    const groups = new Set(scenarios.map((s) => s.group));
    for (const g of ['pic', 'ioapic', 'lapic', 'msi_routing', 'irqfd', 'misc']) expect(groups.has(g)).toBe(true);
    expect(scenarios.length).toBeGreaterThanOrEqual(40);
    expect(new Set(scenarios.map((s) => s.name)).size).toBe(scenarios.length);
  });

  test.each(scenarios.map((s) => [s.name, s] as const))('%s', (_name, s) => {
    const r = replayGoldenScenario(s);
    expect(r.mismatches).toEqual([]);
    expect(r.setupNote).toBeUndefined();
    expect(r.status).toBe('pass');
  });

  test('a changed guest read is reported', () => {
    const s = structuredClone(scenarios.find((x) => x.name === 'lapic_register_sweep_reads')!) as unknown as { steps: { op: string; result: { reads: (number | null)[] } }[] };
    const step = s.steps.find((x) => x.op === 'guest_access')!;
    step.result.reads[0] = 0;
    const r = replayGoldenScenario(s as unknown as GoldenScenario);
    expect(r.status).toBe('fail');
    expect(r.firstMismatch).toMatch(/guest_access: result\.reads\[0\]/);
  });

  test('replayGoldenFile and runGoldenCli read the file unchanged', () => {
    const f = replayGoldenFile(EXTRA);
    expect(f.results).toHaveLength(scenarios.length);
    const out = runGoldenCli([EXTRA]);
    expect(out.failed).toBe(0);
    expect(out.lines.at(-1)).toBe(`${scenarios.length} passed, 0 failed`);
  });
});
