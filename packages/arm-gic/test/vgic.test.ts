import fc from 'fast-check';
import { EventFd, TraceRecorder, Tokens, VirqError, formatFtrace, msiMessage } from '@virq/core';
import {
  ArmGicTokens, GICD_TYPER, ItsCommand, ICH_HCR_NPIE, ICH_HCR_UIE, ICH_MISR_EOI, ICH_MISR_LRENP, KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_TYPE_PPI,
  KVM_ARM_IRQ_TYPE_SPI, LR_ACTIVE, LR_PENDING, VIRT_GIC_LAYOUT, VirtualCpuInterface, armIrqLine, decodeListRegister, encodeListRegister,
  registerArmGic, ArmVm, GuestGicDriver,
} from '@virq/arm-gic';
import { GuestMemory, createSimContext } from '@virq/core';
import { armMachine, assignedDevice, fnsOf, inOrder } from './helpers.js';

describe('list registers and the virtual CPU interface (FACTS §14.1)', () => {
  test('ICH_LR encoding: vINTID 31:0, pINTID 44:32, EOI 41, priority 55:48, Group 60, HW 61, State 63:62', () => {
    const v = encodeListRegister({ vintid: 27, pintid: 27, hw: true, eoi: false, group: 1, priority: 0xa0, state: LR_PENDING });
    expect(v).toBe((1n << 62n) | (1n << 61n) | (1n << 60n) | (0xa0n << 48n) | (27n << 32n) | 27n);
    expect(encodeListRegister({ vintid: 40, pintid: 0, hw: false, eoi: true, group: 1, priority: 0x80, state: LR_ACTIVE }))
      .toBe((1n << 63n) | (1n << 60n) | (0x80n << 48n) | (1n << 41n) | 40n);
    fc.assert(fc.property(
      fc.record({ vintid: fc.integer({ min: 0, max: 0xffffffff }), pintid: fc.integer({ min: 0, max: 0x1fff }), hw: fc.boolean(), eoi: fc.boolean(),
        group: fc.constantFrom(0 as const, 1 as const), priority: fc.integer({ min: 0, max: 255 }), state: fc.integer({ min: 0, max: 3 }) }),
      (lr) => {
        const d = decodeListRegister(encodeListRegister(lr));
        expect(d).toEqual({ ...lr, pintid: lr.hw ? lr.pintid : 0, eoi: lr.hw ? false : lr.eoi });
      }));
  });

  test('IAR picks the highest-priority *pending* LR below VPMR; EOI with no matching LR bumps EOIcount (LRENP); EISR/ELRSR', () => {
    const c = new VirtualCpuInterface(4);
    c.vpmr = 0xf0;
    c.veng1 = true;
    c.hcr = 1 | 4; // En | LRENPIE
    c.writeLr(0, encodeListRegister({ vintid: 40, pintid: 0, hw: false, eoi: true, group: 1, priority: 0xa0, state: LR_PENDING }));
    c.writeLr(1, encodeListRegister({ vintid: 41, pintid: 0, hw: false, eoi: false, group: 1, priority: 0x80, state: LR_PENDING | LR_ACTIVE }));
    c.writeLr(2, encodeListRegister({ vintid: 42, pintid: 0, hw: false, eoi: false, group: 1, priority: 0xf0, state: LR_PENDING }));
    expect(c.vtr & 0x1f).toBe(3); // ListRegs = nr_lr − 1
    expect(c.elrsr).toBe(0b1000);
    expect(c.iar1()).toBe(40); // 41 is pending+active (not a candidate), 42 not below VPMR
    expect(c.iar1()).toBe(1023);
    c.eoir1(40);
    expect(c.eisr).toBe(0b0001); // invalid, HW = 0, EOI = 1
    expect(c.misr & ICH_MISR_EOI).toBe(ICH_MISR_EOI);
    expect(c.maintenance).toBe(true);
    c.eoir1(77); // not in any LR
    expect(c.eoiCount).toBe(1);
    expect(c.misr & ICH_MISR_LRENP).toBe(ICH_MISR_LRENP);
    c.eoir1(8200); // an LPI not in the LRs does not bump EOIcount
    expect(c.eoiCount).toBe(1);
  });
});

