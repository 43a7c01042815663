import { createSimContext, type TraceEvent } from '@virq/core';
import { ArmMachine } from '../src/arm/arm-machine.js';
import { presetDocument } from '../src/presets.js';
import { parseTopology } from '../src/topology.js';
import { X86Machine } from '../src/x86/x86-machine.js';
import { runTopology } from '../src/scenario.js';

// The serial console on both boards: the guest's tty output (serialPerSec) and console input
// from the host (serialRxPerSec), each through the UART the board really has — a 16550 on
// IRQ 4 on x86, the virt board's PL011 on SPI 1 on arm64.
const WORKLOAD_NS = 2_000_000;

function run(preset: string, workload: Record<string, number>) {
  const d = presetDocument(preset);
  d.durationUs = WORKLOAD_NS / 1000;
  d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, ipisPerSec: 0, ...workload };
  const t = parseTopology(d);
  const ctx = createSimContext({ seed: t.seed, costs: t.costs });
  const trace: TraceEvent[] = [];
  ctx.trace.events$.subscribe((e) => trace.push(e));
  const m = preset.startsWith('arm') ? new ArmMachine(ctx, t) : new X86Machine(ctx, t);
  m.start();
  m.startWorkload(WORKLOAD_NS);
  ctx.scheduler.runUntil(WORKLOAD_NS + 2_000_000);
  return { m, trace };
}
const count = (tr: readonly TraceEvent[], fn: string, pred: (a: Record<string, unknown>) => boolean = () => true): number =>
  tr.filter((e) => e.fn === fn && pred(e.args as Record<string, unknown>)).length;

describe('arm64 serial console: the virt board\'s PL011 (SPI 1, INTID 33)', () => {
  it('console input: each byte raises SPI 1 (whatever the topology\'s x86 IRQ says), pl011_int reads it, and every byte reaches the tty', () => {
    const { m, trace } = run('arm-virt-gicv3', { serialPerSec: 0, serialRxPerSec: 20_000 });
    const arm = m as ArmMachine;
    const sent = count(trace, 'pl011_receive');
    expect(sent).toBeGreaterThan(20);
    expect(arm.serials[0]!.driver.received.length).toBe(sent);
    expect(arm.serials[0]!.uart.unread).toBe(0);
    expect(count(trace, 'kvm_vgic_inject_irq', (a) => a.intid === 33 && a.level === true)).toBeGreaterThan(0);
    expect(count(trace, 'kvm_vgic_inject_irq', (a) => a.intid === 36)).toBe(0); // not GPEX line 1 (SPI 4)
    // Every interrupt was the UART's (none found nothing to do); characters that arrive close
    // together share one (pl011_fifo_to_tty drains the FIFO).
    const d = arm.serials[0]!.driver;
    expect(count(trace, 'pl011_int')).toBe(d.handled);
    expect(d.spurious).toBe(0);
    expect(d.handled).toBeGreaterThan(sent / 2);
    expect(d.handled).toBeLessThanOrEqual(sent);
    expect(count(trace, 'pl011_rx_chars')).toBe(count(trace, 'pl011_int'));
    expect(arm.irqs.pendingSince(WORKLOAD_NS)).toEqual([]);
  });

  it('tty output on QEMU\'s PL011 takes no interrupt: TXFF never sets, so pl011_start_tx sends at once and pl011_stop_tx leaves TXIM off — three data aborts a character', () => {
    const { m, trace } = run('arm-virt-gicv3', { serialPerSec: 20_000, serialRxPerSec: 0 });
    const arm = m as ArmMachine;
    const chars = arm.serials[0]!.uart.transmitted.length;
    expect(chars).toBeGreaterThan(20);
    expect(count(trace, 'pl011_start_tx')).toBe(chars);
    expect(count(trace, 'pl011_int')).toBe(0);
    // QEMU still sets the (low) line on each pl011_update: the DR write's and the IMSC write's.
    expect(count(trace, 'kvm_vgic_inject_irq', (a) => a.intid === 33 && a.level === true)).toBe(0);
    const afterBoot = trace.filter((e) => e.time > 0); // the driver's probe sets the line too
    expect(count(afterBoot, 'kvm_vgic_inject_irq', (a) => a.intid === 33 && a.level === false)).toBe(2 * chars);
    const uartAborts = count(trace, 'io_mem_abort', (a) => (a.addr as number) >= 0x0900_0000 && (a.addr as number) < 0x0900_1000);
    expect(uartAborts).toBe(3 * chars);
  });
});

