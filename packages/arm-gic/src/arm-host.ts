import { type Actor, GuestMemory, type SimContext, type TraceChannel, VirqError } from '@virq/core';
import { GicErrorCode } from './errors.js';
import { type GicVersion, Gicv3 } from './gic.js';
import { ItsCommand } from './its-command.js';
import { ItsDriver } from './its-driver.js';
import { Its, type TranslateResult } from './its.js';
import {
  GICD_CTLR, GICD_CTLR_ENABLE_G1, GICR_CTLR, GICR_INVLPIR, GICR_PENDBASER, GICR_PROPBASER, INTID_SPURIOUS, LPI_BASE_INTID,
  LPI_PROP_ENABLED, LPI_PROP_GROUP1, MAINTENANCE_PPI,
} from './registers.js';

/** What a host interrupt handler tells the GIC driver after it ran. */
export type HostIrqResult = 'handled' | 'keep-active';

/** A host interrupt handler (request_irq); runs on the actor of the CPU that took the interrupt. */
export type HostIrqHandler = (intid: number, cpu: number, actor: Actor) => HostIrqResult;

/** A vCPU in guest mode on a host CPU: a physical interrupt there makes it exit. */
export interface PhysicalIrqSink {
  physicalIrq(cpu: number): void;
}

export interface ArmHostOptions {
  numCpus: number;
  /** The host GIC: 'v3' (no direct injection), 'v4' or 'v4.1'. Default 'v3'. */
  version?: GicVersion;
  numSpis?: number;
}

const MIB = 0x100000;

/**
 * The host side of an arm64 KVM machine: the physical GICv3/v4 (hardware model), its ITS
 * driven by the host's ITS driver, host RAM holding the LPI/ITS tables and VPTs, one actor
 * per host CPU, and Linux's interrupt entry (gic_handle_irq: acknowledge, run the handler,
 * priority drop; with EOImode = 1 the deactivation is separate, so an interrupt forwarded to
 * a guest stays active until the guest deactivates it).
 */
export class ArmHost {
  readonly gic: Gicv3;
  readonly its: Its;
  readonly driver: ItsDriver;
  readonly memory: GuestMemory;
  readonly cpus: Actor[] = [];
  readonly channel: TraceChannel;
  private readonly handlers = new Map<number, { name: string; fn: HostIrqHandler }>();
  private readonly occupants: (PhysicalIrqSink | undefined)[];
  private readonly entryPending: boolean[];
  private nextLpi = LPI_BASE_INTID;
  private nextPage: number;
  /** Host LPI → the (DeviceID, EventID) behind it on the host ITS. */
  readonly lpiSource = new Map<number, { deviceId: number; eventId: number; cpu: number }>();
  readonly stats = { hostIrqs: 0, spurious: 0 };

