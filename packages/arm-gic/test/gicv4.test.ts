import { GuestMemory, TraceRecorder, createSimContext } from '@virq/core';
import {
  ArmHost, ArmVm, GICR_VLPI_FRAME, GICR_VPENDBASER, GICR_VPENDBASER_4_1_VGRP1EN, GICR_VPENDBASER_IDAI_DB, GICR_VPENDBASER_PENDING_LAST,
  GICR_VPENDBASER_VALID, GITS_SGIR, GITS_TYPER, ItsCommand, ItsOpcode, VirtualCpuInterface,
} from '@virq/arm-gic';
import { armMachine, assignedDevice, fnsOf, inOrder } from './helpers.js';

describe('GICv4 host ITS and redistributor (FACTS §13.2, §14.4–14.5)', () => {
  test('V* opcodes are the physical ones | 0x20 (except VMOVP, VSGI, INVDB); GITS_TYPER.Virtual on a v4 host ITS', () => {
    expect(ItsOpcode.VMOVI).toBe(ItsOpcode.MOVI | 0x20);
    expect(ItsOpcode.VMAPTI).toBe(ItsOpcode.MAPTI | 0x20);
    expect(ItsOpcode.VMAPI).toBe(ItsOpcode.MAPI | 0x20);
    expect(ItsOpcode.VSYNC).toBe(ItsOpcode.SYNC | 0x20);
    expect(ItsOpcode.VMAPP).toBe(0x29);
    expect(ItsOpcode.VINVALL).toBe(ItsOpcode.INVALL | 0x20);
    const ctx = createSimContext();
    expect((new ArmHost(ctx, { numCpus: 1, version: 'v4' }).its.read64(GITS_TYPER) >> 1n) & 1n).toBe(1n);
    expect((new ArmHost(ctx, { numCpus: 1, version: 'v3' }).its.read64(GITS_TYPER) >> 1n) & 1n).toBe(0n);
  });

  test('VMAPP/VMAPTI encodings: vPEID DW1 47:32, RDbase DW2 51:16, V DW2 63, VPT DW3 51:16; vINTID DW2 31:0, doorbell DW2 63:32', () => {
    const dv = (b: Uint8Array) => new DataView(b.buffer);
    const vmapp = dv(ItsCommand.vmapp(0x1234, 5, 0x7_0000, 16, true));
    expect(vmapp.getUint8(0)).toBe(0x29);
    expect(vmapp.getUint16(12, true)).toBe(0x1234);
    expect(vmapp.getBigUint64(16, true)).toBe((1n << 63n) | (5n << 16n));
    expect(vmapp.getBigUint64(24, true)).toBe((0x7n << 16n) | 15n);
    const vmapti = dv(ItsCommand.vmapti(0x10, 3, 7, 8200, 8300));
    expect(vmapti.getBigUint64(0, true)).toBe((0x10n << 32n) | 0x2an);
    expect(vmapti.getBigUint64(8, true)).toBe((7n << 32n) | 3n);
    expect(vmapti.getBigUint64(16, true)).toBe((8300n << 32n) | 8200n);
  });

  test('VPENDBASER (4.1): Valid makes the vPE resident; clearing it with DB arms the default doorbell, which fires once', () => {
    const ctx = createSimContext();
    const host = new ArmHost(ctx, { numCpus: 1, version: 'v4.1' });
    const [db] = host.allocLpis(1);
    let doorbells = 0;
    host.requestIrq(db, 'vpe-db', () => {
      doorbells++;
      return 'handled';
    });
    const vpt = host.allocPages(1);
    host.driver.send('its_send_vmapp', ItsCommand.vmapp(3, 0, vpt, 16, true, db));
    host.mapDevice(0x20, 2, 0);
    host.driver.send('its_send_discard', ItsCommand.discard(0x20, 0));
    host.driver.send('its_send_vmapti', ItsCommand.vmapti(0x20, 0, 3, 8500, 1023));
    const rd = host.gic.redistributors[0];
    const vpe = host.gic.vpes.get(3)!;
    rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_VALID | GICR_VPENDBASER_4_1_VGRP1EN | 3n);
    expect(vpe.resident).toBe(true);
    expect(host.deviceMsi(0x20, 0)).toBe('vlpi-direct');
    vpe.clearPending(8500);
    rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_IDAI_DB); // Valid = 0, DB = 1
    expect(vpe.resident).toBe(false);
    expect(rd.read64(GICR_VLPI_FRAME + GICR_VPENDBASER) & GICR_VPENDBASER_PENDING_LAST).toBe(0n);
    expect(host.deviceMsi(0x20, 0)).toBe('vlpi-doorbell');
    expect(host.deviceMsi(0x20, 0)).toBe('vlpi-latched'); // one doorbell per deschedule
    ctx.scheduler.runUntilIdle();
    expect(doorbells).toBe(1);
    expect(host.memory.read8(vpt + (8500 >> 3)) & (1 << (8500 & 7))).not.toBe(0);
    // back on: PendingLast is not needed on 4.1 — the VPT is found through the vPE table
    rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_VALID | 3n);
    const cpuif = new VirtualCpuInterface(4);
    cpuif.vpmr = 0xf0;
    cpuif.veng1 = true;
    cpuif.vpe = vpe;
    expect(cpuif.iar1()).toBe(8500);
    expect(host.memory.read8(vpt + (8500 >> 3)) & (1 << (8500 & 7))).toBe(0);
  });

  test('GICv4.1 vSGI: VSGI configures it, GITS_SGIR delivers it to the resident vPE', () => {
    const ctx = createSimContext();
    const host = new ArmHost(ctx, { numCpus: 1, version: 'v4.1' });
    host.driver.send('its_send_vmapp', ItsCommand.vmapp(1, 0, host.allocPages(1), 16, true, 1023));
    host.driver.send('its_send_vsgi', ItsCommand.vsgi(1, 5, { enable: true, priority: 0x40, group: 1 }));
    host.gic.redistributors[0].write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_VALID | 1n);
    const vpe = host.gic.vpes.get(1)!;
    const cpuif = new VirtualCpuInterface(4);
    cpuif.vpmr = 0xf0;
    cpuif.veng1 = true;
    cpuif.vpe = vpe;
    host.its.write64(GITS_SGIR, (1n << 32n) | 5n); // vPEID 47:32, vINTID 3:0
    expect(vpe.priorityOf(5)).toBe(0x40);
    expect(cpuif.iar1()).toBe(5);
  });
});

