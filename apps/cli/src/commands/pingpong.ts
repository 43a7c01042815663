import { EventFd, TraceRecorder, createSimContext, type SimContext, type TraceEvent } from '@virq/core';

/**
 * The core-only default scenario: a guest vCPU kicks a vhost worker through a kick eventfd
 * (the ioeventfd path of F1), the worker answers through a call eventfd (the irqfd path of
 * F9), and the vCPU takes the interrupt on its next entry. Only @virq/core is used: real
 * eventfd semantics, the scheduler's actors, the cost table and the trace bus.
 */
export interface PingPongResult {
  ctx: SimContext;
  trace: TraceEvent[];
  kicks: number;
  calls: number;
  roundTripsNs: number[];
}

export function runPingPong(seed: number, rounds: number): PingPongResult {
  const ctx = createSimContext({ seed });
  const { scheduler: s, costs } = ctx;
  const ch = ctx.trace.channel('pingpong');
  const rec = new TraceRecorder(ctx.trace.events$);
  const vcpu = s.actor({ name: 'CPU 0/KVM', kind: 'vcpu', cpu: 1 });
  const worker = s.actor({ name: 'vhost-4242', kind: 'vhost-worker', cpu: 2 });
  const kick = new EventFd(s, { name: 'vq0-kick' });
  const call = new EventFd(s, { name: 'vq0-call' });
  const c = costs.ns;
  let kicks = 0;
  let calls = 0;
  let sentAt = 0;
  const roundTrips: number[] = [];

  const guestKick = (): void => {
    sentAt = s.now;
    ch.emit('pp.notify', 'vp_notify', 'virtqueue_notify', { queue: 0 });
    ch.emit('pp.exit', 'vmx_handle_exit', 'vcpu_enter_guest', { reason: 'EPT_MISCONFIG' }, c.vmExit);
    vcpu.charge(c.vmExit + c.eventfdSignal + c.vmEntry);
    s.after(c.vmExit, vcpu, () => {
      ch.emit('pp.io', 'kvm_io_bus_write', 'handle_ept_misconfig', { addr: '0xfe003000', len: 0 });
      ch.emit('pp.signal', 'eventfd_signal', 'ioeventfd_write', { fd: kick.fd });
      kicks++;
      kick.write(1);
    });
  };

  kick.addWaiter({
    actor: worker,
    delayNs: c.threadWakeup,
    wake: (fd) => {
      const n = fd.testAndClear();
      ch.emit('pp.poll', 'vhost_poll_wakeup', 'eventfd_signal', { count: n });
      worker.charge(c.ringChain + c.eventfdSignal);
      s.after(c.ringChain, worker, () => {
        ch.emit('pp.call', 'vhost_signal', 'handle_tx', { fd: call.fd });
        calls++;
        call.write(1);
      });
    },
  });
  call.addWaiter({
    // irqfd_wakeup runs in the writer's context (a wait-queue callback), then kicks the vCPU.
    wake: (fd) => {
      fd.testAndClear();
      ch.emit('pp.irqfd', 'irqfd_wakeup', '__wake_up_common', { gsi: 24 });
      s.after(c.hostIpi, vcpu, () => {
        ch.emit('pp.inject', 'vmx_inject_irq', 'inject_pending_event', { vector: 0x21 });
        vcpu.charge(c.injectIrq + c.guestHandler);
        s.after(c.injectIrq + c.guestHandler, vcpu, () => {
          ch.emit('pp.handler', 'vring_interrupt', 'handle_irq_event', { queue: 0 });
          roundTrips.push(s.now - sentAt);
          // The guest's think time before its next request comes from the run's seeded Prng.
          if (roundTrips.length < rounds) s.after(Math.round(s.prng.exponential(2000)), vcpu, guestKick);
        });
      });
    },
  });
  s.at(0, vcpu, guestKick);
  s.runUntilIdle();
  rec.stop();
  return { ctx, trace: rec.events, kicks, calls, roundTripsNs: roundTrips };
}
