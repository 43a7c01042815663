import { defineFlow } from './flow-kit.js';
import { armAssignedDevice, armFlowRig } from './arm-flow-rig.js';

/**
 * F19 (seed 004): GICv4 direct injection. An assigned device's MSI is forwarded as a vLPI
 * (kvm_vgic_v4_set_forwarding → its_map_vlpi: DISCARD + VMAPTI on the host ITS). `resident`:
 * the device writes GITS_TRANSLATER while its vPE is resident on the redistributor — the ITS
 * sets the vLPI pending (hw:its_translate) and the redistributor hands it to the running
 * vCPU (hw:its_vlpi_direct) with no hypervisor involvement and no exit.
 * `non-resident`: the vCPU has blocked in WFI (vPE not resident): the ITS sets the bit in the
 * vPE's virtual pending table and raises the vPE's doorbell to the host, which wakes and
 * schedules the vCPU (vgic_v4_load → its_make_vpe_resident → its_vpe_schedule); the guest
 * then takes the vLPI.
 */
export const f19Gicv4DirectVlpi = defineFlow('F19', (s) => {
  const r = armFlowRig(s.ctx, 'v4', { vcpus: 1, hostCpus: 2 });
  const { vm, host } = r;
  const sched = s.ctx.scheduler;
  const dev = armAssignedDevice(r, 0x100, 1);
  vm.kvmVgicV4SetForwarding(dev.hostIrq, dev.routes.entries().find((e) => e.gsi === dev.gsi)!);
  const got: number[] = [];
  const vcpu = vm.vcpus[0]!;
  vcpu.onInterrupt(dev.guestLpi, (i) => got.push(i));
  const resident = s.variant === 'resident';
  vcpu.guest.idleWithWfi = !resident;
  sched.runUntil(50_000);
  if (!resident) {
    vcpu.guestWfi();
    sched.runUntil(100_000);
  }
  const nic = sched.actor({ name: 'nic-dma', kind: 'device', cpu: 1 });
  const exits = vm.exitCounts().total;
  const wasResident = vcpu.vpe!.resident;
  s.mark();
  sched.at(sched.now + 10_000, nic, () => host.deviceMsi(0x100, 0));
  sched.runUntil(sched.now + 100_000);
  s.notes.push(`vPE resident when the device wrote: ${wasResident}; guest took vLPI ${got.join(', ') || 'nothing'}; VM exits meanwhile: ${vm.exitCounts().total - exits}`);
});