describe('KVM GICv4 forwarding follows guest ITS commands', () => {
  test('guest MOVI of a forwarded LPI to another vCPU re-maps the vLPI with VMOVI to that vCPU\'s vPE', () => {
    const r = armMachine('v4', { numVcpus: 2, hostCpus: 3 });
    const { ctx, vm, host } = r;
    const dev = assignedDevice(r, 0x600, 2, 0);
    vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0]);
    for (const v of vm.vcpus) v.guest.idleWithWfi = false;
    const got: number[] = [];
    vm.vcpus[1].onInterrupt(dev.guestLpi, () => got.push(1));
    vm.vcpus[0].onInterrupt(dev.guestLpi, () => got.push(0));
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    vm.guestDriver.its.send('its_send_movi', ItsCommand.movi(0x600, 0, 1)); // collection 1 = vCPU 1
    expect(inOrder(fnsOf(rec.events), ['vgic_its_handle_command', 'its_send_vmovi'])).toBe(true);
    expect(host.its.devices.get(0x600)!.ites.get(0)!.vpeId).toBe(vm.vcpus[1].vpe!.id);
    const nic = ctx.scheduler.actor({ name: 'nic', kind: 'device', cpu: 2 });
    const e0 = vm.exitCounts().total;
    ctx.scheduler.at(60_000, nic, () => host.deviceMsi(0x600, 0));
    ctx.scheduler.runUntil(100_000);
    expect(got).toEqual([1]);
    expect(vm.exitCounts().total).toBe(e0);
  });

  test('an interrupt the guest left pending before forwarding is moved into hardware (its_send_int)', () => {
    const r = armMachine('v4', { numVcpus: 1, hostCpus: 2 });
    const { ctx, vm } = r;
    const dev = assignedDevice(r, 0x700, 1);
    vm.vgic.gic.lpis.get(dev.guestLpi)!.pendingLatch = true; // pending in software (vgic_irq.pending_latch)
    const rec = new TraceRecorder(ctx.trace.events$);
    vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0]);
    expect(inOrder(fnsOf(rec.events), ['its_send_vmapti', 'its_send_int'])).toBe(true);
    expect(vm.vcpus[0].vpe!.pending.has(dev.guestLpi)).toBe(true);
    expect(vm.vgic.gic.lpis.get(dev.guestLpi)!.pendingLatch).toBe(false);
  });
});

test('a GICv4 VM on a GICv3 host is refused with a message saying what to change', () => {
  const ctx = createSimContext();
  const host = new ArmHost(ctx, { numCpus: 1, version: 'v3' });
  expect(() => new ArmVm(ctx, { numVcpus: 1, gic: 'v4', host, memory: GuestMemory.ofSize(0x800000) })).toThrow(/needs a host GIC v4/);
});
