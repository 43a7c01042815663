import { type GsiRoute, type TraceChannel, VirqError } from '@virq/core';
import type { ArmHost } from './arm-host.js';
import type { ArmVcpu } from './arm-vcpu.js';
import { GicErrorCode } from './errors.js';
import type { GicIrq } from './gic-irq.js';
import { ItsCommand } from './its-command.js';
import type { Its, ItsForwardingHooks } from './its.js';
import {
  GICR_VLPI_FRAME, GICR_VPENDBASER, GICR_VPENDBASER_4_1_VGRP1EN, GICR_VPENDBASER_IDAI_DB, GICR_VPENDBASER_PENDING_LAST,
  GICR_VPENDBASER_VALID, GICR_VPROPBASER, INTID_SPURIOUS, LPI_BASE_INTID, LPI_PROP_ENABLED, LPI_PROP_GROUP1,
} from './registers.js';
import type { Vgic } from './vgic.js';
import type { Vpe } from './vpe.js';

/**
 * KVM's GICv4/v4.1 support for one VM (arch/arm64/kvm/vgic/vgic-v4.c, FACTS §14.4–14.5) over
 * the host's ITS driver: one vPE per vCPU mapped with VMAPP and a doorbell, residency on
 * vcpu load/put (GICR_VPENDBASER), the doorbell handler, and the irqbypass consumer's
 * `kvm_vgic_v4_set_forwarding` / `unset_forwarding` that turn a guest LPI fed by an
 * assigned device's host LPI into a vLPI (its_map_vlpi: DISCARD + VMAPTI on the host ITS).
 */
export class VgicV4 implements ItsForwardingHooks {
  private readonly vprop: number;
  /** Doorbell host LPI → vCPU. */
  private readonly doorbells = new Map<number, ArmVcpu>();
  /** vPE id → its doorbell host LPI (its_vpe->irq). */
  private readonly vpeDoorbell = new Map<number, number>();
  readonly stats = { doorbells: 0, forwarded: 0, vmovp: 0 };

  constructor(
    private readonly host: ArmHost,
    private readonly vgic: Vgic,
    private readonly vits: Its,
    private readonly vcpus: readonly ArmVcpu[],
    private readonly channel: TraceChannel,
  ) {
    if (host.version === 'v3') throw new VirqError(GicErrorCode.ConfigInvalid, 'GICv4 direct injection needs a host GIC v4 or v4.1 (ArmHost version)');
    this.vprop = host.allocPages(1); // the VM's virtual LPI property table (16 ID bits)
    host.memory.fill(this.vprop, 0x10000, LPI_PROP_GROUP1 | 0xa0);
  }

  private get v41(): boolean {
    return this.host.version === 'v4.1';
  }

  private emit(kind: string, fn: string, caller: string, args: Record<string, number | string | boolean>): void {
    if (this.channel.on) this.channel.emit(kind, fn, caller, args);
  }

  /** vgic_v4_init: a vPE per vCPU with its VPT and doorbell, mapped on the host ITS (VMAPP). */
  init(): void {
    const host = this.host;
    for (const vcpu of this.vcpus) {
      const id = host.allocVpeId();
      const db = host.allocLpis(1)[0];
      const vpt = host.allocPages(1);
      host.driver.sendFrom('its_vpe_irq_domain_activate', 'its_send_vmapp', ItsCommand.vmapp(id, vcpu.cpu, vpt, 16, true, this.v41 ? db : INTID_SPURIOUS));
      const vpe = host.gic.vpes.get(id)!;
      vpe.vpropAddr = this.vprop;
      vpe.listener = vcpu;
      vcpu.vpe = vpe;
      this.doorbells.set(db, vcpu);
      // 4.0: the doorbell is requested NOAUTOEN and only enabled while the vCPU blocks.
      host.requestIrq(db, `vcpu${vcpu.vcpuId}-doorbell`, () => this.doorbellHandler(vcpu, db), vcpu.cpu);
      if (!this.v41) host.setIrqEnabled(db, false, vcpu.cpu);
      this.vpeDoorbell.set(id, db);
      // vgic_v4_init → its_alloc_vcpu_irqs → irq_domain_alloc_irqs → its_vpe_irq_domain_alloc → its_vpe_init
      this.emit('v4.vpe', 'its_vpe_init', 'its_vpe_irq_domain_alloc', { vcpu: vcpu.vcpuId, vpe: id, doorbell: db });
    }
  }

