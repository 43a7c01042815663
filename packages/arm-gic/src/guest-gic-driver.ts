import { type MsiMessage, msiMessage } from '@virq/core';
import type { ArmVm } from './arm-vm.js';
import { ItsCommand } from './its-command.js';
import { ItsDriver } from './its-driver.js';
import {
  GICD_CTLR, GICD_CTLR_ARE, GICD_CTLR_ENABLE_G1, GICD_ICFGR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER, GICR_CTLR,
  GICR_ICFGR1, GICR_IPRIORITYR0, GICR_ISENABLER0, GICR_PENDBASER, GICR_PROPBASER, GICR_SGI_FRAME, GICR_WAKER, LPI_BASE_INTID,
  LPI_PROP_ENABLED, LPI_PROP_GROUP1, peAffinityValue,
} from './registers.js';

/** Linux's default interrupt priority (GICD_INT_DEF_PRI) and LPI priority (LPI_PROP_DEFAULT_PRIO). */
export const GUEST_DEFAULT_PRIORITY = 0xa0;

/**
 * The guest kernel's GICv3 + ITS drivers at boot and at request_irq time (Linux
 * irq-gic-v3.c, irq-gic-v3-its.c): distributor and redistributor set-up, LPI tables and the
 * ITS in guest memory, SPI configuration, MSI allocation (MAPD/MAPTI + property byte + INV).
 * Set-up is done at once, without modelling the DABT_LOW exits each access would cost —
 * the flows virq measures start after boot.
 */
export class GuestGicDriver {
  readonly its: ItsDriver;
  private nextLpi = LPI_BASE_INTID;
  private readonly prop: number;
  private readonly pend: number;

  constructor(
    private readonly vm: ArmVm,
    readonly tablesGpa: number,
  ) {
    const n = vm.vcpus.length;
    this.prop = tablesGpa;
    this.pend = tablesGpa + 0x10000;
    const itsBase = this.pend + n * 0x10000;
    this.its = new ItsDriver(vm.its, vm.memory, {
      cmdq: itsBase,
      deviceTable: itsBase + 0x10000,
      collectionTable: itsBase + 0x20000,
      ittBase: itsBase + 0x30000,
    }, vm.channel);
  }

  /** Bytes of guest memory the driver's tables need from `tablesGpa`. */
  static tablesSize(numVcpus: number): number {
    return 0x10000 * (1 + numVcpus + 3) + 0x100000;
  }

  /** gic_init_bases + its_init: enable the distributor, wake the redistributors, LPIs, the ITS. */
  boot(): void {
    const vm = this.vm;
    const mem = vm.memory;
    mem.fill(this.prop, 0x10000, LPI_PROP_GROUP1 | GUEST_DEFAULT_PRIORITY); // allocated LPIs start disabled
    vm.gic.distributor.write32(GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1);
    for (let i = 0; i < vm.vcpus.length; i++) {
      const rd = vm.gic.redistributors[i];
      rd.write32(GICR_WAKER, 0);
      rd.write64(GICR_PROPBASER, BigInt(this.prop) | 15n);
      rd.write64(GICR_PENDBASER, BigInt(this.pend + i * 0x10000) | (1n << 62n));
      rd.write32(GICR_CTLR, 1);
      // ICC_PMR_EL1 = 0xf0, ICC_IGRPEN1_EL1 = 1: through the virtual CPU interface (ICH_VMCR).
      const cpuif = vm.vgic.cpus[i].cpuif;
      cpuif.vpmr = 0xf0;
      cpuif.veng1 = true;
      vm.gic.cpuInterfaces[i].writeSysreg('ICC_PMR_EL1', 0xf0);
      vm.gic.cpuInterfaces[i].writeSysreg('ICC_IGRPEN1_EL1', 1);
    }
    this.its.init();
    for (let i = 0; i < vm.vcpus.length; i++) this.its.mapCollection(i, i);
  }

  /** request_irq for SPI `intid`: trigger, priority, route to `vcpu`, enable. */
  enableSpi(intid: number, o: { trigger?: 'edge' | 'level'; priority?: number; vcpu?: number } = {}): void {
    const d = this.vm.gic.distributor;
    const cfgOff = GICD_ICFGR + Math.floor(intid / 16) * 4;
    const sh = (intid % 16) * 2;
    const cfg = d.read32(cfgOff);
    d.write32(cfgOff, o.trigger === 'edge' ? cfg | (2 << sh) : cfg & ~(2 << sh));
    const priOff = GICD_IPRIORITYR + (intid & ~3);
    const pri = d.read32(priOff);
    const b = (intid & 3) * 8;
    d.write32(priOff, ((pri & ~(0xff << b)) | ((o.priority ?? GUEST_DEFAULT_PRIORITY) << b)) >>> 0);
    d.write64(GICD_IROUTER + 8 * intid, BigInt(peAffinityValue(o.vcpu ?? 0)));
    d.write32(GICD_ISENABLER + Math.floor(intid / 32) * 4, 1 << (intid % 32));
  }

  /** request_irq for PPI `intid` of `vcpu` (e.g. the virtual timer, PPI 27). */
  enablePpi(vcpu: number, intid: number, o: { trigger?: 'edge' | 'level'; priority?: number } = {}): void {
    const rd = this.vm.gic.redistributors[vcpu];
    const cfg = rd.read32(GICR_SGI_FRAME + GICR_ICFGR1);
    const sh = (intid - 16) * 2;
    rd.write32(GICR_SGI_FRAME + GICR_ICFGR1, o.trigger === 'edge' ? cfg | (2 << sh) : cfg & ~(2 << sh));
    const priOff = GICR_SGI_FRAME + GICR_IPRIORITYR0 + (intid & ~3);
    const pri = rd.read32(priOff);
    const b = (intid & 3) * 8;
    rd.write32(priOff, ((pri & ~(0xff << b)) | ((o.priority ?? GUEST_DEFAULT_PRIORITY) << b)) >>> 0);
    rd.write32(GICR_SGI_FRAME + GICR_ISENABLER0, 1 << intid);
  }

  /** Enables SGIs 0–15 on every vCPU (Linux's IPIs). */
  enableSgis(): void {
    for (let i = 0; i < this.vm.vcpus.length; i++) this.vm.gic.redistributors[i].write32(GICR_SGI_FRAME + GICR_ISENABLER0, 0xffff);
  }

  /**
   * pci_alloc_irq_vectors for a device with DeviceID `deviceId`: MAPD, then per vector an
   * LPI (MAPTI to the collection of `vcpu`), enabled in the property table + INV. Returns
   * the MSI messages the device must send, vector by vector.
   */
  mapMsi(deviceId: number, nvec: number, vcpu = 0): { lpis: number[]; messages: MsiMessage[] } {
    const bits = Math.max(1, Math.ceil(Math.log2(Math.max(2, nvec))));
    this.its.mapDevice(deviceId, bits);
    const lpis: number[] = [];
    const messages: MsiMessage[] = [];
    for (let e = 0; e < nvec; e++) {
      const lpi = this.nextLpi++;
      this.its.mapEvent(deviceId, e, lpi, vcpu);
      this.vm.memory.write8(this.prop + (lpi - LPI_BASE_INTID), LPI_PROP_GROUP1 | GUEST_DEFAULT_PRIORITY | LPI_PROP_ENABLED);
      this.its.send('its_send_inv', ItsCommand.inv(deviceId, e));
      lpis.push(lpi);
      messages.push(msiMessage(this.vm.its.translaterAddress, e, deviceId));
    }
    return { lpis, messages };
  }
}
