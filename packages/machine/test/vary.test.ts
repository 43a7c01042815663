import { applyVary, expandMatrix, parseTopology, parseVary, presetDocument } from '../src/index.js';

describe('--vary', () => {
  it('parses key=values and rejects bad ones with the keys listed', () => {
    expect(parseVary('irqfd=on,off')).toEqual({ key: 'irqfd', values: ['on', 'off'] });
    expect(() => parseVary('irqfd')).toThrow(/key=value1,value2/);
    expect(() => parseVary('bogus=1,2')).toThrow(/unknown key "bogus"; keys: irqfd, ioeventfd/);
    expect(() => parseVary('irqfd=on,maybe')).toThrow(/"maybe" is not one of on, off/);
    expect(() => parseVary('irqfd=on,on')).toThrow(/repeated/);
    expect(parseVary('cost.vmExit=400,800').values).toEqual(['400', '800']);
  });

  it('expands the matrix first dimension slowest', () => {
    expect(expandMatrix([parseVary('irqfd=on,off'), parseVary('posted=on,off')])).toEqual([
      { irqfd: 'on', posted: 'on' },
      { irqfd: 'on', posted: 'off' },
      { irqfd: 'off', posted: 'on' },
      { irqfd: 'off', posted: 'off' },
    ]);
  });

  it('each knob edits the topology it names', () => {
    const d = presetDocument('x86-q35');
    applyVary(d, 'irqfd', 'off');
    applyVary(d, 'event_idx', 'off');
    applyVary(d, 'irqchip', 'gicv4');
    applyVary(d, 'backend', 'vhost');
    applyVary(d, 'vcpus', '4');
    applyVary(d, 'cost.vmExit', '900');
    applyVary(d, 'workload.rxPacketsPerSec', '5000');
    const t = parseTopology(d);
    expect(t.routing.irqfd).toBe(false);
    expect(t.irqchip.kind).toBe('gicv4');
    expect(t.vcpus).toHaveLength(4);
    expect(t.costs).toEqual({ vmExit: 900 });
    expect(t.workload.rxPacketsPerSec).toBe(5000);
    const net = t.devices.find((x) => x.kind === 'virtio-net');
    expect(net).toMatchObject({ eventIdx: false, backend: 'vhost' });
  });
});
