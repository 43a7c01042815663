import { TraceRecorder } from '@virq/core';
import { BlkIoWorkload, type BlkCompletion, VirtioBlk, VirtioStatus } from '@virq/virtio-pci';
import { blkMachine, onVcpu } from './harness.js';

describe('virtio-blk (F1): virtio_queue_rq → vp_notify → handler → status byte', () => {
  test('capacity from device config; read returns the sectors; write lands in the backing store', () => {
    const m = blkMachine({ sectors: 64 });
    const d = onVcpu(m, () => m.probe());
    expect(d.capacity).toBe(64);
    const res: BlkCompletion[] = [];
    onVcpu(m, () => d.queueRq({ type: VirtioBlk.T_IN, sector: 5, len: 1024 }, (c) => res.push(c)));
    expect(res[0]!.status).toBe(VirtioBlk.S_OK);
    expect(res[0]!.data![0]).toBe(5);
    expect(res[0]!.data![512]).toBe(6);
    const data = new Uint8Array(512).fill(0xab);
    onVcpu(m, () => d.queueRq({ type: VirtioBlk.T_OUT, sector: 10, data }, (c) => res.push(c)));
    expect(res[1]!.status).toBe(VirtioBlk.S_OK);
    expect(m.backing.subarray(10 * 512, 11 * 512)).toEqual(data);
  });

  test('GET_ID returns the serial (20 bytes max), FLUSH is OK, unknown type is UNSUPP, past the end is IOERR', () => {
    const m = blkMachine({ sectors: 16 });
    const d = onVcpu(m, () => m.probe());
    const res: BlkCompletion[] = [];
    onVcpu(m, () => {
      d.queueRq({ type: VirtioBlk.T_GET_ID, sector: 0, len: 20 }, (c) => res.push(c));
      d.queueRq({ type: VirtioBlk.T_FLUSH, sector: 0 }, (c) => res.push(c));
      d.queueRq({ type: 99, sector: 0 }, (c) => res.push(c));
      d.queueRq({ type: VirtioBlk.T_IN, sector: 15, len: 1024 }, (c) => res.push(c));
    });
    expect(new TextDecoder().decode(res[0]!.data!)).toBe('VIRQ-SERIAL-0001\0\0\0\0');
    expect(res.map((c) => c.status)).toEqual([VirtioBlk.S_OK, VirtioBlk.S_OK, VirtioBlk.S_UNSUPP, VirtioBlk.S_IOERR]);
  });

  test('the F1 trace: virtio_queue_rq, virtqueue_add, kick_prepare, vp_notify, host notifier, handle_request, vring_interrupt', () => {
    const m = blkMachine();
    const d = onVcpu(m, () => m.probe());
    const rec = new TraceRecorder(m.ctx.trace.events$);
    onVcpu(m, () => d.queueRq({ type: VirtioBlk.T_IN, sector: 0, len: 512 }));
    const fns = rec.functions();
    const order = [
      'virtio_queue_rq', 'virtqueue_add_split', 'virtqueue_kick_prepare', 'virtqueue_notify', 'vp_notify',
      'virtio_queue_host_notifier_read', 'virtio_queue_notify_vq', 'virtqueue_pop', 'virtio_blk_handle_request', 'virtqueue_flush',
      'virtio_notify', 'virtio_irq', 'virtio_notify_vector', 'virtio_pci_notify', 'msix_notify', 'msi_send_message',
      'vring_interrupt', 'virtqueue_get_buf_ctx_split', 'virtblk_done',
    ];
    expect(fns.filter((f) => order.includes(f))).toEqual(order);
    expect(rec.events.find((e) => e.fn === 'virtio_notify')!.caller).toBe('virtio_blk_req_complete');
    expect(m.access.ioeventfdHits).toBe(1);
  });

  test('a request with no device-writable status buffer is a guest error: NEEDS_RESET, no exception', () => {
    const m = blkMachine();
    const d = onVcpu(m, () => m.probe());
    const vq = d.pci.vqs[0]!;
    onVcpu(m, () => {
      const hdr = m.alloc.alloc(16, 16);
      vq.addOutbuf(hdr, 16, 'bad');
      vq.kick();
    });
    expect(m.blk.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET);
    expect(m.blk.errors.map((e) => e.message)).toEqual(['blk0: virtio-blk missing headers']);
    expect(d.pci.configChanges).toBe(1);
  });

  test('a ring whose avail idx jumps past the queue size: the ring reports it, the device goes to NEEDS_RESET', () => {
    const m = blkMachine();
    const d = onVcpu(m, () => m.probe());
    const q = m.blk.queues[0]!;
    onVcpu(m, () => {
      m.mem.write16(q.driver + 2, 1000); // avail.idx
      d.pci.vpNotify(0);
    });
    expect(m.blk.status & VirtioStatus.DEVICE_NEEDS_RESET).toBe(VirtioStatus.DEVICE_NEEDS_RESET);
    expect(m.blk.errors[0]!.code).toBe('virtio.ring-error');
  });

  test('workload at I/O depth 8: every request completes, never more than 8 in flight', () => {
    const m = blkMachine({ ioLatencyNs: 20_000 });
    const d = onVcpu(m, () => m.probe());
    const w = new BlkIoWorkload(m.ctx, { driver: d, vcpu: m.vcpu, iodepth: 8, blockSize: 4096, count: 200, rw: 'randread' });
    let maxInflight = 0;
    const orig = d.queueRq.bind(d);
    d.queueRq = (r, cb, last) => {
      const ok = orig(r, cb, last);
      maxInflight = Math.max(maxInflight, d.inflight);
      return ok;
    };
    w.start();
    m.ctx.scheduler.runUntilIdle();
    expect(w.completed).toBe(200);
    expect(w.errors).toBe(0);
    expect(maxInflight).toBe(8);
    expect(w.latency.percentile(50)).toBeGreaterThanOrEqual(20_000);
  });
});