  constructor(
    readonly ctx: SimContext,
    options: ArmHostOptions,
  ) {
    const n = options.numCpus;
    if (!Number.isInteger(n) || n < 1 || n > 512) throw new VirqError(GicErrorCode.ConfigInvalid, `host numCpus must be in [1, 512], got ${n}`);
    const version = options.version ?? 'v3';
    // Host RAM for GIC tables: property table, pending tables, ITS tables, VPTs.
    const size = 8 * MIB + n * 2 * 0x10000 + 64 * 0x10000;
    this.memory = GuestMemory.ofSize(size);
    this.gic = new Gicv3(ctx, { numCpus: n, version, memory: this.memory, defaultGroup: 1, numSpis: options.numSpis ?? 64, name: 'host-gic' });
    this.channel = this.gic.channel;
    this.occupants = new Array<PhysicalIrqSink | undefined>(n).fill(undefined);
    this.entryPending = new Array<boolean>(n).fill(false);
    for (let c = 0; c < n; c++) this.cpus.push(ctx.scheduler.actor({ name: `swapper/${c}`, kind: 'host-cpu', cpu: c }));

    const PROP = 1 * MIB; // 64 KiB: 16 INTID bits
    const PEND = 2 * MIB; // one 64 KiB table per redistributor
    this.nextPage = PEND + n * 0x10000;
    this.memory.fill(PROP, 0x10000, LPI_PROP_GROUP1 | 0xa0); // disabled until requested
    this.gic.distributor.write32(GICD_CTLR, GICD_CTLR_ENABLE_G1);
    for (let c = 0; c < n; c++) {
      const rd = this.gic.redistributors[c];
      rd.write32(0x14, 0); // GICR_WAKER: wake up
      rd.write64(GICR_PROPBASER, BigInt(PROP) | 15n);
      rd.write64(GICR_PENDBASER, BigInt(PEND + c * 0x10000) | (1n << 62n));
      rd.write32(GICR_CTLR, 1);
      const cpu = this.gic.cpuInterfaces[c];
      cpu.writeSysreg('ICC_PMR_EL1', 0xf0);
      cpu.writeSysreg('ICC_CTLR_EL1', 2); // EOImode = 1: the host runs at EL2 with split drop/deactivate
      cpu.writeSysreg('ICC_IGRPEN1_EL1', 1);
      cpu.onIrqSignal = (asserted) => {
        if (asserted) this.signal(c);
      };
    }
    this.its = new Its(this.gic, this.memory, { flavor: 'hardware', baseAddress: 0x0808_0000 });
    this.driver = new ItsDriver(this.its, this.memory, {
      cmdq: this.allocPages(1),
      deviceTable: this.allocPages(1),
      collectionTable: this.allocPages(1),
      vpeTable: version === 'v3' ? undefined : this.allocPages(1),
      ittBase: this.allocPages(16),
    }, this.channel);
    this.driver.init();
    for (let c = 0; c < n; c++) this.driver.send('its_send_mapc', ItsCommand.mapc(c, c, true));
    // KVM's per-CPU maintenance interrupt (vgic_init: request_percpu_irq(vgic_maintenance_handler)).
    // Its only job is to make the vCPU exit; by the time the host takes it, the world switch has
    // cleared ICH_HCR, so the handler just sees the (level) line low again.
    this.handlers.set(MAINTENANCE_PPI, {
      name: 'vgic_maintenance_handler',
      fn: (_intid, cpu) => {
        this.gic.setPpiLevel(cpu, MAINTENANCE_PPI, false);
        return 'handled';
      },
    });
    for (let c = 0; c < n; c++) this.setIrqEnabled(MAINTENANCE_PPI, true, c);
  }

  get numCpus(): number {
    return this.gic.numCpus;
  }

  get version(): GicVersion {
    return this.gic.version;
  }

  /** Allocates `pages` 64 KiB pages of host memory (zeroed). */
  allocPages(pages: number): number {
    const a = this.nextPage;
    this.nextPage += pages * 0x10000;
    if (this.nextPage > this.memory.size) throw new VirqError(GicErrorCode.ConfigInvalid, 'host GIC memory exhausted');
    return a;
  }

  private nextVpeId = 0;

  /** Allocates a vPE id (its_vpe_id_alloc). */
  allocVpeId(): number {
    return this.nextVpeId++;
  }

  /** Allocates `count` host LPIs (its_lpi_alloc). */
  allocLpis(count: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(this.nextLpi++);
    if (this.nextLpi >= 2 ** this.gic.lpiIdBits) throw new VirqError(GicErrorCode.ConfigInvalid, 'host LPI space exhausted');
    return out;
  }

  /** request_irq: enables the interrupt and installs `fn`. */
  requestIrq(intid: number, name: string, fn: HostIrqHandler, cpu = 0): void {
    if (this.handlers.has(intid)) throw new VirqError(GicErrorCode.IrqBusy, `host IRQ ${intid} already has a handler (${this.handlers.get(intid)!.name})`, { errno: 'EBUSY' });
    this.handlers.set(intid, { name, fn });
    this.setIrqEnabled(intid, true, cpu);
  }

  freeIrq(intid: number): void {
    this.handlers.delete(intid);
    this.setIrqEnabled(intid, false);
  }

  /** enable_irq / disable_irq: LPIs through the property table + GICR_INVLPIR (lpi_update_config). */
  setIrqEnabled(intid: number, enabled: boolean, cpu = 0): void {
    if (intid >= LPI_BASE_INTID) {
      const rd = this.gic.redistributors[cpu];
      const addr = rd.propTable + (intid - LPI_BASE_INTID);
      const b = this.memory.read8(addr);
      this.memory.write8(addr, enabled ? b | LPI_PROP_ENABLED : b & ~LPI_PROP_ENABLED);
      rd.write64(GICR_INVLPIR, BigInt(intid));
      return;
    }
    const irq = this.gic.irqFor(intid, cpu);
    if (irq === undefined) return;
    irq.enabled = enabled;
    this.gic.irqChanged(irq);
  }

