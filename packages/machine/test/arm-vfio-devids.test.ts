import { createSimContext } from '@virq/core';
import { ArmMachine } from '../src/arm/arm-machine.js';
import { parseTopologyText } from '../src/topology-file.js';

describe('ARM assigned devices: every vector keeps its own vITS DeviceID', () => {
  it('two VFIO functions of 300 vectors: a fire on the first one\'s vector 256 reaches that vector\'s handler', () => {
    const t = parseTopologyText('irqchip: {kind: gicv3}\ndurationUs: 100\nvcpus: [{id: 0, hostCpu: 1}]\ndevices: [{kind: vfio, name: a, vectors: 300}, {kind: vfio, name: b, vectors: 300}]\nworkload: {rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, serialPerSec: 0}\n');
    const ctx = createSimContext({ seed: 1, costs: t.costs });
    const m = new ArmMachine(ctx, t);
    const handled: string[] = [];
    m.irqs.onLatency = (_ns, name) => handled.push(name);
    m.start();
    const a = m.vfios[0]!;
    for (const v of [0, 255, 256, 299]) {
      m.irqs.raised(a.targets[v]!.vcpu, a.targets[v]!.lpi, ctx.scheduler.now);
      m.host.deviceMsi(a.deviceId, v);
      ctx.scheduler.runUntil(ctx.scheduler.now + 20_000);
    }
    // With per-vector DeviceIDs of (index+1)<<8 + v + 1, a's vector 256 shared b's vector 0's DeviceID.
    expect(handled).toEqual(['a-msix0', 'a-msix255', 'a-msix256', 'a-msix299']);
  });
});
