import { type SimContext, type TraceChannel, VirqError } from '@virq/core';
import { GicErrorCode } from './errors.js';
import type { GicDelivery, Gicv3 } from './gic.js';
import type { GicIrq } from './gic-irq.js';
import { ICH_HCR_EN, ICH_HCR_LRENPIE, ICH_HCR_NPIE, ICH_HCR_UIE, SPI_BASE_INTID } from './registers.js';
import { LR_ACTIVE, LR_INVALID, LR_PENDING, VirtualCpuInterface } from './virtual-cpu-interface.js';

/** Per-vCPU state of KVM's vGIC (`struct vgic_cpu`). */
export class VgicCpu {
  /** "Active or pending" list (ap_list). */
  readonly apList: GicIrq[] = [];
  /** The interrupt behind each used LR. */
  readonly lrIrq: (GicIrq | undefined)[];
  usedLrs = 0;
  /** Listed interrupts that did not fit in the LRs at the last entry (KVM's overflow list). */
  readonly overflow: GicIrq[] = [];
  /** GICv4: the vPE reported PendingLast / a doorbell fired (vpe->pending_last). */
  vpePendingLast = false;

  constructor(
    readonly id: number,
    readonly cpuif: VirtualCpuInterface,
  ) {
    this.lrIrq = new Array<GicIrq | undefined>(cpuif.nrLr).fill(undefined);
  }
}

/**
 * KVM's software vGIC (arch/arm64/kvm/vgic/vgic.c, FACTS §14.2–14.3) over a `Gicv3` whose
 * delivery it takes over: the target oracle, `kvm_vgic_inject_irq` and
 * `vgic_queue_irq_unlock` (append to the target's ap_list, request + kick),
 * `vgic_flush_lr_state` / `vgic_v3_populate_lr` before entry, and `vgic_v3_fold_lr_state` +
 * `vgic_prune_ap_list` after exit, with HW-mapped interrupts whose guest deactivation
 * deactivates the physical one.
 */
export class Vgic implements GicDelivery {
  readonly cpus: VgicCpu[] = [];
  readonly channel: TraceChannel;
  /** kvm_vcpu_kick (and KVM_REQ_IRQ_PENDING), wired by the VM. */
  kick: (vcpu: number, caller: string) => void = () => undefined;
  /** kvm_notify_acked_irq(kvm, 0, pin): irqfd resamplers, wired by the irqfd layer. */
  onAckedSpi: ((pin: number) => void) | undefined;
  /** The physical line level of a mapped level interrupt (ops->get_input_level). */
  physicalLevel: ((hwintid: number, vcpu: number) => boolean) | undefined;
  readonly stats = { injected: 0, rejected: 0, queued: 0, lrWrites: 0, kicks: 0 };

  constructor(
    readonly ctx: SimContext,
    readonly gic: Gicv3,
    nrLr = 4,
  ) {
    if (!Number.isInteger(nrLr) || nrLr < 1 || nrLr > 16) {
      throw new VirqError(GicErrorCode.ConfigInvalid, `the number of list registers must be in [1, 16] (ICH_VTR.ListRegs + 1), got ${nrLr}`);
    }
    this.channel = ctx.trace.channel('kvm-vgic');
    for (let v = 0; v < gic.numCpus; v++) this.cpus.push(new VgicCpu(v, new VirtualCpuInterface(nrLr, gic.priorityBits)));
    gic.setDelivery(this);
  }

  /** vgic_target_oracle: the vCPU this interrupt should be listed on, or -1. */
  oracle(irq: GicIrq): number {
    if (irq.active) return irq.vcpu >= 0 ? irq.vcpu : irq.targetPe;
    if (irq.enabled && irq.pending) {
      if (!irq.isLpi && !this.gic.distributor.groupEnabled(irq.group)) return -1;
      return irq.targetPe;
    }
    return -1;
  }

  /**
   * GicDelivery: an interrupt's state changed (MMIO write, ITS, injection) → queue it.
   * `caller` is the real function that calls vgic_queue_irq_unlock on that path.
   */
  irqChanged(irq: GicIrq, caller?: string): void {
    this.queue(irq, caller !== undefined && /^[a-z_][a-z0-9_]*$/.test(caller) ? caller : undefined);
  }

