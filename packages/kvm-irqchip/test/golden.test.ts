import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { replayGoldenScenario, runGoldenCli, type GoldenScenario } from '@virq/kvm-irqchip';

// Scenarios recorded from /dev/kvm (Linux 6.18) — ../shared/golden/README.md.
const GOLDEN = path.resolve(__dirname, '../../../../shared/golden/kvm-irqchip.json');
const present = existsSync(GOLDEN);
if (!present) console.warn(`golden corpus not found at ${GOLDEN}: golden replay tests are skipped`);
const scenarios: GoldenScenario[] = present ? (JSON.parse(readFileSync(GOLDEN, 'utf8')) as { scenarios: GoldenScenario[] }).scenarios : [];
if (!present) {
  test('golden corpus missing: replay not run', () => {
    expect(existsSync(GOLDEN)).toBe(false);
  });
}

if (present) describe('golden kvm-irqchip.json replays exactly', () => {
  test.each(scenarios.map((s) => [s.name, s] as const))('%s', (_name, s) => {
    const r = replayGoldenScenario(s);
    if (s.skipped) {
      expect(r.status).toBe('skipped');
      return;
    }
    expect(r.mismatches).toEqual([]);
    // the setup actions alone must rebuild setup.state (no fallback to the recorded state)
    expect(r.setupNote).toBeUndefined();
    expect(r.status).toBe('pass');
  });

  test('a changed expectation is reported as the first mismatch', () => {
    const s = structuredClone(scenarios.find((x) => x.name === 'pic_master_edge_raise_lower')!) as unknown as { steps: { result: Record<string, unknown> }[] };
    s.steps[0]!.result['status'] = 0;
    const r = replayGoldenScenario(s as unknown as GoldenScenario);
    expect(r.status).toBe('fail');
    expect(r.firstMismatch).toBe('step 0 irq_line_status: result.status expected 0, got 1');
  });

  test('a changed final state is caught', () => {
    const s = structuredClone(scenarios.find((x) => x.name === 'ioapic_physical_broadcast_fixed')!) as unknown as { final_state: { lapic: { irr: number[] }[] } };
    s.final_state.lapic[2]!.irr = [];
    const r = replayGoldenScenario(s as unknown as GoldenScenario);
    expect(r.firstMismatch).toMatch(/^final_state\.lapic\[2\]\.irr/);
  });

  test('runGoldenCli prints one line per scenario and the totals', () => {
    const out = runGoldenCli([GOLDEN]);
    expect(out.lines).toHaveLength(scenarios.length + 1);
    expect(out.lines[0]).toBe(`${scenarios[0]!.name} PASS`);
    expect(out.lines.at(-1)).toBe(`${out.passed} passed, ${out.failed} failed`);
    expect(out.failed).toBe(0);
  });

  test('runGoldenCli reports an unreadable file as a failure', () => {
    const out = runGoldenCli(['/nonexistent/golden.json']);
    expect(out.failed).toBe(1);
    expect(out.lines.at(-1)).toBe('0 passed, 1 failed');
  });
});
