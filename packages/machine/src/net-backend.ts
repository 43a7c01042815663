import { ethernetFrame, type VirtioNet } from '@virq/virtio-pci';
import type { ComposedMachine } from './machine.js';
import type { VirtioNetConfig } from './topology.js';

/** What the machine needs of a virtio-net back end once attached. */
export interface NetBackendHandle {
  readonly kind: VirtioNetConfig['backend'];
  /** Offers `rate` packets/s from the outside world to the guest until `untilNs`. */
  startRx(rate: number, untilNs: number): void;
  /** Frames the back end took from the guest's tx ring. */
  txFrames(): number;
}

const PEER_MAC = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

/**
 * In-VMM back end (QEMU's tap netdev): a frame from the physical NIC is taken by the host
 * (NIC IRQ on a host CPU → netif_receive_skb → bridge → tun_net_xmit), QEMU's main loop
 * wakes on the tap fd (tap_send) and virtio-net receives it — F10's host half.
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
      const interval = 1e9 / rate;
      let seq = 0;
      const arrive = (): void => {
        const frame = ethernetFrame([0x52, 0x54, 0x00, 0x12, 0x34, 0x56], PEER_MAC, 64, seq++);
        if (t.on) {
          t.emit('host.irq', 'handle_irq_event', 'handle_edge_irq', { irq: 'nic0' });
          t.emit('host.rx', 'netif_receive_skb', 'napi_gro_receive', { len: frame.length });
          t.emit('host.br', 'br_handle_frame', '__netif_receive_skb_core', { port: 'tap0' });
          t.emit('host.tun', 'tun_net_xmit', 'dev_hard_start_xmit', { dev: 'tap0' });
        }
        nicCpu.charge(ctx.costs.ns.ringChain);
        s.after(ctx.costs.ns.threadWakeup, m.mainLoop, () => {
          if (t.on) t.emit('host.tap', 'tap_send', 'qemu_iohandler_poll', { fd: 'tap0' });
          m.mainLoop.charge(ctx.costs.ns.deviceEmulation);
          dev.receive(frame);
        });
        const next = s.now + Math.max(1, Math.round(s.prng.exponential(interval)));
        if (next < untilNs) s.at(next, nicCpu, arrive);
      };
      s.at(Math.round(s.prng.exponential(interval)), nicCpu, arrive);
    },
  };
}

export function attachNetBackend(m: ComposedMachine, cfg: VirtioNetConfig, dev: VirtioNet): NetBackendHandle {
  switch (cfg.backend) {
    case 'in-vmm':
      return inVmmBackend(m, dev);
    default:
      return inVmmBackend(m, dev);
  }
}
