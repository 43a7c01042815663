import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { VirqError } from '@virq/core';
import { loadTopologyFile, parseTopology, parseTopologyText, preset, presetDocument, presetNames } from '../src/index.js';

function err(f: () => unknown): VirqError {
  try {
    f();
  } catch (e) {
    if (e instanceof VirqError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('topology validation', () => {
  it('fills defaults for an empty document', () => {
    const t = parseTopology({});
    expect(t.irqchip.kind).toBe('kvm-x86');
    expect(t.vcpus).toHaveLength(2);
    expect(t.routing).toEqual({ irqfd: true, ioeventfd: true });
  });

  it('names the path and what is expected', () => {
    expect(err(() => parseTopology({ devices: [{ kind: 'virtio-net' }, { kind: 'virtio-net', backend: 'dpdk' }] })).message).toBe(
      'topology.devices[1].backend: expected one of in-vmm, vhost, vhost-user, got "dpdk"',
    );
    expect(err(() => parseTopology({ irqchip: { kind: 'gicv5' } })).message).toMatch(/^topology\.irqchip\.kind: expected one of kvm-x86, userspace-x86, gicv3, gicv4, gicv4\.1/);
    expect(err(() => parseTopology({ vcpus: [{ id: 0, hostCpu: -1 }] })).message).toMatch(/^topology\.vcpus\[0\]\.hostCpu: expected an integer/);
    expect(err(() => parseTopology({ devices: [{ kind: 'virtio-net', queueSize: 100 }] })).message).toMatch(/power of two/);
    expect(err(() => parseTopology({ workload: { rxPacketsPerSec: -5 } })).code).toBe('machine.topology-invalid');
    expect(err(() => parseTopology({ costs: { vmexit: 1 } })).message).toMatch(/topology\.costs\.vmexit: unknown cost/);
  });

  it('rejects unknown fields (a typo must not pass silently)', () => {
    expect(err(() => parseTopology({ irqchip: { kind: 'gicv3', postd: true } })).message).toMatch(/^topology\.irqchip\.postd: unknown field/);
    expect(err(() => parseTopology({ devcies: [] })).message).toMatch(/^topology\.devcies: unknown field/);
  });

  it('rejects duplicate names, missing vCPUs and x86 timers on ARM', () => {
    expect(err(() => parseTopology({ devices: [{ kind: 'serial', name: 'a' }, { kind: 'serial', name: 'a' }] })).message).toMatch(/two devices are named "a"/);
    expect(err(() => parseTopology({ devices: [{ kind: 'vfio', targetVcpus: [7] }] })).message).toMatch(/vCPU 7 does not exist/);
    expect(err(() => parseTopology({ irqchip: { kind: 'gicv4' }, devices: [{ kind: 'pit' }] })).message).toMatch(/x86 legacy timer/);
  });

  it('YAML and JSON files load, syntax errors say where', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virq-topo-'));
    const y = path.join(dir, 't.yaml');
    fs.writeFileSync(y, 'name: demo\nirqchip:\n  kind: gicv4\ndevices:\n  - kind: virtio-net\n    backend: vhost\n');
    const t = loadTopologyFile(y);
    expect(t.irqchip.kind).toBe('gicv4');
    expect(t.devices[0]).toMatchObject({ kind: 'virtio-net', backend: 'vhost' });
    const j = path.join(dir, 't.json');
    fs.writeFileSync(j, JSON.stringify({ name: 'demo', seed: 7 }));
    expect(loadTopologyFile(j).seed).toBe(7);
    const bad = err(() => parseTopologyText('name: [unclosed\n', 'bad.yaml'));
    expect(bad.code).toBe('machine.topology-syntax');
    expect(bad.message).toMatch(/^bad\.yaml: not valid YAML\/JSON at line \d+, column \d+/);
    expect(err(() => loadTopologyFile(path.join(dir, 'missing.yaml'))).message).toMatch(/cannot read topology file/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every preset is a valid topology; the ARM presets differ from x86 only in the irqchip line', () => {
    for (const p of presetNames()) expect(() => preset(p)).not.toThrow();
    const x86 = presetDocument('x86-q35');
    for (const arm of ['arm-virt-gicv3', 'arm-virt-gicv4', 'arm-virt-gicv4.1']) {
      const a = presetDocument(arm);
      expect({ ...a, name: '', irqchip: {} }).toEqual({ ...x86, name: '', irqchip: {} });
    }
    expect(() => preset('x86-i440fx')).toThrow(expect.objectContaining({ code: 'machine.preset-unknown' }));
  });

  it('property: arbitrary JSON never escapes as anything but a VirqError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parseTopology(v);
        } catch (e) {
          expect(e).toBeInstanceOf(VirqError);
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.record({ irqchip: fc.record({ kind: fc.string() }), vcpus: fc.array(fc.record({ id: fc.integer(), hostCpu: fc.integer() })), devices: fc.array(fc.record({ kind: fc.constantFrom('virtio-net', 'vfio', 'serial', 'x'), queueSize: fc.integer() })) }, { requiredKeys: [] }), (v) => {
        try {
          parseTopology(v);
        } catch (e) {
          expect(e).toBeInstanceOf(VirqError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
