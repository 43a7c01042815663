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
  kick: (vcpu: number) => void = () => undefined;
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

  /** GicDelivery: an interrupt's state changed (MMIO write, ITS, injection) → queue it. */
  irqChanged(irq: GicIrq): void {
    this.queue(irq);
  }

  /** vgic_queue_irq_unlock. Returns whether the interrupt was added to an ap_list. */
  queue(irq: GicIrq): boolean {
    const t = this.oracle(irq);
    if (irq.vcpu >= 0 || t < 0) {
      // Already listed (an edge re-trigger must still be noticed: request + kick), or nothing to do.
      if (t >= 0) this.kickVcpu(t);
      return false;
    }
    const cpu = this.cpus[t];
    cpu.apList.push(irq);
    irq.vcpu = t;
    this.stats.queued++;
    if (this.channel.on) this.channel.emit('vgic.queue', 'vgic_queue_irq_unlock', 'kvm_vgic_inject_irq', { vcpu: t, intid: irq.intid });
    this.kickVcpu(t);
    return true;
  }

  private kickVcpu(v: number): void {
    this.stats.kicks++;
    this.kick(v);
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
    this.queue(irq);
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
   * kvm_vgic_flush_hwstate → vgic_flush_lr_state: sorts the ap_list when it does not fit,
   * writes one LR per listed interrupt (vgic_v3_populate_lr), zeroes the rest and configures
   * ICH_HCR. Returns the number of LRs written (their cost is the caller's).
   */
  flush(v: number): number {
    const cpu = this.cpus[v];
    const cpuif = cpu.cpuif;
    const list = cpu.apList;
    let mine = 0;
    let nrPend = 0;
    let nrAct = 0;
    for (const irq of list) {
      if (this.oracle(irq) !== v) continue;
      mine++;
      if (irq.active) nrAct++;
      else nrPend++;
    }
    if (mine > cpuif.nrLr) {
      list.sort((a, b) => {
        const pa = a.enabled && a.pending && !a.active ? 1 : 0;
        const pb = b.enabled && b.pending && !b.active ? 1 : 0;
        if (pa !== pb) return pb - pa;
        if (a.priority !== b.priority) return a.priority - b.priority;
        return (b.hw ? 1 : 0) - (a.hw ? 1 : 0);
      });
    }
    if (this.channel.on) this.channel.emit('vgic.flush', 'vgic_flush_lr_state', 'kvm_vgic_flush_hwstate', { vcpu: v, ap_list: list.length, listed_here: mine });
    let count = 0;
    let pendIn = 0;
    let actIn = 0;
    for (const irq of list) {
      if (count === cpuif.nrLr) break;
      if (this.oracle(irq) !== v) continue;
      if (irq.active) actIn++;
      else pendIn++;
      this.populateLr(cpu, irq, count++);
    }
    for (let n = count; n < cpuif.nrLr; n++) {
      cpuif.clearLr(n);
      cpu.lrIrq[n] = undefined;
    }
    cpu.usedLrs = count;
    this.stats.lrWrites += count;
    let hcr = ICH_HCR_EN;
    if (count < mine) hcr |= ICH_HCR_UIE;
    if (pendIn < nrPend) hcr |= ICH_HCR_NPIE;
    if (actIn < nrAct) hcr |= ICH_HCR_LRENPIE;
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
      this.channel.emit('vgic.populate-lr', 'vgic_v3_populate_lr', 'vgic_flush_lr_state', {
        vcpu: cpu.id, lr: n, intid: irq.intid, hw: lr.hw, pintid: lr.pintid, state, value: cpu.cpuif.readLr(n),
      });
    }
  }

  /**
   * kvm_vgic_sync_hwstate after an exit: vgic_v3_fold_lr_state (LR state back into the
   * vgic_irq records) then vgic_prune_ap_list.
   */
  sync(v: number): void {
    const cpu = this.cpus[v];
    const cpuif = cpu.cpuif;
    if (this.channel.on) this.channel.emit('vgic.fold', 'vgic_v3_fold_lr_state', 'kvm_vgic_sync_hwstate', { vcpu: v, used_lrs: cpu.usedLrs });
    for (let n = 0; n < cpu.usedLrs; n++) {
      const irq = cpu.lrIrq[n];
      if (irq === undefined) continue;
      const lr = cpuif.lrs[n];
      const wasActive = irq.active;
      if (lr.state === LR_INVALID && lr.eoi && !lr.hw && irq.isSpi) {
        if (this.channel.on) this.channel.emit('vgic.acked', 'kvm_notify_acked_irq', 'vgic_v3_fold_lr_state', { pin: irq.intid - SPI_BASE_INTID });
        this.onAckedSpi?.(irq.intid - SPI_BASE_INTID);
      }
      irq.active = (lr.state & LR_ACTIVE) !== 0;
      if (irq.trigger === 'edge' && (lr.state & LR_PENDING) !== 0) irq.pendingLatch = true;
      if (irq.trigger === 'level' && (lr.state & LR_PENDING) === 0) irq.pendingLatch = false;
      if (irq.hw && irq.trigger === 'level' && wasActive && !irq.active && this.physicalLevel !== undefined) {
        irq.lineLevel = this.physicalLevel(irq.hwintid, v);
      }
      cpu.lrIrq[n] = undefined;
    }
    for (let n = 0; n < cpuif.nrLr; n++) cpuif.clearLr(n);
    cpu.usedLrs = 0;
    cpuif.hcr &= ~ICH_HCR_UIE;
    cpuif.eoiCount = 0;
    this.prune(v);
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
      this.kickVcpu(t);
    }
  }
}