describe('x86 serial console: the 16550 on IRQ 4 with its FIFOs on', () => {
  it('console input waits for the character timeout (four character times at 115200 8N1), then serial8250_rx_chars reads it; every byte reaches the tty', () => {
    const { m, trace } = run('x86-q35', { serialPerSec: 0, serialRxPerSec: 5_000 });
    const x86 = m as X86Machine;
    const sent = count(trace, 'serial_receive1');
    expect(sent).toBeGreaterThan(3);
    expect(x86.serialDrivers[0]!.received.length).toBe(sent);
    expect(x86.serials[0]!.unread).toBe(0);
    // Each raise comes from the timeout (single bytes never reach the trigger level of 8) …
    const raises = trace.filter((e) => e.fn === 'serial_update_irq' && (e.args['iir'] === 0x0c || e.args['iir'] === 0x04));
    expect(raises.length).toBeGreaterThan(0);
    for (const r of raises) expect(r.caller).toBe('fifo_timeout_int');
    // … four character times after the last byte that (re-)armed it: serial_receive1 re-arms
    // the timer, so bytes closer together than that wait for the quiet gap.
    const firstRaise = raises[0]!;
    const lastRx = trace.filter((e) => e.fn === 'serial_receive1' && e.time <= firstRaise.time).at(-1)!;
    expect(x86.serials[0]!.charTimeNs).toBe(86_805); // 10 bits at 115200 baud, QEMU's float arithmetic
    expect(firstRaise.time - lastRx.time).toBe(4 * 86_805);
    // The handler: IIR, LSR, then RBR/LSR per byte, then MSR.
    expect(count(trace, 'serial8250_handle_irq')).toBeGreaterThan(0);
    expect(count(trace, 'serial8250_read_char')).toBe(sent);
    expect(count(trace, 'serial8250_modem_status')).toBe(count(trace, 'serial8250_handle_irq'));
    expect(x86.irqs.pendingSince(WORKLOAD_NS)).toEqual([]);
  });

  it('tty output: serial8250_start_tx turns THRI on (QEMU raises it at once), the THRI interrupt writes THR and __stop_tx turns THRI off; serial_xmit\'s new THRI edge brings a second interrupt that finds nothing', () => {
    const { m, trace } = run('x86-q35', { serialPerSec: 5_000, serialRxPerSec: 0 });
    const x86 = m as X86Machine;
    const chars = x86.serials[0]!.transmitted.length;
    expect(chars).toBeGreaterThan(3);
    expect(x86.serialDrivers[0]!.pendingTx).toBe(0);
    const starts = count(trace, 'serial8250_start_tx');
    const stops = count(trace, '__stop_tx');
    expect(starts).toBeGreaterThan(0);
    expect(stops).toBe(starts); // every burst ends with THRI off
    expect(x86.serials[0]!.transmitted.length).toBe(chars);
    expect(x86.serialDrivers[0]!.pendingTx).toBe(0);
    const handlerRuns = count(trace, 'serial8250_default_handle_irq');
    expect(handlerRuns).toBe(count(trace, 'serial8250_handle_irq') + x86.serialDrivers[0]!.idle);
    // Empty-handed passes per burst: serial8250_interrupt's second pass in the THRI interrupt,
    // and the whole of the interrupt serial_xmit's edge brings (IRQ_NONE).
    expect(x86.serialDrivers[0]!.idle).toBe(2 * starts);
    expect(x86.serialDrivers[0]!.unhandled).toBe(starts);
    expect(x86.serialDrivers[0]!.runs).toBe(2 * starts);
    // QEMU: the IER write raises (serial_ioport_write), the THR write's serial_xmit raises again.
    const raises = trace.filter((e) => e.fn === 'serial_update_irq' && e.args['iir'] === 2).map((e) => e.caller);
    expect(raises.filter((c) => c === 'serial_xmit').length).toBe(chars);
    expect(x86.irqs.pendingSince(WORKLOAD_NS)).toEqual([]);
  });
});

describe('the first delivery of a console-only run starts at the UART', () => {
  const first = (preset: string) => {
    const d = presetDocument(preset);
    d.durationUs = 2000;
    d.devices = (d.devices as Array<Record<string, unknown>>).filter((x) => x.kind === 'serial');
    d.workload = { rxPacketsPerSec: 0, txPacketsPerSec: 0, vfioInterruptsPerSec: 0, ipisPerSec: 0, serialPerSec: 0, serialRxPerSec: 5000 };
    return runTopology(parseTopology(d)).firstDelivery.map((e) => `${e.fn}<-${e.caller ?? ''}`);
  };

  it('arm64: pl011_receive → pl011_put_fifo → pl011_update → qemu_set_irq → KVM_IRQ_LINE … pl011_int … gic_eoi_irq', () => {
    const f = first('arm-virt-gicv3');
    expect(f.slice(0, 6)).toEqual(['pl011_receive<-qemu_chr_be_write_impl', 'pl011_put_fifo<-pl011_receive', 'pl011_update<-pl011_put_fifo', 'qemu_set_irq<-pl011_update', 'kvm_set_irq<-kvm_arm_gic_set_irq', 'kvm_vgic_inject_irq<-kvm_vm_ioctl_irq_line']);
    expect(f).toContain('pl011_int<-__handle_irq_event_percpu');
    expect(f.at(-1)).toMatch(/^gic_eoi_irq</);
  });

  it('x86: the character timeout (serial_update_irq <-fifo_timeout_int) … the 8250 handler … EOI', () => {
    const f = first('x86-q35');
    expect(f[0]).toBe('serial_update_irq<-fifo_timeout_int');
    expect(f).toContain('serial8250_read_char<-guest');
    expect(f.at(-1)).toMatch(/^native_apic_mem_eoi</);
  });
});