  /**
   * vgic_queue_irq_unlock (vgic.c). Returns whether the interrupt was added to an ap_list.
   * Already listed (or nothing to deliver): no list change, but a target still gets
   * KVM_REQ_IRQ_PENDING + kick — an edge re-triggered while listed has no maintenance
   * interrupt to make it noticed.
   */
  queue(irq: GicIrq, caller?: string): boolean {
    const t = this.oracle(irq);
    if (irq.vcpu >= 0 || t < 0) {
      if (t >= 0) this.kickVcpu(t);
      return false;
    }
    const cpu = this.cpus[t];
    cpu.apList.push(irq);
    irq.vcpu = t;
    this.stats.queued++;
    if (this.channel.on) this.channel.emit('vgic.queue', 'vgic_queue_irq_unlock', caller, { vcpu: t, intid: irq.intid });
    this.kickVcpu(t);
    return true;
  }

  private kickVcpu(v: number, caller = 'vgic_queue_irq_unlock'): void {
    this.stats.kicks++;
    this.kick(v, caller);
  }

  /**
   * kvm_vgic_inject_irq(kvm, vcpu, intid, level): private INTIDs need a vCPU; an edge is
   * accepted only when level = 1, a level input only when it changes. Returns whether the
   * injection changed anything (false = vgic_validate_injection rejected it).
   */
  injectIrq(vcpu: number, intid: number, level: boolean, caller = 'kvm_vm_ioctl_irq_line'): boolean {
    const irq = this.gic.irqFor(intid, vcpu);
    if (irq === undefined) {
      throw new VirqError(GicErrorCode.IoctlInvalid, `INTID ${intid} does not exist on this vGIC${intid < SPI_BASE_INTID ? ` for vCPU ${vcpu}` : ''}`, { errno: 'EINVAL' });
    }
    if (this.channel.on) this.channel.emit('vgic.inject', 'kvm_vgic_inject_irq', caller, { vcpu, intid, level });
    if (irq.trigger === 'level' ? irq.lineLevel === level : !level) {
      this.stats.rejected++;
      return false;
    }
    this.stats.injected++;
    if (irq.trigger === 'level') irq.lineLevel = level;
    else irq.pendingLatch = true;
    this.queue(irq, 'kvm_vgic_inject_irq');
    return true;
  }

  /** kvm_vgic_map_phys_irq: the virtual interrupt `vintid` of `vcpu` is backed by physical `hwintid`. */
  mapPhysIrq(vcpu: number, vintid: number, hwintid: number, hostIrq = hwintid): void {
    const irq = this.gic.irqFor(vintid, vcpu);
    if (irq === undefined) throw new VirqError(GicErrorCode.ConfigInvalid, `cannot map INTID ${vintid}: no such interrupt`);
    irq.hw = true;
    irq.hwintid = hwintid;
    irq.hostIrq = hostIrq;
  }

  /** kvm_vgic_vcpu_pending_irq: is something deliverable to this vCPU (WFI wake-up test)? */
  pendingIrq(v: number): boolean {
    const d = this.gic.distributor;
    if (!d.group0Enabled && !d.group1Enabled) return false;
    const cpu = this.cpus[v];
    if (cpu.vpePendingLast) return true;
    const pmr = cpu.cpuif.vpmr;
    for (const irq of cpu.apList) if (irq.pending && irq.enabled && !irq.active && irq.priority < pmr) return true;
    const vpe = cpu.cpuif.vpe;
    return vpe !== undefined && vpe.resident && vpe.highestPending() !== 1023;
  }