describe('KVM vGIC: flush, fold, maintenance', () => {
  test('more pending interrupts than LRs: UIE/NPIE, maintenance exits, all delivered in priority order', () => {
    const { ctx, vm } = armMachine('v3', { numVcpus: 1, nrLr: 2 });
    const got: number[] = [];
    const intids = [40, 41, 42, 43, 44];
    const prios = [0xa0, 0x60, 0x80, 0x40, 0x90];
    intids.forEach((i, k) => {
      vm.guestDriver.enableSpi(i, { trigger: 'edge', priority: prios[k] });
      vm.vcpus[0].onInterrupt(i, (x) => got.push(x));
    });
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    const qemu = ctx.scheduler.actor({ name: 'qemu-system-aarch64', kind: 'vmm-main', cpu: 1 });
    ctx.scheduler.at(60_000, qemu, () => {
      for (const i of intids) vm.interruptApi.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_SPI, 0, i), true);
    });
    ctx.scheduler.runUntil(400_000);
    expect(got).toEqual([43, 41, 42, 44, 40]);
    const hcr = rec.events.find((e) => e.fn === 'vgic_v3_configure_hcr')!.args['hcr'] as number;
    expect(hcr & ICH_HCR_UIE).toBe(ICH_HCR_UIE);
    expect(hcr & ICH_HCR_NPIE).toBe(ICH_HCR_NPIE);
    expect(vm.vcpus[0].stats.maintenance).toBeGreaterThan(0);
    expect(rec.events.filter((e) => e.fn === 'kvm_exit' && e.args['detail'] === 'maintenance').length).toBeGreaterThan(0);
  });

  test('level SPI with an irqfd resampler: EOI maintenance → kvm_notify_acked_irq → resamplefd signalled, line deasserted', () => {
    const r = armMachine('v3', { numVcpus: 1 });
    const { ctx, vm } = r;
    vm.guestDriver.enableSpi(35, { trigger: 'level' });
    const fd = new EventFd(ctx.scheduler, { name: 'intx-trigger' });
    const resample = new EventFd(ctx.scheduler, { name: 'intx-resample' });
    vm.interruptApi.irqfd({ fd, gsi: 3, resampleFd: resample });
    let got = 0;
    vm.vcpus[0].onInterrupt(35, () => got++);
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    const vfio = ctx.scheduler.actor({ name: 'irq/45-vfio', kind: 'kernel', cpu: 2 });
    ctx.scheduler.at(60_000, vfio, () => fd.write(1));
    ctx.scheduler.runUntil(200_000);
    if (process.env['DBG']) console.log(formatFtrace(rec.events));
    expect(got).toBe(1);
    expect(resample.count).toBe(1n);
    expect(vm.gic.spis[3].lineLevel).toBe(false);
    const lr = rec.events.find((e) => e.fn === 'vgic_v3_populate_lr')!.args['value'] as bigint;
    expect((lr >> 41n) & 1n).toBe(1n); // EOI bit: KVM wants a maintenance exit on deactivation
    expect(inOrder(fnsOf(rec.events), ['gic_eoi_irq', 'kvm_exit', 'vgic_v3_fold_lr_state', 'kvm_notify_acked_irq', 'irqfd_resampler_ack'])).toBe(true);
    expect(rec.events.find((e) => e.fn === 'kvm_exit' && e.args['detail'] === 'maintenance')).toBeDefined();
    // the maintenance interrupt is PPI 25 of the host CPU, taken by the host on the exit path
    const mi = rec.events.find((e) => e.fn === 'generic_handle_domain_irq' && e.args['intid'] === 25)!;
    expect(mi.args['handler']).toBe('vgic_maintenance_handler');
    expect(mi.actor.name).toBe('CPU 0/KVM');
    expect(r.host.gic.irqFor(25, 0)!.state).toBe('inactive');
  });

  test('an interrupt queued between the vGIC flush and the entry cancels the entry (kvm_vcpu_exit_request): taken, not left pending', () => {
    const { ctx, vm } = armMachine('v3', { numVcpus: 1 });
    vm.guestDriver.enableSgis();
    vm.guestDriver.enableSpi(40, { trigger: 'edge' });
    const got: number[] = [];
    vm.vcpus[0].onInterrupt(40, (i) => got.push(i));
    vm.vcpus[0].guest.idleWithWfi = false; // a busy guest: it exits only when KVM makes it
    ctx.scheduler.runUntil(50_000);
    const qemu = ctx.scheduler.actor({ name: 'qemu-system-aarch64', kind: 'vmm-main', cpu: 1 });
    let injected = false;
    const sub = ctx.trace.events$.subscribe((e) => {
      // Right after the flush of the exit below, while the vCPU is still outside guest mode.
      if (!injected && e.fn === 'kvm_vgic_flush_hwstate' && e.args['vcpu'] === 0) {
        injected = true;
        ctx.scheduler.after(1, qemu, () => void vm.interruptApi.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_SPI, 0, 40), true));
      }
    });
    vm.vcpus[0].guestSendSgi((2n << 24n) | 0b1n); // an exit (SYS64) to get a flush → entry window
    ctx.scheduler.runUntil(2_000_000);
    sub.unsubscribe();
    expect(injected).toBe(true);
    expect(got).toEqual([40]);
    expect(vm.vcpus[0].vgicCpu.apList.filter((i) => i.pending)).toEqual([]);
  });

  test('SGI through a trapped ICC_SGI1R_EL1 write (SYS64 exit) reaches the other vCPU', () => {
    const { ctx, vm } = armMachine('v3', { numVcpus: 2 });
    vm.guestDriver.enableSgis();
    const got: number[] = [];
    vm.vcpus[1].onInterrupt(2, (i) => got.push(i));
    vm.vcpus[0].guest.idleWithWfi = false;
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    vm.vcpus[0].guestSendSgi((2n << 24n) | 0b10n); // SGI 2, Aff1 = 0, TargetList bit 1 → vCPU 1
    ctx.scheduler.runUntil(100_000);
    expect(got).toEqual([2]);
    expect(vm.vcpus[0].exits.SYS64).toBe(1);
    expect(inOrder(fnsOf(rec.events), ['kvm_exit', 'vgic_v3_dispatch_sgi', 'vgic_queue_irq_unlock', 'kvm_vcpu_kick', 'kvm_vcpu_wakeup', 'gic_handle_irq'])).toBe(true);
  });

  test('guest MMIO: GICD reads are emulated in the kernel (DABT_LOW); an ioeventfd address signals its eventfd', () => {
    const { ctx, vm } = armMachine('v3', { numVcpus: 1 });
    const kick = new EventFd(ctx.scheduler, { name: 'vq0-kick' });
    vm.interruptApi.ioeventfd({ fd: kick, addr: 0x1000_3000, len: 2, space: 'mmio', datamatch: 0 });
    vm.vcpus[0].guest.idleWithWfi = false;
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    let typer = -1n;
    vm.vcpus[0].guestMmio({ addr: VIRT_GIC_LAYOUT.distBase + GICD_TYPER, len: 4, write: false, value: 0n, done: (v) => { typer = v; } });
    vm.vcpus[0].guestMmio({ addr: 0x1000_3000, len: 2, write: true, value: 0n }); // virtio notify, queue 0
    vm.vcpus[0].guestMmio({ addr: 0x1000_3000, len: 2, write: true, value: 1n }); // datamatch fails: out to QEMU
    ctx.scheduler.runUntil(100_000);
    expect(Number(typer) & 0x1f).toBe(2); // 64 SPIs
    expect(kick.count).toBe(1n);
    expect(vm.vcpus[0].exits.DABT_LOW).toBe(3);
    // only the access nothing in the kernel claimed went out of KVM_RUN
    expect(rec.events.filter((e) => e.fn === 'kvm_userspace_exit').map((e) => e.args['reason'])).toEqual(['KVM_EXIT_MMIO']);
    rec.stop();
  });
});

