import type { Scheduler } from '@virq/core';
import { VirtioBlk, type GuestVirtioBlk } from '@virq/virtio-pci';

/** The disk behind a virtio-blk device in machine runs: 16 MiB of zeroes. */
export const BLK_DISK_BYTES = 16 << 20;
/** A request's time in QEMU's block layer and the host disk (est.: a fast NVMe 4 KiB read, ~20 µs). */
export const BLK_IO_LATENCY_NS = 20_000;

/**
 * fio-like random 4 KiB reads at `ioDepth` in a closed loop: every completion (virtblk_done,
 * in the guest's interrupt handler) submits the next request (virtio_queue_rq → kick) until
 * `untilNs`. `asGuest` runs the first submissions as guest code on the device's vCPU.
 */
export function startBlkClosedLoop(s: Scheduler, driver: GuestVirtioBlk, ioDepth: number, untilNs: number, asGuest: (fn: () => void) => void): void {
  const blocks = BLK_DISK_BYTES / 4096;
  const submit = (): void => {
    if (s.now >= untilNs) return;
    driver.queueRq({ type: VirtioBlk.T_IN, sector: s.prng.int(0, blocks - 1) * 8, len: 4096 }, submit);
  };
  asGuest(() => {
    for (let i = 0; i < ioDepth; i++) submit();
  });
}
