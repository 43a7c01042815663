import { EventFd, type MsiMessage } from '@virq/core';
import { VfioIrqSetFlag, VfioPciIrqIndex, x86MsiFixed } from '@virq/irqbypass';
import fc from 'fast-check';
import { Rig } from './support/rig.js';

const N = 4;

type Op =
  | { kind: 'assign'; v: number }
  | { kind: 'deassign'; v: number }
  | { kind: 'trigger'; v: number; which: 'irqfd' | 'other' | 'none' }
  | { kind: 'route'; v: number; target: number }
  | { kind: 'unroute'; v: number }
  | { kind: 'sched'; vcpu: number; what: 'halt' | 'preempt' | 'resume' }
  | { kind: 'disable' };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('assign' as const), v: fc.nat(N - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deassign' as const), v: fc.nat(N - 1) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('trigger' as const), v: fc.nat(N - 1), which: fc.constantFrom('irqfd' as const, 'irqfd' as const, 'other' as const, 'none' as const) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('route' as const), v: fc.nat(N - 1), target: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unroute' as const), v: fc.nat(N - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sched' as const), vcpu: fc.nat(3), what: fc.constantFrom('halt' as const, 'preempt' as const, 'resume' as const) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'disable' as const }) },
);

/** Route targets: 0–3 a single vCPU (postable), 4 logical to two vCPUs, 5 NMI, 6 no such vCPU, 7 lowest priority to one vCPU. */
function msiFor(target: number, vector: number): MsiMessage {
  if (target < 4) return x86MsiFixed(target, vector);
  if (target === 4) return { addressLo: 0xfee00000 | (0x3 << 12) | 4, addressHi: 0, data: vector };
  if (target === 5) return { addressLo: 0xfee00000 | (1 << 12), addressHi: 0, data: 0x400 | vector };
  if (target === 6) return x86MsiFixed(0x30, vector);
  return { addressLo: 0xfee00000 | (2 << 12), addressHi: 0, data: 0x100 | vector };
}

function runOps(vendor: 'vmx' | 'avic', ops: readonly Op[]): void {
  const rig = new Rig({ vcpus: 4, msixVectors: N, vendor });
  for (const v of rig.kvm.vcpus()) v.run(v.vcpuId);
  const kvmFd = Array.from({ length: N }, (_, i) => new EventFd(rig.ctx.scheduler, { name: `kvm_interrupt${i}` }));
  const otherFd = Array.from({ length: N }, (_, i) => new EventFd(rig.ctx.scheduler, { name: `interrupt${i}` }));
  const gsi = Array.from({ length: N }, (_, i) => rig.routes.addMsiRoute(msiFor(i % 4, 0x40 + i)));
  rig.routes.commit();
  const assigned = new Set<number>();
  const routed = new Set<number>(gsi.map((_, i) => i));
  const trigger: (EventFd | null)[] = Array.from({ length: N }, () => null);
  const check = (after: Op | 'start'): void => {
    const bad = rig.host.irteViolations(rig.kvm.irqfdList());
    if (bad.length > 0) throw new Error(`after ${JSON.stringify(after)}: ${bad.join('; ')}`);
    // irqbypass pairing: connected exactly when a producer and a consumer share a token.
    let pairs = 0;
    for (let i = 0; i < N; i++) if (assigned.has(i) && trigger[i] === kvmFd[i]) pairs++;
    expect(rig.host.manager.connectedCount).toBe(pairs);
  };
  check('start');
  for (const op of ops) {
    switch (op.kind) {
      case 'assign':
        if (!assigned.has(op.v)) {
          rig.kvm.irqfd({ fd: kvmFd[op.v]!, gsi: gsi[op.v]! });
          assigned.add(op.v);
        }
        break;
      case 'deassign':
        if (assigned.has(op.v)) {
          rig.kvm.irqfd({ fd: kvmFd[op.v]!, gsi: gsi[op.v]!, deassign: true });
          assigned.delete(op.v);
        }
        break;
      case 'trigger': {
        const fd = op.which === 'irqfd' ? kvmFd[op.v]! : op.which === 'other' ? otherFd[op.v]! : null;
        if (fd === null && rig.vfio.type === 'none') break;
        rig.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER, index: VfioPciIrqIndex.MSIX, start: op.v, count: 1, data: [fd] });
        trigger[op.v] = fd;
        break;
      }
      case 'route':
        if (routed.has(op.v)) rig.routes.updateMsiRoute(gsi[op.v]!, msiFor(op.target, 0x40 + op.v));
        else {
          // Re-add at the same GSI through the raw ioctl (QEMU would allocate a new virq).
          const entries = rig.routes.entries();
          rig.kvm.setGsiRouting([...entries, { gsi: gsi[op.v]!, type: 'msi', msi: msiFor(op.target, 0x40 + op.v) }]);
          break;
        }
        rig.routes.commit();
        break;
      case 'unroute':
        rig.kvm.setGsiRouting(rig.routes.entries().filter((e) => e.gsi !== gsi[op.v]));
        routed.delete(op.v);
        break;
      case 'sched': {
        const v = rig.kvm.vcpu(op.vcpu)!;
        rig.ctx.scheduler.after(0, v.actor, () => (op.what === 'halt' ? v.halt() : op.what === 'preempt' ? v.preempt() : v.resume()));
        break;
      }
      case 'disable':
        if (rig.vfio.type !== 'none') {
          rig.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_NONE | VfioIrqSetFlag.ACTION_TRIGGER, index: VfioPciIrqIndex.MSIX, start: 0, count: 0 });
          trigger.fill(null);
        }
        break;
    }
    rig.run();
    check(op);
  }
}

describe('property: every irqfd’s IRTE follows its current route, whatever the interleaving', () => {
  test.each(['vmx', 'avic'] as const)('%s: random register/unregister/route-change/scheduling sequences', (vendor) => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 40 }), (ops) => {
        runOps(vendor, ops);
      }),
      { numRuns: 400, seed: 7 },
    );
  });

  test('a hand-written interleaving that exercises every transition', () => {
    runOps('vmx', [
      { kind: 'trigger', v: 0, which: 'irqfd' },
      { kind: 'assign', v: 0 },
      { kind: 'route', v: 0, target: 4 },
      { kind: 'route', v: 0, target: 1 },
      { kind: 'unroute', v: 0 },
      { kind: 'route', v: 0, target: 2 },
      { kind: 'assign', v: 1 },
      { kind: 'trigger', v: 1, which: 'other' },
      { kind: 'trigger', v: 1, which: 'irqfd' },
      { kind: 'sched', vcpu: 1, what: 'halt' },
      { kind: 'deassign', v: 0 },
      { kind: 'disable' },
    ]);
  });
});