  private doorbellOf(vpe: Vpe): number {
    return this.vpeDoorbell.get(vpe.id) ?? INTID_SPURIOUS;
  }

  /**
   * vgic_v4_load: make the vPE resident on the vCPU's CPU — irq_set_affinity(vpe->irq) first
   * (its_vpe_set_affinity: VMOVP when the CPU changed, on GICv4.0 and, in current kernels,
   * on GICv4.1 too), then its_make_vpe_resident; GICv4.0 also disables the doorbell and
   * clears a stale pending one. Called from vgic_v3_load (kvm_vgic_load: vcpu load, or
   * kvm_vcpu_wfi on the way back from a WFI).
   */
  load(vcpu: ArmVcpu, caller = 'vgic_v3_load'): void {
    const vpe = vcpu.vpe;
    if (vpe === undefined || vpe.resident) return;
    const host = this.host;
    const cpu = vcpu.cpu;
    this.emit('v4.load', 'vgic_v4_load', caller, { vcpu: vcpu.vcpuId, vpe: vpe.id, cpu });
    if (vpe.rd !== cpu) {
      this.stats.vmovp++;
      host.driver.sendFrom('its_vpe_set_affinity', 'its_send_vmovp', ItsCommand.vmovp(0, 0, vpe.id, cpu));
    }
    this.emit('v4.resident', 'its_make_vpe_resident', 'vgic_v4_load', { vcpu: vcpu.vcpuId, vpe: vpe.id, g1en: true });
    const rd = host.gic.redistributors[cpu];
    if (this.v41) {
      rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_VALID | GICR_VPENDBASER_4_1_VGRP1EN | BigInt(vpe.id));
    } else {
      rd.write64(GICR_VLPI_FRAME + GICR_VPROPBASER, BigInt(this.vprop) | 15n);
      rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, GICR_VPENDBASER_VALID | GICR_VPENDBASER_PENDING_LAST | BigInt(vpe.vptAddr));
      const db = this.doorbellOf(vpe);
      host.setIrqEnabled(db, false, cpu);
      host.gic.clearLpiPending(db);
    }
    const vc = this.vgic.cpus[vcpu.vcpuId];
    vc.cpuif.vpe = vpe;
    vc.vpePendingLast = false;
  }

  /**
   * vgic_v4_put → its_make_vpe_non_resident(vpe, need_db = IN_WFI): a doorbell is wanted
   * only when the vCPU blocks in WFI (4.1: VPENDBASER.DB; 4.0: the doorbell IRQ enabled),
   * not when it is merely descheduled. Called from vgic_v3_put (kvm_vgic_put: vcpu put, or
   * kvm_vcpu_wfi before blocking).
   */
  put(vcpu: ArmVcpu, needDb: boolean, caller = 'vgic_v3_put'): void {
    const vpe = vcpu.vpe;
    if (vpe === undefined || !vpe.resident) return;
    const host = this.host;
    const rd = host.gic.redistributors[vpe.residentRd];
    this.emit('v4.put', 'vgic_v4_put', caller, { vcpu: vcpu.vcpuId, vpe: vpe.id, doorbell: needDb });
    this.emit('v4.non-resident', 'its_make_vpe_non_resident', 'vgic_v4_put', { vcpu: vcpu.vcpuId, vpe: vpe.id, db: needDb });
    if (this.v41) {
      rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, needDb ? GICR_VPENDBASER_IDAI_DB : GICR_VPENDBASER_PENDING_LAST);
    } else {
      rd.write64(GICR_VLPI_FRAME + GICR_VPENDBASER, 0n);
      if (needDb) host.setIrqEnabled(this.doorbellOf(vpe), true, vpe.rd);
    }
    const pendingLast = (rd.read64(GICR_VLPI_FRAME + GICR_VPENDBASER) & GICR_VPENDBASER_PENDING_LAST) !== 0n;
    const vc = this.vgic.cpus[vcpu.vcpuId];
    vc.vpePendingLast = pendingLast;
    vc.cpuif.vpe = undefined;
  }

  /** vgic_v4_doorbell_handler: a vLPI arrived for a non-resident vPE. */
  private doorbellHandler(vcpu: ArmVcpu, db: number): 'handled' {
    this.stats.doorbells++;
    this.emit('v4.doorbell', 'vgic_v4_doorbell_handler', '__handle_irq_event_percpu', { vcpu: vcpu.vcpuId, doorbell: db });
    if (!this.v41) this.host.setIrqEnabled(db, false, vcpu.cpu); // one-shot on 4.0
    this.vgic.cpus[vcpu.vcpuId].vpePendingLast = true;
    vcpu.kick('vgic_v4_doorbell_handler');
    return 'handled';
  }

  // ---- forwarding (irqbypass consumer) ----

  private resolve(route: GsiRoute): GicIrq {
    if (route.type !== 'msi' || route.msi.requesterId === undefined) {
      throw new VirqError(GicErrorCode.ForwardingFailed, 'only MSI routes with a DeviceID (requesterId) can be forwarded as vLPIs', { errno: 'EINVAL' });
    }
    const irq = this.vits.resolve(route.msi.requesterId, route.msi.data);
    if (irq === undefined) {
      throw new VirqError(GicErrorCode.ForwardingFailed, `the guest ITS does not translate DeviceID 0x${route.msi.requesterId.toString(16)} EventID ${route.msi.data} (map it with MAPD/MAPTI first)`, { errno: 'ENOENT' });
    }
    return irq;
  }

  private hostSource(hostIrq: number): { deviceId: number; eventId: number } {
    const src = this.host.lpiSource.get(hostIrq);
    if (src === undefined) throw new VirqError(GicErrorCode.ForwardingFailed, `host IRQ ${hostIrq} is not an ITS-backed LPI of an assigned device`, { errno: 'EINVAL' });
    return src;
  }

  /** lpi_write_config for a vLPI: the VM's property table byte + invalidation. */
  private writeProperties(irq: GicIrq, vpe: Vpe): void {
    const byte = (irq.priority & 0xfc) | LPI_PROP_GROUP1 | (irq.enabled ? LPI_PROP_ENABLED : 0);
    this.host.memory.write8(this.vprop + (irq.intid - LPI_BASE_INTID), byte);
    vpe.invalidate(irq.intid);
  }

  /**
   * kvm_vgic_v4_set_forwarding(kvm, host_irq, route): vgic_its_resolve_lpi, then
   * its_map_vlpi (→ its_vlpi_map: DISCARD + VMAPTI, or VMOVI when already a vLPI), hw = true,
   * and the pending transfer (irq_set_irqchip_state → INT on the vLPI).
   */
  setForwarding(hostIrq: number, route: GsiRoute): void {
    this.emit('v4.forward', 'kvm_vgic_v4_set_forwarding', 'kvm_arch_irq_bypass_add_producer', { host_irq: hostIrq });
    this.emit('v4.resolve', 'vgic_its_resolve_lpi', 'kvm_vgic_v4_set_forwarding', { devid: route.type === 'msi' ? route.msi.requesterId ?? -1 : -1, eventid: route.type === 'msi' ? route.msi.data : -1 });
    const irq = this.resolve(route);
    const src = this.hostSource(hostIrq);
    const vcpu = this.vcpus[irq.targetPe];
    const vpe = vcpu?.vpe;
    if (vpe === undefined) throw new VirqError(GicErrorCode.ForwardingFailed, `guest LPI ${irq.intid} targets no vCPU with a vPE`, { errno: 'EINVAL' });
    this.emit('v4.map', 'its_map_vlpi', 'kvm_vgic_v4_set_forwarding', { host_irq: hostIrq, vpe: vpe.id, vintid: irq.intid });
    this.writeProperties(irq, vpe);
    const d = this.host.driver;
    const by = 'its_vlpi_map';
    if (irq.hw) {
      d.sendFrom(by, 'its_send_vmovi', ItsCommand.vmovi(src.deviceId, src.eventId, vpe.id, this.v41 ? undefined : this.doorbellOf(vpe)));
    } else {
      // its_vlpi_map: drop the physical mapping, install the virtual one.
      d.sendFrom(by, 'its_send_discard', ItsCommand.discard(src.deviceId, src.eventId));
      d.sendFrom(by, 'its_send_vmapti', ItsCommand.vmapti(src.deviceId, src.eventId, vpe.id, irq.intid, this.v41 ? INTID_SPURIOUS : this.doorbellOf(vpe)));
    }
    irq.hw = true;
    irq.hostIrq = hostIrq;
    this.stats.forwarded++;
    if (irq.pendingLatch) {
      irq.pendingLatch = false;
      d.sendFrom('its_irq_set_irqchip_state', 'its_send_int', ItsCommand.int(src.deviceId, src.eventId));
      this.vgic.queue(irq, 'kvm_vgic_v4_set_forwarding'); // communicates the cleared latch (prunes it)
    }
  }

  /** kvm_vgic_v4_unset_forwarding: back to a host LPI (DISCARD + MAPTI). */
  unsetForwarding(hostIrq: number, route: GsiRoute): void {
    this.emit('v4.unforward', 'kvm_vgic_v4_unset_forwarding', 'kvm_arch_irq_bypass_del_producer', { host_irq: hostIrq });
    const irq = this.resolve(route);
    if (!irq.hw) return;
    this.unmap(irq, 'kvm_vgic_v4_unset_forwarding');
  }

  // ---- ItsForwardingHooks (the guest's vITS commands on forwarded LPIs) ----

  /** irq_set_irqchip_state(host_irq, PENDING, true) → its_irq_set_irqchip_state → INT. */
  setPending(irq: GicIrq): void {
    const src = this.hostSource(irq.hostIrq);
    this.host.driver.sendFrom('its_irq_set_irqchip_state', 'its_send_int', ItsCommand.int(src.deviceId, src.eventId));
  }

  /** irq_set_irqchip_state(host_irq, PENDING, false) → CLEAR. */
  clearPending(irq: GicIrq): void {
    const src = this.hostSource(irq.hostIrq);
    this.host.driver.sendFrom('its_irq_set_irqchip_state', 'its_send_clear', ItsCommand.clear(src.deviceId, src.eventId));
  }

  propertiesChanged(irq: GicIrq, needsInv: boolean): void {
    const vpe = this.vcpus[irq.targetPe]?.vpe;
    if (vpe === undefined) return;
    this.writeProperties(irq, vpe);
    if (!needsInv) return; // INVALL: the VINVALL that follows invalidates them all
    const src = this.hostSource(irq.hostIrq);
    // its_prop_update_vlpi → its_vlpi_prop_update → lpi_update_config: a forwarded LPI is
    // invalidated with its_send_vinv (an INV on the vLPI; DirectLPI hosts write GICR_INVLPIR instead).
    this.host.driver.sendFrom('lpi_update_config', 'its_send_vinv', ItsCommand.inv(src.deviceId, src.eventId));
  }

  /** its_invall_vpe: VINVALL for the vCPU's vPE (only if it has one). */
  invallVpe(vcpu: number): void {
    const vpe = this.vcpus[vcpu]?.vpe;
    if (vpe === undefined) return;
    this.host.driver.sendFrom('its_invall_vpe', 'its_send_vinvall', ItsCommand.vinvall(vpe.id));
  }

  retargeted(irq: GicIrq): void {
    const vpe = this.vcpus[irq.targetPe]?.vpe;
    if (vpe === undefined) return;
    const src = this.hostSource(irq.hostIrq);
    // update_affinity → its_map_vlpi on the new vPE → its_vlpi_map → VMOVI.
    this.emit('v4.map', 'its_map_vlpi', 'update_affinity', { host_irq: irq.hostIrq, vpe: vpe.id, vintid: irq.intid });
    this.host.driver.sendFrom('its_vlpi_map', 'its_send_vmovi', ItsCommand.vmovi(src.deviceId, src.eventId, vpe.id, this.v41 ? undefined : this.doorbellOf(vpe)));
  }

  /** its_free_ite on a forwarded LPI (guest DISCARD, MAPD re-map/unmap): its_unmap_vlpi. */
  unmapped(irq: GicIrq): void {
    this.unmap(irq, 'its_free_ite');
  }

  /** its_unmap_vlpi → its_vlpi_unmap: DISCARD, then MAPTI back to the host LPI. */
  private unmap(irq: GicIrq, caller: string): void {
    this.emit('v4.unmap', 'its_unmap_vlpi', caller, { host_irq: irq.hostIrq, vintid: irq.intid });
    const src = this.hostSource(irq.hostIrq);
    const d = this.host.driver;
    const by = 'its_vlpi_unmap';
    d.sendFrom(by, 'its_send_discard', ItsCommand.discard(src.deviceId, src.eventId));
    d.sendFrom(by, 'its_send_mapti', ItsCommand.mapti(src.deviceId, src.eventId, irq.hostIrq, this.host.lpiSource.get(irq.hostIrq)!.cpu));
    this.host.gic.invalidateLpi(irq.hostIrq);
    irq.hw = false;
    irq.hostIrq = -1;
  }
}
