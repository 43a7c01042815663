import type { Actor, TraceEvent } from '@virq/core';

/** Functions that mark a device starting a delivery toward the guest. */
const DELIVERY_START = new Set(['pit_irq_timer', 'apic_send_ipi', 'vgic_v3_dispatch_sgi', 'vhost_vring_call_split', 'vhost_signal', 'virtio_notify', 'vfio_msihandler', 'hw:vtd_post_interrupt', 'serial_update_irq', 'pl011_receive', 'pl011_write', 'kvm_lapic_expired_hv_timer', 'apic_timer_fn', 'vgic_its_inject_cached_translation', 'vgic_its_trigger_msi', 'kvm_vgic_inject_irq', 'hw:its_translate', 'hw:amdvi_ga_interrupt']);
/** The guest handler's EOI ends a delivery (x86 LAPIC EOI, virtualised or trapped; GIC ICV_EOIR1). */
const DELIVERY_END = new Set(['native_apic_mem_eoi', 'gic_eoi_irq']);
/** The guest taking an interrupt: x86's entry names the vector, the GIC's ICV_IAR1 read the INTID. */
const GUEST_HANDLER = new Set(['hw:guest_interrupt', 'gic_handle_irq']);
/** A window that never reaches its handler stops here. */
const MAX_EVENTS = 400;

/** A device-side decision not to notify (vhost_vring_call_split traces it too) starts nothing. */
function startsDelivery(e: TraceEvent): boolean {
  return DELIVERY_START.has(e.fn) && !(e.kind === 'vring.should_notify' && (e.args as { notify?: boolean }).notify === false);
}

/**
 * The first delivery of a run: the first interrupt a device raises (where the machine starts
 * its latency clock: GuestIrqDomain.onRaised), from the device's own start of it to the
 * guest's EOI of that same interrupt. Work interleaved in between stays in, as in a real
 * capture, but the window follows one interrupt: it ends after the guest took *that* vector
 * or INTID, not at whichever handler finishes first (on a busy machine a later interrupt can
 * overtake an earlier one — GICv4's direct vLPI against an irqfd that KVM defers to a kworker).
 * With no raise reported, the window is the first start to the first EOI.
 *
 * Feed it every event (`observe`, before the machine's own observer: a raise reported while
 * the machine observes an event belongs after that event) and every raise (`raised`).
 */
export class FirstDeliveryRecorder {
  private events: TraceEvent[] = [];
  private state: 'wait' | 'open' | 'done' = 'wait';
  /** Events of the current instant while waiting: a raise takes its device's start from them. */
  private recent: TraceEvent[] = [];
  private target: { vcpu: number; vector: number } | undefined;
  private handled = false;
  /** Without raises: the first start to the first EOI. */
  private readonly fallback: TraceEvent[] = [];
  private fallbackState: 'wait' | 'open' | 'done' = 'wait';

  /** The delivery, or nothing when no device started one. */
  get delivery(): TraceEvent[] {
    if (this.state !== 'wait') return this.events;
    return this.fallbackState === 'wait' ? [] : this.fallback;
  }

  /** A device, running as `actor`, raised the interrupt behind (vCPU, vector or INTID) at `time`. */
  raised(vcpu: number, vector: number, time: number, actor: Actor | undefined): void {
    if (this.state !== 'wait') return;
    this.state = 'open';
    this.target = { vcpu, vector };
    // The device's start, when it was traced before the raise in this instant (irqfd_wakeup
    // reports the raise after vhost_vring_call_split and eventfd_write); otherwise the window
    // begins with what the device traces next.
    const r = this.recent;
    let from = r.length;
    for (let i = r.length - 1; i >= 0; i--) {
      if (r[i]!.time === time && r[i]!.actor === actor && startsDelivery(r[i]!)) {
        from = i;
        break;
      }
    }
    this.events = r.slice(from);
    this.recent = [];
  }

  observe(e: TraceEvent): void {
    if (this.fallbackState !== 'done') this.observeFallback(e);
    if (this.state === 'done') return;
    if (this.state === 'wait') {
      if (this.recent.length > 0 && this.recent[0]!.time !== e.time) this.recent = [];
      if (this.recent.length < MAX_EVENTS) this.recent.push(e);
      return;
    }
    this.events.push(e);
    const a = e.args as { vcpu?: number; vector?: number; intid?: number };
    const t = this.target!;
    if (GUEST_HANDLER.has(e.fn) && a.vcpu === t.vcpu && (a.vector ?? a.intid) === t.vector) this.handled = true;
    else if (this.handled && DELIVERY_END.has(e.fn) && a.vcpu === t.vcpu) this.state = 'done';
    if (this.events.length >= MAX_EVENTS) this.state = 'done';
  }

  private observeFallback(e: TraceEvent): void {
    if (this.fallbackState === 'wait' && !startsDelivery(e)) return;
    this.fallbackState = 'open';
    this.fallback.push(e);
    if (DELIVERY_END.has(e.fn) || this.fallback.length >= MAX_EVENTS) this.fallbackState = 'done';
  }
}