  /**
   * kvm_vgic_flush_hwstate → vgic_flush_lr_state (vgic.c, 2025 "LR overflow" revision):
   * summarise the ap_list (entries whose oracle is this vCPU: nr_pend, nr_act), sort it when
   * they do not all fit in the LRs (vgic_irq_cmp: deliverable here first, then group enabled
   * in VMCR, then pending && !active, then lower priority value, then HW before non-HW),
   * write one LR per listed interrupt (vgic_populate_lr → vgic_v3_populate_lr), zero the
   * rest and configure ICH_HCR (vgic_v3_configure_hcr). An empty ap_list skips all of it,
   * as kvm_vgic_flush_hwstate does. Returns the number of LRs written (their cost is the caller's).
   */
  flush(v: number): number {
    const cpu = this.cpus[v];
    const cpuif = cpu.cpuif;
    const list = cpu.apList;
    if (list.length === 0) {
      cpu.overflow.length = 0;
      return 0;
    }
    let nrPend = 0;
    let nrAct = 0;
    for (const irq of list) {
      if (this.oracle(irq) !== v) continue;
      if (irq.active) nrAct++;
      else nrPend++;
    }
    const mine = nrPend + nrAct;
    if (mine > cpuif.nrLr) {
      const here = (i: GicIrq): number => (this.oracle(i) === v ? 1 : 0);
      const grp = (i: GicIrq): number => (cpuif.groupEnabled(i.group) ? 1 : 0);
      const pend = (i: GicIrq): number => (i.enabled && i.pending && !i.active ? 1 : 0);
      list.sort((a, b) => (here(b) - here(a)) || (grp(b) - grp(a)) || (pend(b) - pend(a)) || (a.priority - b.priority) || ((b.hw ? 1 : 0) - (a.hw ? 1 : 0)));
    }
    if (this.channel.on) this.channel.emit('vgic.flush', 'vgic_flush_lr_state', 'kvm_vgic_flush_hwstate', { vcpu: v, ap_list: list.length, listed_here: mine });
    let count = 0;
    cpu.overflow.length = 0;
    for (const irq of list) {
      if (this.oracle(irq) !== v) continue;
      if (count === cpuif.nrLr) {
        cpu.overflow.push(irq); // listed but not in an LR (the overflow list)
        continue;
      }
      this.populateLr(cpu, irq, count++);
    }
    for (let n = count; n < cpuif.nrLr; n++) {
      cpuif.clearLr(n);
      cpu.lrIrq[n] = undefined;
    }
    cpu.usedLrs = count;
    this.stats.lrWrites += count;
    // vgic_v3_configure_hcr: irqs_outside_lrs / irqs_pending_outside_lrs / irqs_active_outside_lrs.
    let hcr = ICH_HCR_EN;
    if (nrPend > cpuif.nrLr) hcr |= ICH_HCR_NPIE;
    if (nrAct > 0 && mine > cpuif.nrLr) hcr |= ICH_HCR_LRENPIE;
    if (mine > cpuif.nrLr) hcr |= ICH_HCR_UIE;
    cpuif.hcr = hcr;
    if (this.channel.on) this.channel.emit('vgic.hcr', 'vgic_v3_configure_hcr', 'vgic_flush_lr_state', { vcpu: v, used_lrs: count, hcr });
    return count;
  }

  /** vgic_v3_populate_lr. */
  private populateLr(cpu: VgicCpu, irq: GicIrq, n: number): void {
    const lr = cpu.cpuif.lrs[n];
    lr.vintid = irq.intid;
    lr.group = irq.group;
    lr.priority = irq.priority;
    lr.hw = false;
    lr.eoi = false;
    lr.pintid = 0;
    let state = irq.active ? LR_ACTIVE : LR_INVALID;
    if (irq.hw && !irq.isLpi) {
      lr.hw = true;
      lr.pintid = irq.hwintid;
      // The physical GIC keeps the pending state of an active mapped interrupt.
      if (irq.pending && !irq.active) {
        state |= LR_PENDING;
        if (irq.trigger === 'edge') irq.pendingLatch = false;
        else irq.lineLevel = false; // only rising edges are observed for mapped level interrupts
      }
    } else {
      if (irq.trigger === 'level') lr.eoi = true; // maintenance on deactivation: resample / notify
      if (irq.pending && !(irq.trigger === 'level' && irq.active)) {
        state |= LR_PENDING;
        if (irq.trigger === 'edge') irq.pendingLatch = false; // the edge now lives in the LR
      }
    }
    lr.state = state;
    cpu.lrIrq[n] = irq;
    if (this.channel.on) {
      this.channel.emit('vgic.populate-lr', 'vgic_v3_populate_lr', 'vgic_populate_lr', {
        vcpu: cpu.id, lr: n, intid: irq.intid, hw: lr.hw, pintid: lr.pintid, state, value: cpu.cpuif.readLr(n),
      });
    }
  }

