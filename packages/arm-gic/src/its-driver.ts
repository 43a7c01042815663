import { type GuestMemory, type TraceChannel, VirqError } from '@virq/core';
import { GicErrorCode } from './errors.js';
import { ItsCommand } from './its-command.js';
import type { Its } from './its.js';
import { GITS_BASER, GITS_CBASER, GITS_CREADR, GITS_CTLR, GITS_CWRITER, ITS_CMD_SIZE } from './registers.js';

/** Where an ITS driver puts its tables (all in the memory the ITS reads). */
export interface ItsDriverLayout {
  /** Command queue base (4 KiB aligned) and number of 4 KiB pages (CBASER.Size + 1). */
  cmdq: number;
  cmdqPages?: number;
  /** Device table (64 KiB pages) and its page count. */
  deviceTable: number;
  deviceTablePages?: number;
  collectionTable: number;
  /** vPE table (GICv4 ITS only). */
  vpeTable?: number;
  /** First ITT; each mapped device gets `ittStride` bytes (256-byte aligned). */
  ittBase: number;
  ittStride?: number;
}

/**
 * Where irq-gic-v3-its.c calls each its_send_* helper from on the paths this model runs
 * (host ITS driver and the guest's). A trace shows `its_send_x <- caller`.
 */
export const ITS_SEND_CALLER: Readonly<Record<string, string>> = {
  its_send_mapd: 'its_create_device',
  its_send_mapc: 'its_cpu_init_collection',
  its_send_invall: 'its_cpu_init_collection',
  its_send_mapti: 'its_irq_domain_activate',
  its_send_movi: 'its_set_affinity',
  its_send_discard: 'its_irq_domain_deactivate',
  its_send_int: 'its_irq_set_irqchip_state',
  its_send_clear: 'its_irq_set_irqchip_state',
  its_send_inv: 'lpi_update_config',
  its_send_vinv: 'lpi_update_config',
  its_send_vmapp: 'its_vpe_irq_domain_activate',
  its_send_vmovp: 'its_vpe_set_affinity',
  its_send_vmapti: 'its_vlpi_map',
  its_send_vmovi: 'its_vlpi_map',
  its_send_vinvall: 'its_vpe_invall',
  its_send_vsgi: 'its_configure_sgi',
};

const VCOMMANDS = new Set(['its_send_vmapp', 'its_send_vmovp', 'its_send_vmapti', 'its_send_vmovi', 'its_send_vinvall', 'its_send_vinv', 'its_send_vsgi', 'its_send_vclear', 'its_send_vint']);

/**
 * The command path of an ITS driver (Linux drivers/irqchip/irq-gic-v3-its.c): table and
 * queue set-up at probe, then its_send_* builds a 32-byte command at CWRITER in memory,
 * advances CWRITER and waits until CREADR has passed it (its_wait_for_range_completion).
 * The guest's ITS driver and the host's (KVM's GICv4 plumbing) both use it.
 */
export class ItsDriver {
  private nextItt: number;
  readonly ittStride: number;
  /** Commands posted. */
  posted = 0;

  constructor(
    readonly its: Its,
    readonly memory: GuestMemory,
    readonly layout: ItsDriverLayout,
    private readonly channel?: TraceChannel,
  ) {
    this.ittStride = layout.ittStride ?? 0x100 * 8;
    this.nextItt = layout.ittBase;
  }

  /** its_probe_one / its_alloc_tables / its_init: BASERs, CBASER, then GITS_CTLR.Enabled. */
  init(): void {
    const its = this.its;
    const L = this.layout;
    its.write64(GITS_BASER + 0, BigInt(L.deviceTable) | BigInt((L.deviceTablePages ?? 1) - 1) | (1n << 63n));
    its.write64(GITS_BASER + 8, BigInt(L.collectionTable) | (1n << 63n));
    if (L.vpeTable !== undefined) its.write64(GITS_BASER + 16, BigInt(L.vpeTable) | (1n << 63n));
    its.write64(GITS_CBASER, BigInt(L.cmdq) | BigInt((L.cmdqPages ?? 1) - 1) | (1n << 63n));
    its.write32(GITS_CTLR, 1);
  }

  /** Allocates an ITT for a device with `eventIdBits` EventID bits (its_create_device: 8-byte entries, 256-byte aligned). */
  allocItt(eventIdBits = 8): number {
    const a = this.nextItt;
    this.nextItt += Math.max(this.ittStride, Math.ceil((2 ** eventIdBits * 8) / 256) * 256);
    return a;
  }

  /**
   * Queues commands as the Linux ITS driver function `name` (its_send_mapd, its_send_vmapti …)
   * does, called from its usual caller (ITS_SEND_CALLER; `sendFrom` names another):
   * its_send_single_command writes them at CWRITER and its_wait_for_range_completion polls CREADR.
   */
  send(name: string, ...cmds: Uint8Array[]): void {
    this.sendFrom(ITS_SEND_CALLER[name], name, ...cmds);
  }

  sendFrom(caller: string | undefined, name: string, ...cmds: Uint8Array[]): void {
    const its = this.its;
    const size = its.queueSize;
    let w = Number(its.read64(GITS_CWRITER));
    for (const c of cmds) {
      const r = Number(its.read64(GITS_CREADR)) & ~1;
      if ((w + ITS_CMD_SIZE) % size === r) {
        throw new VirqError(GicErrorCode.ConfigInvalid, `ITS command queue full (CWRITER 0x${w.toString(16)}, CREADR 0x${r.toString(16)})`);
      }
      this.memory.writeBytes(its.queueBase + w, c);
      w = (w + ITS_CMD_SIZE) % size;
      this.posted++;
    }
    if (this.channel?.on === true) this.channel.emit('its.send', name, caller, { commands: cmds.length, cwriter: w });
    its.write64(GITS_CWRITER, BigInt(w));
    const r = Number(its.read64(GITS_CREADR));
    if ((r & 1) !== 0 || (r & ~1) !== w) {
      // v-commands go through its_send_single_vcommand; both poll with its_wait_for_range_completion.
      const sender = VCOMMANDS.has(name) ? 'its_send_single_vcommand' : 'its_send_single_command';
      if (this.channel?.on === true) this.channel.emit('its.timeout', 'its_wait_for_range_completion', sender, { creadr: r, cwriter: w, command: name });
    }
  }

  mapCollection(icid: number, target: number): void {
    this.send('its_send_mapc', ItsCommand.mapc(icid, target, true), ItsCommand.sync(target));
  }

  /** MAPD with a fresh ITT; returns the ITT address. */
  mapDevice(deviceId: number, eventIdBits: number): number {
    const itt = this.allocItt(eventIdBits);
    this.send('its_send_mapd', ItsCommand.mapd(deviceId, eventIdBits, itt, true));
    return itt;
  }

  mapEvent(deviceId: number, eventId: number, intid: number, icid: number): void {
    this.send('its_send_mapti', ItsCommand.mapti(deviceId, eventId, intid, icid));
  }
}
