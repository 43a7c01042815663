import type { TraceEvent } from '@virq/core';

/**
 * A Mermaid sequence diagram of one delivery: one participant per actor, an arrow whenever
 * the flow crosses from one actor to another (an eventfd wake-up, an IPI, a VM exit handled
 * by another thread) labelled with the function that runs on arrival, and a self-message for
 * steps on the same actor.
 */
export function renderMermaid(events: readonly TraceEvent[], title = 'virq delivery'): string {
  const ids = new Map<string, string>();
  const lines = ['sequenceDiagram', `    title ${sanitize(title)}`];
  for (const e of events) {
    const key = `${e.actor.name}-${e.actor.pid}`;
    if (!ids.has(key)) {
      const id = `A${ids.size}`;
      ids.set(key, id);
      lines.push(`    participant ${id} as ${sanitize(`${e.actor.name} [cpu ${e.actor.cpu}]`)}`);
    }
  }
  let prev: string | undefined;
  for (const e of events) {
    const id = ids.get(`${e.actor.name}-${e.actor.pid}`)!;
    const label = sanitize(`${e.fn}${argsText(e)} @${(e.time / 1000).toFixed(3)}µs`);
    lines.push(`    ${prev ?? id}->>${id}: ${label}`);
    prev = id;
  }
  return lines.join('\n') + '\n';
}

function argsText(e: TraceEvent): string {
  const parts: string[] = [];
  for (const k in e.args) {
    if (parts.length >= 3) break;
    const v = e.args[k]!;
    parts.push(`${k}=${typeof v === 'bigint' ? `0x${v.toString(16)}` : String(v)}`);
  }
  return parts.length ? ` (${parts.join(' ')})` : '';
}

function sanitize(s: string): string {
  return s.replace(/[;#\n]/g, ' ').replace(/:/g, '﹕');
}