describe('VmInterruptApi errors say what to change', () => {
  const { vm, ctx } = armMachine('v3', { numVcpus: 1 });
  const api = vm.interruptApi;
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      if (VirqError.is(e)) return e.errno;
      throw e;
    }
    return undefined;
  };
  test.each([
    ['ioeventfd on port I/O', () => api.ioeventfd({ fd: new EventFd(ctx.scheduler), addr: 0x60, len: 1, space: 'pio' }), 'EINVAL'],
    ['KVM_IRQ_LINE type CPU with an in-kernel vGIC', () => api.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_CPU, 0, 0), true), 'ENXIO'],
    ['KVM_IRQ_LINE SPI below 32', () => api.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_SPI, 0, 5), true), 'EINVAL'],
    ['KVM_IRQ_LINE PPI of a missing vCPU', () => api.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_PPI, 9, 27), true), 'EINVAL'],
    ['KVM_SIGNAL_MSI without a DeviceID', () => api.signalMsi(msiMessage(0x0809_0040, 0)), 'EINVAL'],
    ['KVM_SIGNAL_MSI to an address with no ITS', () => api.signalMsi(msiMessage(0xfee0_0000, 0, 8)), 'EINVAL'],
    ['an irqchip route to irqchip 1', () => api.setGsiRouting([{ gsi: 1, type: 'irqchip', irqchip: 1, pin: 0 }]), 'EINVAL'],
  ])('%s → %s', (_name, fn, errno) => {
    expect(code(fn)).toBe(errno);
  });

  test('KVM_IRQ_LINE with the arm64 encoding: type 27:24, vcpu 23:16, number 15:0', () => {
    expect(armIrqLine(KVM_ARM_IRQ_TYPE_PPI, 3, 27)).toBe(0x0203001b);
    vm.guestDriver.enablePpi(0, 23);
    expect(api.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_PPI, 0, 23), true)).toBe(1);
    expect(api.irqLine(armIrqLine(KVM_ARM_IRQ_TYPE_PPI, 0, 23), true)).toBe(0); // level unchanged: vgic_validate_injection says no
    expect(vm.vgic.cpus[0].apList.map((i) => i.intid)).toContain(23);
  });
});

