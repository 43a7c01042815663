import { VhostKernelNetOps, VhostUserNetOps, macswapHandler } from '@virq/vhost-user';
import { ethernetFrame, type VirtioNet } from '@virq/virtio-pci';
import type { Actor, GuestMemory } from '@virq/core';
import type { ComposedMachine } from './machine.js';
import type { VirtioNetConfig } from './topology.js';
import { poissonArrivals } from './workload.js';

/** What the machine needs of a virtio-net back end once attached. */
export interface NetBackendHandle {
  readonly kind: VirtioNetConfig['backend'];
  /** Offers `rate` packets/s from the outside world to the guest until `untilNs`. */
  startRx(rate: number, untilNs: number): void;
  /** Frames the back end took from the guest's tx ring. */
  txFrames(): number;
}

const PEER_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/** The guest NIC's MAC (QEMU's default 52:54:00:12:34:56). */
export const GUEST_MAC: readonly number[] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/**
 * In-VMM back end (QEMU's tap netdev): a frame from the physical NIC is taken by the host
 * (NIC IRQ on a host CPU → __netif_receive_skb_core → the bridge's rx handler br_handle_frame
 * → forwarded out of the tap: tun_net_xmit), QEMU's main loop wakes on the tap fd (tap_send,
 * the fd's read handler, run by aio_dispatch_handler) and virtio-net receives it — F10's host
 * half. Each step names its real caller; the driver's NAPI poll between the hard IRQ and the
 * stack is not traced (it depends on the NIC's driver).
 */
function inVmmBackend(m: ComposedMachine, dev: VirtioNet): NetBackendHandle {
  const ctx = m.ctx;
  const s = ctx.scheduler;
  const nicCpu = s.actor({ name: 'irq/nic0', kind: 'host-cpu', cpu: 0 });
  const t = ctx.trace.channel('host-net');
  let tx = 0;
  dev.setBackend({ kind: 'vmm' });
  return {
    kind: 'in-vmm',
    txFrames: () => tx,
    startRx(rate, untilNs) {
      arrivals(m, nicCpu, rate, untilNs, (frame) => {
        if (t.on) {
          t.emit('host.irq', 'handle_irq_event', 'handle_edge_irq', { irq: 'nic0' });
          t.emit('host.rx', '__netif_receive_skb_core', '__netif_receive_skb_one_core', { len: frame.length });
          t.emit('host.br', 'br_handle_frame', '__netif_receive_skb_core', { port: 'tap0' });
          t.emit('host.tun', 'tun_net_xmit', 'dev_hard_start_xmit', { dev: 'tap0' });
        }
        nicCpu.charge(ctx.costs.ns.ringChain);
        s.after(ctx.costs.ns.threadWakeup, m.mainLoop, () => {
          if (t.on) t.emit('host.tap', 'tap_send', 'aio_dispatch_handler', { fd: 'tap0' });
          m.mainLoop.charge(ctx.costs.ns.deviceEmulation);
          dev.receive(frame);
        });
      });
    },
  };
}

/** A packet source on `actor`: Poisson arrivals at `rate`/s until `untilNs`. */
function arrivals(m: ComposedMachine, actor: Actor, rate: number, untilNs: number, deliver: (frame: Uint8Array) => void): void {
  const s = m.ctx.scheduler;
  let seq = 0;
  poissonArrivals(s, 1e9 / rate, untilNs, (t, step) => void s.at(t, actor, step), () => deliver(ethernetFrame(GUEST_MAC, PEER_MAC, 64, seq++)));
}

/**
 * vhost-user (the default): QEMU's vhost-user front end talks to our DPDK-style
 * vhost-user-net back end over the in-process transport; the back end runs on its own thread
 * (a DPDK lcore), takes the guest's tx frames (macswap reflects them back), and frames from
 * the outside world arrive on that same thread (the PMD's port) into the guest's rx ring.
 */
function vhostUserBackend(m: ComposedMachine, dev: VirtioNet, cpu: number): NetBackendHandle {
  const before = new Set(m.ctx.scheduler.allActors());
  const ops = new VhostUserNetOps({ ctx: m.ctx, cpu, handler: macswapHandler() });
  const actor = m.ctx.scheduler.allActors().find((a) => !before.has(a))!;
  dev.setBackend({ kind: 'vhost-user', ops: [ops] });
  return {
    kind: 'vhost-user',
    txFrames: () => ops.net.counters.txFrames,
    startRx: (rate, untilNs) => arrivals(m, actor, rate, untilNs, (f) => void ops.net.deliver(f)),
  };
}

