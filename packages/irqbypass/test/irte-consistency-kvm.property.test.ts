import { EventFd, type MsiMessage } from '@virq/core';
import { VfioIrqSetFlag, VfioPciIrqIndex, x86MsiFixed } from '@virq/irqbypass';
import fc from 'fast-check';
import { KvmRig } from './support/kvm-rig.js';

const N = 3;

type Op =
  | { kind: 'assign' | 'deassign' | 'unroute'; v: number }
  | { kind: 'trigger'; v: number; which: 'irqfd' | 'other' | 'none' }
  | { kind: 'route'; v: number; target: number }
  | { kind: 'hlt'; vcpu: number }
  | { kind: 'fire'; v: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('assign' as const), v: fc.nat(N - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('deassign' as const, 'unroute' as const), v: fc.nat(N - 1) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('trigger' as const), v: fc.nat(N - 1), which: fc.constantFrom('irqfd' as const, 'irqfd' as const, 'other' as const, 'none' as const) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('route' as const), v: fc.nat(N - 1), target: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('hlt' as const), vcpu: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fire' as const), v: fc.nat(N - 1) }) },
);

/** 0–3 one vCPU, 4 logical flat to vCPUs 0 and 1, 5 NMI, 6 an APIC id no vCPU has. */
function msiFor(target: number, vector: number): MsiMessage {
  if (target < 4) return x86MsiFixed(target, vector);
  if (target === 4) return { addressLo: 0xfee00000 | (0x3 << 12) | 4, addressHi: 0, data: vector };
  if (target === 5) return { addressLo: 0xfee00000 | (1 << 12), addressHi: 0, data: 0x400 | vector };
  return x86MsiFixed(0x30, vector);
}

describe('property (real kvm-irqchip): IRTEs follow routes under random interleavings, and every device interrupt is delivered', () => {
  test('register/unregister/route changes/halts/fires', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 25 }), (ops) => {
        const rig = new KvmRig({ vcpus: 4, vectors: N });
        // Flat logical destinations for target 4: LDR bit n for vCPU n.
        for (const v of rig.vm.vcpus()) v.lapic.regWrite(0xd0, (1 << v.vcpuId) << 24);
        const kvmFd = Array.from({ length: N }, (_, i) => new EventFd(rig.ctx.scheduler, { name: `kvm_interrupt${i}` }));
        const otherFd = Array.from({ length: N }, (_, i) => new EventFd(rig.ctx.scheduler, { name: `interrupt${i}` }));
        const gsi = Array.from({ length: N }, (_, i) => rig.routes.addMsiRoute(msiFor(i, 0x40 + i)));
        rig.routes.commit();
        const assigned = new Set<number>();
        const target: number[] = [0, 1, 2];
        const routed = new Set([0, 1, 2]);
        const trig: (EventFd | null)[] = [null, null, null];
        const table = () => gsi.flatMap((g, i) => (routed.has(i) ? [{ gsi: g, type: 'msi' as const, msi: msiFor(target[i]!, 0x40 + i) }] : []));
        for (const op of ops) {
          switch (op.kind) {
            case 'assign':
              if (!assigned.has(op.v)) rig.vm.irqfd({ fd: kvmFd[op.v]!, gsi: gsi[op.v]! });
              assigned.add(op.v);
              break;
            case 'deassign':
              if (assigned.has(op.v)) rig.vm.irqfd({ fd: kvmFd[op.v]!, gsi: gsi[op.v]!, deassign: true });
              assigned.delete(op.v);
              break;
            case 'trigger': {
              const fd = op.which === 'irqfd' ? kvmFd[op.v]! : op.which === 'other' ? otherFd[op.v]! : null;
              if (fd === null && rig.vfio.type === 'none') break;
              rig.vfio.setIrqs({ flags: VfioIrqSetFlag.DATA_EVENTFD | VfioIrqSetFlag.ACTION_TRIGGER, index: VfioPciIrqIndex.MSIX, start: op.v, count: 1, data: [fd] });
              trig[op.v] = fd;
              break;
            }
            case 'route':
              target[op.v] = op.target;
              routed.add(op.v);
              rig.vm.setGsiRouting(table());
              break;
            case 'unroute':
              routed.delete(op.v);
              rig.vm.setGsiRouting(table());
              break;
            case 'hlt':
              rig.guest.queue(op.vcpu, { op: 'hlt' });
              break;
            case 'fire': {
              // Only a vector whose interrupt has a defined single-vCPU fate is checked for delivery.
              const fd = trig[op.v];
              const deliverable = fd === kvmFd[op.v] && assigned.has(op.v) && routed.has(op.v) && target[op.v]! < 4;
              const before = rig.guest.taken.filter((t) => t.vector === 0x40 + op.v).length;
              rig.fire(op.v);
              rig.advance(100_000);
              const after = rig.guest.taken.filter((t) => t.vector === 0x40 + op.v);
              if (deliverable) {
                expect(after.length).toBe(before + 1);
                expect(after.at(-1)!.vcpu).toBe(target[op.v]);
              }
              break;
            }
          }
          rig.advance(5_000);
          const bad = rig.host.irteViolations(rig.vm.irqfds.items);
          if (bad.length > 0) throw new Error(`after ${JSON.stringify(op)}: ${bad.join('; ')}`);
        }
      }),
      { numRuns: 150, seed: 11 },
    );
  });
});
