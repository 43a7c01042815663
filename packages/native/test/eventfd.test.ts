import { VirqError } from '@virq/core';
import { EVENTFD_COUNTER_MAX, FdWatcher, NativeEventFd, closeFd, dupFd, fdInfo } from '@virq/native';
import { describeNative, loopTurns, until } from './native-support.js';

// Expectations come from eventfd(2): the counter is a u64; write adds; read returns the value
// and resets it to 0 (EFD_SEMAPHORE: returns 1 and decrements); read at 0 is EAGAIN with
// EFD_NONBLOCK; the largest counter is 0xfffffffffffffffe and a write that would pass it is
// EAGAIN; writing 0xffffffffffffffff is EINVAL.
describeNative('NativeEventFd against the kernel', () => {
  const open: NativeEventFd[] = [];
  const make = (o?: Parameters<typeof NativeEventFd.create>[0]): NativeEventFd => {
    const e = NativeEventFd.create(o);
    open.push(e);
    return e;
  };
  afterEach(() => {
    for (const e of open.splice(0)) e.close();
  });

  it('adds writes, returns and clears on read, and is EAGAIN at zero', () => {
    const e = make();
    expect(e.tryRead()).toBeUndefined();
    e.write(3);
    e.write(4n);
    e.write();
    expect(e.tryRead()).toBe(8n);
    expect(e.tryRead()).toBeUndefined();
    expect(() => e.read()).toThrow(VirqError);
    try {
      e.read();
    } catch (err) {
      expect(VirqError.is(err, 'native.eventfd')).toBe(true);
      expect((err as VirqError).errno).toBe('EAGAIN');
    }
  });

  it('starts at initval', () => {
    const e = make({ initval: 42 });
    expect(e.read()).toBe(42n);
  });

  it('in semaphore mode returns 1 per read and decrements', () => {
    const e = make({ initval: 3, semaphore: true });
    expect([e.tryRead(), e.tryRead(), e.tryRead(), e.tryRead()]).toEqual([1n, 1n, 1n, undefined]);
    e.write(2);
    expect([e.tryRead(), e.tryRead(), e.tryRead()]).toEqual([1n, 1n, undefined]);
  });

  it('holds up to 0xfffffffffffffffe; a write past it is EAGAIN', () => {
    const e = make();
    e.write(EVENTFD_COUNTER_MAX);
    expect(e.tryWrite(1)).toBe(false);
    expect(() => e.write(1)).toThrow(expect.objectContaining({ code: 'native.eventfd', errno: 'EAGAIN' }));
    expect(e.read()).toBe(0xfffffffffffffffen);
    expect(e.tryWrite(1)).toBe(true);
    expect(e.read()).toBe(1n);
  });

  it('refuses 2^64-1 and negative values before the kernel sees them', () => {
    const e = make();
    expect(() => e.write(0xffffffffffffffffn)).toThrow(expect.objectContaining({ code: 'native.argument' }));
    expect(() => e.write(-1)).toThrow(expect.objectContaining({ code: 'native.argument' }));
    expect(() => e.write(1.5)).toThrow(expect.objectContaining({ code: 'native.argument' }));
  });

  it('is non-blocking and close-on-exec by default, blocking when asked', () => {
    const e = make();
    expect(fdInfo(e.fd)).toMatchObject({ nonBlocking: true, closeOnExec: true, accessMode: 2 });
    const b = make({ nonblock: false });
    expect(fdInfo(b.fd).nonBlocking).toBe(false);
  });

  it('shares one counter between dup()ed fds (one open file description)', () => {
    const e = make();
    const other = NativeEventFd.fromFd(dupFd(e.fd));
    open.push(other);
    expect(other.fd).not.toBe(e.fd);
    other.write(5);
    expect(e.read()).toBe(5n);
    expect(other.tryRead()).toBeUndefined();
  });

  it('calls onReadable from the loop after a write, level-triggered until drained', async () => {
    const e = make();
    let calls = 0;
    let drain = false;
    const seen: bigint[] = [];
    e.onReadable(() => {
      calls++;
      if (drain) seen.push(e.read());
    });
    await loopTurns(3);
    expect(calls).toBe(0); // counter 0: not readable
    setTimeout(() => e.write(7), 2);
    await until(() => calls >= 1, 'first readiness callback');
    await until(() => calls >= 3, 'level-triggered repeats while the counter stays non-zero');
    drain = true;
    await until(() => seen.length === 1, 'draining read');
    expect(seen).toEqual([7n]);
    const after = calls;
    await loopTurns(5);
    expect(calls).toBe(after); // drained: quiet again
    e.write(1);
    await until(() => seen.length === 2, 'readiness after a second write');
    expect(seen[1]).toBe(1n);
    e.onReadable(undefined);
    e.write(1);
    await loopTurns(5);
    expect(seen.length).toBe(2);
  });

  it('allows one watcher per fd and stops it when the fd is closed', () => {
    const e = make();
    const w = new FdWatcher(e.fd, () => undefined);
    expect(() => new FdWatcher(e.fd, () => undefined)).toThrow(expect.objectContaining({ code: 'native.poll', errno: 'EEXIST' }));
    expect(FdWatcher.of(e.fd)).toBe(w);
    const fd = dupFd(e.fd);
    const w2 = new FdWatcher(fd, () => undefined);
    closeFd(fd);
    expect(w2.active).toBe(false);
    w.stop();
    w.stop();
    expect(w.active).toBe(false);
  });

  it('closes: the fd number is gone and closing twice is harmless', () => {
    const e = NativeEventFd.create();
    const fd = e.fd;
    e.close();
    e.close();
    expect(e.closed).toBe(true);
    expect(() => e.fd).toThrow(expect.objectContaining({ code: 'native.closed' }));
    expect(() => fdInfo(fd)).toThrow(expect.objectContaining({ code: 'native.fcntl', errno: 'EBADF' }));
    expect(() => closeFd(fd)).toThrow(expect.objectContaining({ code: 'native.close', errno: 'EBADF' }));
  });
});