  /**
   * kvm_vgic_sync_hwstate after an exit: vgic_fold_lr_state → vgic_v3_fold_lr_state (LR
   * state back into the vgic_irq records; only when LRs were used), the EOIcount
   * deactivations of active interrupts that did not fit in the LRs, then vgic_prune_ap_list.
   */
  sync(v: number): void {
    const cpu = this.cpus[v];
    const cpuif = cpu.cpuif;
    if (cpu.usedLrs > 0 && this.channel.on) this.channel.emit('vgic.fold', 'vgic_v3_fold_lr_state', 'vgic_fold_lr_state', { vcpu: v, used_lrs: cpu.usedLrs });
    for (let n = 0; n < cpu.usedLrs; n++) {
      const irq = cpu.lrIrq[n];
      if (irq === undefined) continue;
      const lr = cpuif.lrs[n];
      if (lr.state === LR_INVALID && lr.eoi && !lr.hw && irq.isSpi) this.ackedSpi(irq, 'vgic_v3_fold_lr_state');
      const deactivated = irq.active && (lr.state & LR_ACTIVE) === 0;
      irq.active = (lr.state & LR_ACTIVE) !== 0;
      // Edge: the only case where the LR's pending bit is preserved.
      if (irq.trigger === 'edge' && (lr.state & LR_PENDING) !== 0) irq.pendingLatch = true;
      // Level: acknowledged and completed (LR invalid) → the soft pending state goes.
      if (irq.trigger === 'level' && lr.state === LR_INVALID) irq.pendingLatch = false;
      // vgic_irq_handle_resampling: a mapped level interrupt still pending in the LR, or
      // deactivated while its line was high, re-reads the physical line.
      if (irq.hw && irq.trigger === 'level' && ((lr.state & LR_PENDING) !== 0 || (deactivated && irq.lineLevel)) && this.physicalLevel !== undefined) {
        irq.lineLevel = this.physicalLevel(irq.hwintid, v);
      }
      cpu.lrIrq[n] = undefined;
    }
    for (let n = 0; n < cpuif.nrLr; n++) cpuif.clearLr(n);
    cpu.usedLrs = 0;
    cpuif.hcr &= ~ICH_HCR_UIE;
    // EOIcount: the guest deactivated that many interrupts it found in no LR — active
    // interrupts left on the overflow list; deactivate them in list order.
    let eoi = cpuif.eoiCount;
    for (const irq of cpu.overflow) {
      if (eoi === 0) break;
      if (!irq.active) continue;
      eoi--;
      irq.active = false;
      if (irq.trigger === 'level' && !irq.hw) {
        irq.pendingLatch = false;
        if (irq.isSpi) this.ackedSpi(irq, 'vgic_v3_fold_lr_state');
      }
    }
    cpu.overflow.length = 0;
    cpuif.eoiCount = 0;
    this.prune(v);
  }

  private ackedSpi(irq: GicIrq, caller: string): void {
    if (this.channel.on) this.channel.emit('vgic.acked', 'kvm_notify_acked_irq', caller, { pin: irq.intid - SPI_BASE_INTID });
    this.onAckedSpi?.(irq.intid - SPI_BASE_INTID);
  }

  /** vgic_prune_ap_list: drop what no longer needs listing, migrate what belongs elsewhere. */
  prune(v: number): void {
    const cpu = this.cpus[v];
    const keep: GicIrq[] = [];
    const moved: GicIrq[] = [];
    for (const irq of cpu.apList) {
      const t = this.oracle(irq);
      if (t === v) keep.push(irq);
      else if (t < 0) irq.vcpu = -1;
      else moved.push(irq);
    }
    cpu.apList.length = 0;
    cpu.apList.push(...keep);
    for (const irq of moved) {
      const t = this.oracle(irq);
      this.cpus[t].apList.push(irq);
      irq.vcpu = t;
      this.kickVcpu(t, 'vgic_prune_ap_list'); // KVM_REQ_IRQ_PENDING + kvm_vcpu_kick of the new target
    }
  }
}
