import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { FdWatcher, NativeEventFd, PollEvent, UnixStreamSocket, dupFd } from '@virq/native';
import { describeNative, loopTurns, until } from './native-support.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const register = path.join(here, '..', '..', '..', 'tools', 'ts-register.mjs');

describeNative('FdWatcher (uv_poll in the loop)', () => {
  it('serves a worker thread: its loop wakes on a write from this thread, and terminate() releases its watcher', async () => {
    const e = NativeEventFd.create();
    const worker = new Worker(path.join(here, 'watcher-worker.ts'), { execArgv: ['--import', register], workerData: { fd: dupFd(e.fd) } });
    const msgs: string[] = [];
    worker.on('message', (m: string) => msgs.push(m));
    try {
      await until(() => msgs.includes('ready'), 'the worker to start', 20000);
      e.write(41);
      await until(() => msgs.includes('read 41'), 'the worker to see the write', 5000);
    } finally {
      // The worker's watcher is still active: terminating must close it cleanly (env cleanup hook).
      expect(await worker.terminate()).toBe(1);
    }
    // This thread's loop and the addon keep working after the worker's environment is gone.
    let fired = 0;
    e.onReadable(() => {
      fired++;
      e.read();
    });
    e.write(1);
    await until(() => fired === 1, 'readiness after the worker was terminated');
    e.close();
  }, 30000);

  it('reports writability and switches the watched events', async () => {
    const [a, b] = UnixStreamSocket.pair();
    const seen: number[] = [];
    const w = new FdWatcher(a.fd, (ev) => {
      seen.push(ev);
      w.setEvents(PollEvent.Readable); // writable is level-triggered too: stop asking
      if (ev & PollEvent.Readable) while (a.recvMsg(16, 0)) {} // drain, or it fires again
    }, { events: PollEvent.Writable });
    await until(() => seen.length === 1, 'an empty socket to be writable');
    expect(seen[0] & PollEvent.Writable).toBe(PollEvent.Writable);
    expect(w.watching).toBe(PollEvent.Readable);
    await loopTurns(3);
    expect(seen).toHaveLength(1);
    b.sendMsg(new Uint8Array([1]));
    await until(() => seen.length >= 2, 'readable after the peer wrote');
    expect(seen[1] & PollEvent.Readable).toBe(PollEvent.Readable);
    await loopTurns(3);
    expect(seen).toHaveLength(2); // drained: quiet again
    w.stop();
    a.close();
    b.close();
  });

  it('does not keep the loop alive when unref()ed, and rejects bad arguments', () => {
    const e = NativeEventFd.create();
    const w = new FdWatcher(e.fd, () => undefined, { ref: false });
    w.ref();
    w.unref();
    w.stop();
    expect(() => w.unref()).toThrow(expect.objectContaining({ code: 'native.closed' }));
    expect(() => new FdWatcher(-1, () => undefined)).toThrow(expect.objectContaining({ code: 'native.argument' }));
    expect(() => new FdWatcher(e.fd, () => undefined, { events: 0 })).toThrow(expect.objectContaining({ code: 'native.argument' }));
    e.close();
  });
});
