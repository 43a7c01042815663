import fs from 'node:fs';
import { formatFtrace, toChromeTrace } from '@virq/core';
import { FLOWS, firstMissing, flowById, flowFunctionNames, renderMermaid } from '@virq/machine';

export function commandFlows(out: (s: string) => void): number {
  out('The 19 flows (FLOWS.md), each a built-in scenario: `virq flow <id> [--variant V]`');
  for (const f of FLOWS) out(`  ${f.spec.id.padEnd(4)} ${f.spec.title}  [variants: ${Object.keys(f.spec.variants).join(', ')}; seeds ${f.spec.seeds}]`);
  return 0;
}

export function commandFlow(id: string, o: { variant: string | undefined; seed: number; perfetto: string | undefined; mermaid: string | undefined }, out: (s: string) => void): number {
  const f = flowById(id);
  const r = f.run(o.variant, o.seed);
  out(`${r.id} ${r.title} — variant ${r.variant}`);
  for (const n of r.notes) out(`note: ${n}`);
  out(formatFtrace(r.trace));
  const expected = f.spec.variants[r.variant] ?? [];
  const miss = firstMissing(expected, flowFunctionNames(r.trace));
  out(miss === -1 ? `order check: all ${expected.length} steps of FLOWS.md appear in order` : `order check: FAILED at step ${miss + 1} (${expected[miss]})`);
  if (o.perfetto !== undefined) {
    fs.writeFileSync(o.perfetto, JSON.stringify(toChromeTrace(r.trace, { flow: r.id, variant: r.variant })));
    out(`Perfetto trace: ${o.perfetto}`);
  }
  if (o.mermaid !== undefined) {
    const text = renderMermaid(r.trace, `${r.id} ${r.title}`);
    if (o.mermaid === '-') out(text);
    else fs.writeFileSync(o.mermaid, text);
  }
  return miss === -1 ? 0 : 1;
}