describe('GICv4: residency follows scheduling; forwarding on and off', () => {
  test('preempted vCPU: vPE non-resident without doorbell, the vLPI waits in the VPT, delivered on schedule-in with no doorbell', () => {
    const r = armMachine('v4.1', { numVcpus: 1, hostCpus: 2 });
    const { ctx, vm, host } = r;
    const dev = assignedDevice(r, 0x200, 1);
    vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0]);
    vm.vcpus[0].guest.idleWithWfi = false;
    let got = 0;
    vm.vcpus[0].onInterrupt(dev.guestLpi, () => got++);
    ctx.scheduler.runUntil(50_000);
    const nic = ctx.scheduler.actor({ name: 'nic', kind: 'device', cpu: 1 });
    ctx.scheduler.at(60_000, ctx.scheduler.actor({ name: 'kthread', kind: 'kernel', cpu: 0 }), () => vm.vcpus[0].preempt(100_000));
    ctx.scheduler.at(100_000, nic, () => {
      expect(vm.vcpus[0].state).toBe('preempted');
      expect(host.deviceMsi(0x200, 0)).toBe('vlpi-latched');
    });
    ctx.scheduler.runUntil(150_000);
    expect(got).toBe(0);
    ctx.scheduler.runUntil(250_000);
    expect(got).toBe(1);
    expect(vm.v4!.stats.doorbells).toBe(0);
  });

  test('a vCPU that moved to another CPU is moved with VMOVP when it is loaded again', () => {
    const r = armMachine('v4', { numVcpus: 1, hostCpus: 2 });
    const { ctx, vm } = r;
    vm.vcpus[0].guest.idleWithWfi = false;
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    ctx.scheduler.at(60_000, ctx.scheduler.actor({ name: 'migration/0', kind: 'kernel', cpu: 0 }), () => {
      vm.vcpus[0].actor.cpu = 1;
      vm.vcpus[0].preempt(10_000);
    });
    ctx.scheduler.runUntil(200_000);
    if (process.env['DBG']) console.log(formatFtrace(rec.events));
    expect(inOrder(fnsOf(rec.events), ['vgic_v4_put', 'vgic_v4_load', 'its_send_vmovp', 'its_vpe_schedule'])).toBe(true);
    expect(vm.vcpus[0].vpe!.rd).toBe(1);
    expect(vm.vcpus[0].vpe!.residentRd).toBe(1);
  });

  test('unset_forwarding puts the interrupt back on the software path (host LPI → irqfd → vITS → LR)', () => {
    const r = armMachine('v4', { numVcpus: 1, hostCpus: 2 });
    const { ctx, vm, host } = r;
    const dev = assignedDevice(r, 0x300, 1);
    const route = dev.routes.entries()[0];
    vm.kvmVgicV4SetForwarding(dev.hostIrq, route);
    vm.vcpus[0].guest.idleWithWfi = false;
    let got = 0;
    vm.vcpus[0].onInterrupt(dev.guestLpi, () => got++);
    ctx.scheduler.runUntil(50_000);
    const rec = new TraceRecorder(ctx.trace.events$);
    vm.kvmVgicV4UnsetForwarding(dev.hostIrq, route);
    expect(inOrder(fnsOf(rec.events), ['kvm_vgic_v4_unset_forwarding', 'its_send_discard', 'its_send_mapti'])).toBe(true);
    const nic = ctx.scheduler.actor({ name: 'nic', kind: 'device', cpu: 1 });
    const e0 = vm.exitCounts().total;
    ctx.scheduler.at(60_000, nic, () => host.deviceMsi(0x300, 0));
    ctx.scheduler.runUntil(150_000);
    expect(got).toBe(1);
    expect(vm.exitCounts().total - e0).toBe(1);
    expect(inOrder(fnsOf(rec.events), ['generic_handle_domain_irq', 'irqfd_wakeup', 'vgic_queue_irq_unlock', 'kvm_exit', 'vgic_v3_populate_lr'])).toBe(true);
  });

  test('a guest INV on a forwarded LPI updates the vLPI property table on the host (its_prop_update_vlpi)', () => {
    const r = armMachine('v4', { numVcpus: 1, hostCpus: 2 });
    const { vm, host, mem } = r;
    const dev = assignedDevice(r, 0x400, 1);
    vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries()[0]);
    const vpe = vm.vcpus[0].vpe!;
    expect(vpe.priorityOf(dev.guestLpi)).toBe(0xa0);
    const prop = vm.guestDriver.tablesGpa;
    mem.write8(prop + (dev.guestLpi - 8192), 0x60 | 0x2 | 0x1); // guest raises the priority
    const rec = new TraceRecorder(r.ctx.trace.events$);
    vm.guestDriver.its.send('its_send_inv', ItsCommand.inv(0x400, 0));
    expect(vpe.priorityOf(dev.guestLpi)).toBe(0x60);
    expect(fnsOf(rec.events)).toContain('its_send_inv'); // the guest's driver
    // KVM: vgic_its_cmd_handle_inv → update_lpi_config → its_prop_update_vlpi → lpi_update_config → its_send_vinv
    expect(rec.events.some((e) => e.fn === 'its_send_vinv' && e.caller === 'lpi_update_config')).toBe(true);
    expect(host.its.devices.get(0x400)!.ites.get(0)!.virtual).toBe(true);
  });

  test('set_forwarding of a route the guest ITS does not translate is an error with a fix in the message', () => {
    const r = armMachine('v4', { numVcpus: 1, hostCpus: 2 });
    const [hostIrq] = r.host.mapDevice(0x500, 1, 1);
    expect(() => r.vm.kvmVgicV4SetForwarding(hostIrq, { gsi: 40, type: 'msi', msi: msiMessage(0x0809_0040, 0, 0x500) })).toThrow(/MAPD\/MAPTI/);
  });
});

