import { MetricsCollector, renderHtmlReport, renderMermaid, renderMetricsTable, type RunMetrics } from '../src/index.js';
import { Scheduler, TraceBus, TraceRecorder } from '@virq/core';

function metrics(exits: number): RunMetrics {
  const c = new MetricsCollector();
  for (let i = 0; i < exits; i++) c.exit(i % 2, i % 3 === 0 ? 'HLT' : 'EPT_MISCONFIG');
  c.kicksSent = 3;
  c.userspaceExits = 2;
  c.userspaceExitsByReason.set('KVM_EXIT_HLT', 2);
  c.latency.record(1000);
  c.latency.record(3000);
  return c.finish({ topology: 't', irqchip: 'kvm-x86', seed: 1, virtualTimeNs: 1_000_000, events: 10, cpuTimeNs: {} });
}

describe('renderers', () => {
  const rows = [
    { label: { irqfd: 'on' }, metrics: metrics(6) },
    { label: { irqfd: 'off' }, metrics: metrics(9) },
  ];

  it('table, markdown, csv and json carry the same numbers', () => {
    const csv = renderMetricsTable(rows, 'csv').split('\n');
    expect(csv[0]).toMatch(/^irqfd,exits,exits\/ms,to user,vcpu kicks,kicks,/);
    expect(csv[0]).toMatch(/exit EPT_MISCONFIG,exit HLT,user HLT$/);
    expect(csv[1]).toMatch(/^on,6,6,2,0,3,/);
    expect(csv[2]).toMatch(/,6,3,2$/); // 9 exits: 6 EPT_MISCONFIG, 3 HLT; 2 KVM_EXIT_HLT to userspace
    const md = renderMetricsTable(rows, 'markdown').split('\n');
    expect(md[1]).toMatch(/^\| --- \| ---: \|/);
    expect(md[3]).toMatch(/^\| off \| 9 \|/);
    const json = JSON.parse(renderMetricsTable(rows, 'json'));
    expect(json[1]).toMatchObject({ irqfd: 'off', metrics: { exits: { total: 9 } } });
    expect(renderMetricsTable(rows, 'table').split('\n')[2]).toMatch(/^on\s+6\s+6\s+2\s+0\s+3/);
  });

  it('HTML report is self-contained with a histogram per row', () => {
    const html = renderHtmlReport('t <1>', rows);
    expect(html).toContain('<title>t &lt;1&gt;</title>');
    expect(html.match(/<svg/g)).toHaveLength(2);
    expect(html).not.toMatch(/<script|<link|src="http/); // no scripts, no external resources (the SVG namespace URI is not a fetch)
  });

  it('Mermaid: one participant per actor, arrows follow the flow across actors', () => {
    const s = new Scheduler();
    const bus = new TraceBus(s);
    const ch = bus.channel('x');
    const rec = new TraceRecorder(bus.events$);
    const vhost = s.actor({ name: 'vhost-1', kind: 'vhost-worker', cpu: 2 });
    const vcpu = s.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
    s.at(0, vhost, () => ch.emit('a', 'vhost_signal', undefined, { q: 0 }));
    s.at(0, vhost, () => ch.emit('b', 'irqfd_wakeup', undefined, { gsi: 24 }));
    s.at(1500, vcpu, () => ch.emit('c', 'vmx_inject_irq', undefined, { vector: 0x31 }));
    s.runUntilIdle();
    const m = renderMermaid(rec.events, 'demo').split('\n');
    expect(m[0]).toBe('sequenceDiagram');
    expect(m.filter((l) => l.includes('participant'))).toHaveLength(2);
    expect(m).toContain('    A0->>A0: vhost_signal (q=0) @0.000µs');
    expect(m).toContain('    A0->>A1: vmx_inject_irq (vector=49) @1.500µs');
  });
});
