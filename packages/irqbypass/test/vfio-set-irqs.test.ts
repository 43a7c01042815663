import { EventFd, VirqError, type SimContext } from '@virq/core';
import { VFIO_DEVICE_SET_IRQS, VfioIrqInfoFlag, VfioIrqSetFlag as F, VfioPciIrqIndex as I, type VfioIrqSet } from '@virq/irqbypass';
import { Rig } from './support/rig.js';

function errOf(f: () => void): VirqError {
  try {
    f();
  } catch (e) {
    if (e instanceof VirqError) return e;
    throw e;
  }
  throw new Error('expected a VirqError');
}

function fds(ctx: SimContext, n: number): EventFd[] {
  return Array.from({ length: n }, (_, i) => new EventFd(ctx.scheduler, { name: `t${i}` }));
}

describe('VFIO_DEVICE_SET_IRQS (vfio_pci_intrs.c, FACTS §9.3)', () => {
  test('the ioctl number is _IO(";", 100 + 10)', () => {
    expect(VFIO_DEVICE_SET_IRQS).toBe((0x3b << 8) | 110);
  });

  test('GET_IRQ_INFO: INTx is maskable and automasked, MSI-X resizable, counts from the device', () => {
    const rig = new Rig({ msixVectors: 5 });
    expect(rig.vfio.getIrqInfo(I.INTX)).toEqual({ index: 0, count: 1, flags: VfioIrqInfoFlag.EVENTFD | VfioIrqInfoFlag.MASKABLE | VfioIrqInfoFlag.AUTOMASKED });
    expect(rig.vfio.getIrqInfo(I.MSIX)).toEqual({ index: 2, count: 5, flags: VfioIrqInfoFlag.EVENTFD });
    expect(rig.vfio.getIrqInfo(I.MSI).flags & VfioIrqInfoFlag.NORESIZE).toBe(VfioIrqInfoFlag.NORESIZE);
    expect(rig.vfio.getIrqInfo(I.ERR).count).toBe(1);
    expect(rig.vfio.getIrqInfo(I.REQ).count).toBe(1);
  });

  test.each<[string, Partial<VfioIrqSet>, string]>([
    ['index past REQ', { index: 5 }, 'EINVAL'],
    ['unknown flag bits', { flags: F.DATA_NONE | F.ACTION_TRIGGER | 0x80 }, 'EINVAL'],
    ['two data types', { flags: F.DATA_NONE | F.DATA_BOOL | F.ACTION_TRIGGER }, 'EINVAL'],
    ['start past the vectors', { start: 3, count: 1 }, 'EINVAL'],
    ['start + count past the vectors', { start: 2, count: 2 }, 'EINVAL'],
    ['too little data', { flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, count: 2, data: [null] }, 'EINVAL'],
    ['MASK on MSI-X', { flags: F.DATA_NONE | F.ACTION_MASK }, 'ENOTTY'],
    ['UNMASK on MSI-X', { flags: F.DATA_NONE | F.ACTION_UNMASK }, 'ENOTTY'],
    ['two actions', { flags: F.DATA_NONE | F.ACTION_MASK | F.ACTION_TRIGGER }, 'ENOTTY'],
  ])('rejects %s with %s', (_n, over, errno) => {
    const rig = new Rig({ msixVectors: 3 });
    const e = errOf(() => rig.vfio.setIrqs({ flags: F.DATA_NONE | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 1, ...over }));
    expect(e.details?.['errno']).toBe(errno);
  });

  test('TRIGGER + EVENTFD enables MSI-X: one host IRQ, handler and producer per vector; -1 leaves a vector unassigned', () => {
    const rig = new Rig({ msixVectors: 4 });
    const [a, b] = fds(rig.ctx, 2);
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 3, data: [a!, null, b!] });
    expect(rig.vfio.type).toBe('msix');
    expect(rig.vfio.triggerOf(0)).toBe(a);
    expect(rig.vfio.triggerOf(1)).toBeUndefined();
    expect(rig.vfio.triggerOf(2)).toBe(b);
    expect(rig.host.manager.producerCount).toBe(2);
    expect(rig.host.irqs.hasHandler(rig.vfio.hostIrqOf(0)!)).toBe(true);
    expect(rig.host.irqs.hasHandler(rig.vfio.hostIrqOf(1)!)).toBe(false);
    // The device fires vector 2: remapped → host IRQ → vfio_msihandler → eventfd_signal(b).
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(2));
    expect(b!.count).toBe(1n);
    expect(a!.count).toBe(0n);
    expect(rig.host.irqs.countOf(rig.vfio.hostIrqOf(2)!)).toBe(1);
  });

  test('MSI cannot be enabled while MSI-X is; DATA_NONE with count 0 disables the index and frees everything', () => {
    const rig = new Rig({ msixVectors: 2 });
    const [a] = fds(rig.ctx, 1);
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 1, data: [a!] });
    rig.vfio.setIrqs({ flags: F.DATA_NONE | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 0 });
    expect(rig.vfio.type).toBe('none');
    expect(rig.host.manager.producerCount).toBe(0);
    expect(rig.vfio.hostIrqOf(0)).toBeUndefined();
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 1, data: [a!] });
    expect(errOf(() => rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.INTX, start: 0, count: 1, data: [a!] })).errno).toBe('EINVAL');
  });

  test('loopback: DATA_NONE signals every trigger in range, DATA_BOOL only the true ones', () => {
    const rig = new Rig({ msixVectors: 3 });
    const t = fds(rig.ctx, 3);
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 3, data: t });
    rig.vfio.setIrqs({ flags: F.DATA_NONE | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 3 });
    rig.vfio.setIrqs({ flags: F.DATA_BOOL | F.ACTION_TRIGGER, index: I.MSIX, start: 1, count: 2, data: [false, true] });
    expect(t.map((f) => f.count)).toEqual([1n, 1n, 2n]);
  });

  test('the same eventfd on two vectors: the second producer registration fails (EBUSY) and is only logged', () => {
    const rig = new Rig({ msixVectors: 2 });
    const [a] = fds(rig.ctx, 1);
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 2, data: [a!, a!] });
    expect(rig.vfio.producerRegistrationFailures).toBe(1);
    expect(rig.vfio.producerOf(1)!.token).toBeNull();
    rig.on(rig.vfio.device.actor.name, () => rig.vfio.device.fireMsix(1));
    expect(a!.count).toBe(1n);
  });

  test('ERR and REQ: an eventfd trigger is signalled on AER errors / release requests; DATA_NONE count 0 clears it', () => {
    const rig = new Rig({ msixVectors: 1 });
    const [err, req] = fds(rig.ctx, 2);
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.ERR, start: 0, count: 1, data: [err!] });
    rig.vfio.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.REQ, start: 0, count: 1, data: [req!] });
    rig.vfio.reportError();
    rig.vfio.requestRelease();
    rig.vfio.setIrqs({ flags: F.DATA_BOOL | F.ACTION_TRIGGER, index: I.ERR, start: 0, count: 1, data: [true] });
    expect([err!.count, req!.count]).toEqual([2n, 1n]);
    rig.vfio.setIrqs({ flags: F.DATA_NONE | F.ACTION_TRIGGER, index: I.ERR, start: 0, count: 0 });
    rig.vfio.reportError();
    expect(err!.count).toBe(2n);
  });

  test('MSI: the block is allocated at enable (NORESIZE); a vector beyond it needs a disable/re-enable', () => {
    const rig = new Rig({ msixVectors: 1 });
    const dev = rig.host.assignDevice({ name: '0000:3c:00.0', requesterId: 0x3c00, msixVectors: 0, msiVectors: 4 });
    const t = fds(rig.ctx, 4);
    dev.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSI, start: 0, count: 2, data: [t[0]!, t[1]!] });
    expect(dev.type).toBe('msi');
    expect(dev.getIrqInfo(I.MSI)).toMatchObject({ count: 4 });
    rig.on(dev.device.actor.name, () => dev.device.fireMsi(1));
    expect(t[1]!.count).toBe(1n);
    expect(errOf(() => dev.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSI, start: 3, count: 1, data: [t[3]!] })).code).toBe('vfio.no-vector');
    // MSI-X on a device without MSI-X: no interrupts at that index.
    expect(errOf(() => dev.setIrqs({ flags: F.DATA_EVENTFD | F.ACTION_TRIGGER, index: I.MSIX, start: 0, count: 1, data: [t[2]!] })).errno).toBe('EINVAL');
  });
});
