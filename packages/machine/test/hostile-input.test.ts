import { VirqError } from '@virq/core';
import { compareTopologies, expandMatrix, parseTopologyText, parseVary, presetDocument, runTopology } from '../src/index.js';

/** The error a bad topology text gives: a VirqError with a code (never a stack trace from a dependency). */
function errorOf(text: string): VirqError {
  try {
    parseTopologyText(text, 'hostile.yaml');
  } catch (e) {
    if (e instanceof VirqError) return e;
    throw new Error(`not a VirqError: ${String(e)}`);
  }
  throw new Error('accepted');
}

const list = (n: number, f: (i: number) => string): string => `[${Array.from({ length: n }, (_, i) => f(i)).join(',')}]`;

describe('hostile topology text', () => {
  it('an alias bomb is a syntax error, not the yaml library\'s ReferenceError', () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]'].join('\n');
    const e = errorOf(bomb);
    expect(e.code).toBe('machine.topology-syntax');
    expect(e.message).toMatch(/^hostile\.yaml: .*alias/i);
  });

  it('an unresolved tag (!!js/function) is refused instead of silently becoming a string', () => {
    expect(errorOf('name: !!js/function "x"\n').code).toBe('machine.topology-syntax');
  });

  it('duplicate keys and non-finite numbers name what is wrong', () => {
    expect(errorOf('name: a\nname: b\n').message).toMatch(/unique/);
    expect(errorOf('durationUs: 1e400\n').message).toBe('topology.durationUs: expected an integer in [1, 60000000], got Infinity');
  });

  it('costs named after Object.prototype members are unknown costs', () => {
    for (const k of ['constructor', 'toString', 'hasOwnProperty']) expect(errorOf(`costs: { ${k}: 1 }\n`).message).toMatch(new RegExp(`^topology\\.costs\\.${k}: unknown cost`));
  });

  it('more vCPUs than the architecture addresses: a path and the reason (xAPIC 8-bit IDs; KVM vGICv3 512)', () => {
    const x86 = errorOf(`vcpus: ${list(256, (i) => `{id: ${i}}`)}\n`);
    expect(x86.message).toMatch(/^topology\.vcpus: 256 vCPUs on kvm-x86; at most 255/);
    expect(errorOf(`irqchip: {kind: gicv4}\nvcpus: ${list(513, (i) => `{id: ${i}}`)}\n`).message).toMatch(/^topology\.vcpus: 513 vCPUs on gicv4; at most 512/);
    expect(errorOf(`vcpus: ${list(5000, (i) => `{id: ${i}}`)}\n`).message).toMatch(/^topology\.vcpus: expected a list of 1 to 4096/);
  });

  it('512 vCPUs with 2,048 VFIO vectors each aimed at a named vCPU: validated and run without hanging', () => {
    const text = `irqchip: {kind: gicv3}\ndurationUs: 20\nvcpus: ${list(512, (i) => `{id: ${i}, hostCpu: ${i % 4}}`)}\ndevices: [{kind: vfio, vectors: 2048, targetVcpus: ${list(2048, (i) => String(i % 512))}}]\nworkload: {rxPacketsPerSec: 0, txPacketsPerSec: 0}\n`;
    const r = runTopology(parseTopologyText(text));
    expect(r.metrics.virtualTimeNs).toBe(20_000);
  });

  it('targetVcpus names vCPU ids, which the machine turns into its own vCPU positions', () => {
    const t = parseTopologyText('durationUs: 200\nvcpus: [{id: 10, hostCpu: 1}, {id: 20, hostCpu: 2}]\ndevices: [{kind: vfio, vectors: 2, targetVcpus: [20]}]\nworkload: {rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 50000}\n');
    const d = t.devices[0]!;
    expect(d.kind === 'vfio' && d.targetVcpus).toEqual([1]);
    // Before, id 20 was used as a position: the machine indexed a vCPU that does not exist.
    const r = runTopology(t);
    // Exits per vCPU are reported by the topology's ids, not by position.
    expect(Object.keys(r.metrics.exits.perVcpu).sort()).toEqual(['10', '20']);
  });
});

describe('UART IRQs', () => {
  it('two UARTs on one IRQ, or a UART on the PC timer/cascade IRQ, are refused with the path', () => {
    expect(errorOf('devices: [{kind: serial, name: a, irq: 4}, {kind: serial, name: b, irq: 4}]\n').message).toMatch(/^topology\.devices\(a\)\.irq: IRQ 4 is also b's/);
    expect(errorOf('devices: [{kind: serial, irq: 0}]\n').message).toMatch(/^topology\.devices\(serial0\)\.irq: IRQ 0 is taken on a PC/);
    expect(() => parseTopologyText('irqchip: {kind: gicv3}\ndevices: [{kind: serial, irq: 0}]\n')).not.toThrow(); // an SPI on ARM
  });
});

describe('resources a topology asks for', () => {
  it('more PCI devices than slots, ARM host CPUs past 511, and in-flight I/O beyond guest RAM are path errors', () => {
    const many = Array.from({ length: 30 }, () => '{kind: virtio-net}').join(',');
    expect(errorOf(`devices: [${many}]\n`).message).toMatch(/^topology\.devices: 30 PCI devices .* 29 free slots/);
    expect(errorOf('irqchip: {kind: gicv3}\nvcpus: [{id: 0, hostCpu: 4000}]\n').message).toMatch(/^topology\.vcpus\[0\]\.hostCpu: expected an integer in \[0, 511\] on ARM/);
    expect(errorOf('devices: [{kind: virtio-blk, queueSize: 32768}]\nworkload: {ioDepth: 65536}\n').message).toMatch(/^topology\.workload\.ioDepth: 32768 in-flight/);
  });

  it('ioDepth beyond the queue size runs with a queue\'s worth in flight (blk-mq tag depth) and says so', () => {
    const r = runTopology(parseTopologyText('durationUs: 100\ndevices: [{kind: virtio-blk, queueSize: 8}]\nworkload: {ioDepth: 64}\n'));
    expect(r.notes).toContain('blk0: workload.ioDepth 64 exceeds the queue size; 8 requests in flight');
  });
});

describe('guest RAM size', () => {
  it('2 GiB and 4 GiB of guest RAM are what they say (memoryMiB << 20 overflowed 32 bits to a negative or zero size)', () => {
    for (const mib of [2048, 4096]) {
      const r = runTopology(parseTopologyText(`memoryMiB: ${mib}\ndurationUs: 5\ndevices: []\n`));
      expect(r.metrics.virtualTimeNs).toBe(5000);
    }
    expect(errorOf('memoryMiB: 4097\n').message).toBe('topology.memoryMiB: expected an integer in [1, 4096], got 4097');
  });
});

describe('hostile --vary', () => {
  it('a matrix of millions of cells fails before the cells are built', () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1)).join(',');
    const dims = [parseVary(`seed=${values(1000)}`), parseVary(`workload.rxPacketsPerSec=${values(1000)}`), parseVary(`cost.vmExit=${values(1000)}`)];
    expect(() => expandMatrix(dims)).toThrow(/at most 4096/);
  });

  it('the same key twice is refused (its cells would collapse onto one label)', () => {
    expect(() => expandMatrix([parseVary('seed=1,2'), parseVary('seed=3')])).toThrow(/given twice/);
  });

  it('a cell that fails validation names the cell', async () => {
    const doc = presetDocument('x86-q35');
    await expect(compareTopologies(doc, [parseVary('vcpus=2,300')], { workers: 0 })).rejects.toThrow(/^cell vcpus=300: topology\.vcpus: 300 vCPUs on kvm-x86/);
  });
});