test('registerArmGic registers the ARM implementations behind core tokens', () => {
  const c = createSimContext();
  const seen = new Map<symbol, unknown>();
  const vm = registerArmGic({ registerInstance: (t, v) => seen.set(t, v) }, c, { numVcpus: 2, memory: GuestMemory.ofSize(0x800000) });
  expect(seen.get(Tokens.MsiSink as symbol)).toBe(vm.its);
  expect(seen.get(Tokens.IrqPins as symbol)).toBe(vm.gic);
  expect(seen.get(Tokens.IrqRouting as symbol)).toBe(vm.irqfd);
  expect(seen.get(Tokens.VcpuInterruptTargets as symbol)).toBe(vm.vcpus);
  expect(seen.get(ArmGicTokens.VmInterruptApi)).toBe(vm.interruptApi);
  expect(vm.vcpus[0].arch).toBe('arm64');
  // IrqPins: pin n drives SPI 32 + n
  vm.start();
  vm.guestDriver.enableSpi(39, { trigger: 'level' });
  vm.gic.pin(7).setLevel(true);
  expect(vm.gic.spis[7].lineLevel).toBe(true);
  expect(vm.vcpus[0].hasPendingInterrupt()).toBe(true);
  // the pin is the OR of its sources (KVM's per-source line state)
  vm.gic.pin(7).setLevel(true, 40);
  vm.gic.pin(7).setLevel(false);
  expect(vm.gic.spis[7].lineLevel).toBe(true);
  vm.gic.pin(7).setLevel(false, 40);
  expect(vm.gic.spis[7].lineLevel).toBe(false);
  expect(() => vm.gic.pin(64)).toThrow(/pins 0–63/);
});

describe('vCPU thread CPU time', () => {
  test('a vCPU is charged while it runs and not while it is blocked in WFI', () => {
    const ctx = createSimContext({ seed: 2 });
    const vm = new ArmVm(ctx, { numVcpus: 2, gic: 'v3', memory: GuestMemory.ofSize(GuestGicDriver.tablesSize(2) + 0x100000) });
    vm.start();
    vm.vcpus[1]!.guest.idleWithWfi = false; // busy
    ctx.scheduler.runUntil(100_000);
    for (const v of vm.vcpus) v.flushCpuTime();
    const idle = vm.vcpus[0]!.actor.cpuTimeNs;
    const busy = vm.vcpus[1]!.actor.cpuTimeNs;
    expect(busy).toBeGreaterThan(99_000);
    expect(busy).toBeLessThanOrEqual(100_000);
    expect(idle).toBeLessThan(5_000);
    expect(idle).toBeGreaterThan(0);
  });
});