/**
 * Kernel vhost-net: the vhost worker thread serves the rings; its tap side reflects the
 * guest's frames (macswap), and frames from the outside come the way F10's do as far as the
 * tap (NIC IRQ → __netif_receive_skb_core → br_handle_frame → tun_net_xmit), where vhost-net
 * takes over instead of QEMU: the tun ring's socket wakes the RX ring's poll and the worker's
 * handle_rx fills the guest's buffers and signals the call eventfd (irqfd).
 */
function vhostKernelBackend(m: ComposedMachine, dev: VirtioNet, mem: GuestMemory, cpu: number): NetBackendHandle {
  const ctx = m.ctx;
  const ops = new VhostKernelNetOps({ ctx, memory: mem, ownerPid: m.mainLoop.pid, handler: macswapHandler(), cpu });
  dev.setBackend({ kind: 'vhost-kernel', ops: [ops] });
  const nicCpu = ctx.scheduler.actor({ name: 'irq/nic0', kind: 'host-cpu', cpu: 0 });
  const t = ctx.trace.channel('host-net');
  return {
    kind: 'vhost',
    txFrames: () => ops.dev.counters.txFrames,
    startRx(rate, untilNs) {
      arrivals(m, nicCpu, rate, untilNs, (frame) => {
        if (t.on) {
          t.emit('host.irq', 'handle_irq_event', 'handle_edge_irq', { irq: 'nic0' });
          t.emit('host.rx', '__netif_receive_skb_core', '__netif_receive_skb_one_core', { len: frame.length });
          t.emit('host.br', 'br_handle_frame', '__netif_receive_skb_core', { port: 'tap0' });
        }
        nicCpu.charge(ctx.costs.ns.ringChain);
        ops.dev.tapXmit(frame); // tun_net_xmit → sock_def_readable → vhost_poll_wakeup
      });
    },
  };
}

export function attachNetBackend(m: ComposedMachine, cfg: VirtioNetConfig, dev: VirtioNet, mem: GuestMemory, backendCpu: number): NetBackendHandle {
  switch (cfg.backend) {
    case 'in-vmm':
      return inVmmBackend(m, dev);
    case 'vhost-user':
      return vhostUserBackend(m, dev, backendCpu);
    case 'vhost':
      return vhostKernelBackend(m, dev, mem, backendCpu);
  }
}

/**
 * What the machine should say about a virtio-net device's back end after the guest's probe:
 * QEMU's own choices (e.g. vhost_net_query refusing vhost without MSI-X guest notifiers unless
 * vhostforce — the device then stays on QEMU's userspace virtio-net) and, when the configured
 * back end is not the one serving the rings, that its external rx source is not started.
 * Returns whether that rx source may run.
 */
export function netBackendStatus(cfg: VirtioNetConfig, dev: VirtioNet): { notes: string[]; rxOk: boolean } {
  const notes = [...dev.backendMessages];
  const rxOk = cfg.backend === 'in-vmm' || dev.vhostStarted;
  if (!rxOk) notes.push(`${cfg.name}: the ${cfg.backend} back end is not serving the rings, so its external rx (workload.rxPacketsPerSec) is not offered`);
  return { notes, rxOk };
}

/** A net device of a composed machine, as the workload drives it. */
export interface WorkloadNet {
  readonly config: VirtioNetConfig;
  readonly device: VirtioNet;
  readonly driver: { startXmit(frame: Uint8Array): boolean };
  readonly backend: NetBackendHandle;
  readonly vcpu: number;
}

/**
 * The packet workload of every virtio-net device: the guest transmits at `txPacketsPerSec`
 * (start_xmit as guest code on the device's vCPU), the outside world sends at
 * `rxPacketsPerSec` through the back end (when the back end really serves the rings).
 */
export function startNetWorkload(m: ComposedMachine, nets: readonly WorkloadNet[], cpuOf: (vcpu: number) => { at(time: number, fn: () => void): void }, durationNs: number): void {
  const w = m.topology.workload;
  const s = m.ctx.scheduler;
  const broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
  for (const net of nets) {
    if (w.txPacketsPerSec > 0) {
      const cpu = cpuOf(net.vcpu);
      let seq = 0;
      poissonArrivals(s, 1e9 / w.txPacketsPerSec, durationNs, (t, step) => cpu.at(t, step), () => void net.driver.startXmit(ethernetFrame(broadcast, GUEST_MAC, 64, seq++)));
    }
    const status = netBackendStatus(net.config, net.device);
    m.notes.push(...status.notes);
    if (w.rxPacketsPerSec > 0 && status.rxOk) net.backend.startRx(w.rxPacketsPerSec, durationNs);
  }
}