  /**
   * The MSI domain for an assigned device (its_irq_domain_alloc): MAPD on the host ITS and a
   * host LPI per event, delivered to `cpu`. Returns the host LPIs (the host IRQ numbers).
   */
  mapDevice(deviceId: number, nvec: number, cpu = 0): number[] {
    const bits = Math.max(1, Math.ceil(Math.log2(Math.max(2, nvec))));
    this.driver.mapDevice(deviceId, bits);
    const lpis = this.allocLpis(nvec);
    lpis.forEach((lpi, e) => {
      this.driver.mapEvent(deviceId, e, lpi, cpu);
      this.lpiSource.set(lpi, { deviceId, eventId: e, cpu });
    });
    return lpis;
  }

  /** A device's MSI write arriving at the host ITS (its GITS_TRANSLATER). */
  deviceMsi(deviceId: number, eventId: number): TranslateResult {
    return this.its.translate(deviceId, eventId);
  }

  /** A vCPU enters guest mode on `cpu`: physical interrupts there now make it exit. */
  occupy(cpu: number, sink: PhysicalIrqSink): void {
    this.occupants[cpu] = sink;
    if (this.gic.cpuInterfaces[cpu].irqAsserted) this.signal(cpu);
  }

  vacate(cpu: number): void {
    this.occupants[cpu] = undefined;
  }

  private signal(c: number): void {
    if (this.entryPending[c]) return;
    this.entryPending[c] = true;
    const occ = this.occupants[c];
    if (occ !== undefined) occ.physicalIrq(c); // the vCPU exits (IRQ) and runs handleIrqs on its way out
    else this.ctx.scheduler.after(0, this.cpus[c], () => this.handleIrqs(c, this.cpus[c]));
  }

  /** Linux gic_handle_irq on host CPU `c`: acknowledge, handle, priority drop, deactivate. */
  handleIrqs(c: number, actor: Actor): void {
    this.entryPending[c] = false;
    const cpu = this.gic.cpuInterfaces[c];
    if (this.channel.on) this.channel.emit('host.irq-entry', 'gic_handle_irq', 'do_interrupt_handler', { cpu: c }, undefined, actor);
    for (let guard = 0; guard < 1024; guard++) {
      const intid = cpu.iar1();
      if (intid === INTID_SPURIOUS) break;
      this.stats.hostIrqs++;
      const h = this.handlers.get(intid);
      if (this.channel.on) this.channel.emit('host.irq', 'generic_handle_domain_irq', 'gic_handle_irq', { cpu: c, intid, handler: h?.name ?? 'none' }, undefined, actor);
      const r = h === undefined ? 'handled' : h.fn(intid, c, actor);
      if (h === undefined) this.stats.spurious++;
      cpu.eoir1(intid); // priority drop (EOImode = 1)
      if (r !== 'keep-active') cpu.dir(intid);
    }
  }

  /** A guest deactivated an LR with HW = 1: the physical interrupt is deactivated (no exit). */
  deactivatePhysical(pintid: number, cpu: number): void {
    const irq = this.gic.irqFor(pintid, cpu);
    if (irq === undefined || !irq.active) return;
    irq.active = false;
    // Hardware: the guest's deactivation of an HW = 1 list register deactivates pINTID in the physical GIC.
    if (this.channel.on) this.channel.emit('host.deactivate', 'hw:gic_deactivate_physical', undefined, { pintid, cpu });
    this.gic.irqChanged(irq);
  }

  /**
   * irq_set_irqchip_state(IRQCHIP_STATE_ACTIVE): sets or clears the active state of physical
   * `intid` at `cpu` (GICD/GICR_ISACTIVER / ICACTIVER) — an active interrupt is not signalled
   * to the CPU again until deactivated (how KVM keeps a forwarded timer from firing on the host).
   */
  setPhysicalActive(intid: number, cpu: number, active: boolean): void {
    const irq = this.gic.irqFor(intid, cpu);
    if (irq === undefined || irq.active === active) return;
    irq.active = active;
    this.gic.irqChanged(irq);
  }

  /** Whether physical `intid` is active (seen from `cpu`). */
  isActive(intid: number, cpu = 0): boolean {
    return this.gic.irqFor(intid, cpu)?.active ?? false;
  }
}
