import fs from 'node:fs';
import { FileSeal, NativeEventFd, addSeals, closeFd, dupFd, fdSize, fileSeals, memfdCreate, mmapFd } from '@virq/native';
import { describeNative } from './native-support.js';

// memfd_create(2): the fd names itself "memfd:<name>" and the file is anonymous (shown
// "(deleted)" in /proc); ftruncate sizes it. mmap(2) MAP_SHARED: every mapping of the same
// file shares pages, and a mapping outlives the fd it was made from.
describeNative('memfd + mmap', () => {
  it('creates a sized, anonymous memfd', () => {
    const fd = memfdCreate('virq-test', 3 * 4096);
    try {
      expect(fdSize(fd)).toEqual({ size: 3 * 4096, regular: true });
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe('/memfd:virq-test (deleted)');
    } finally {
      closeFd(fd);
    }
  });

  it('shares memory between two mappings of the same memfd, both ways', () => {
    const size = 2 * 1024 * 1024;
    const fd = memfdCreate('guest-ram', size);
    const a = mmapFd(fd, size);
    const b = mmapFd(fd, size);
    closeFd(fd); // the mappings keep the file alive
    try {
      expect(a.buffer.byteLength).toBe(size);
      expect(new Uint8Array(b.buffer)[12345]).toBe(0); // fresh memfd pages are zero
      new DataView(a.buffer).setUint32(0x1000, 0xdeadbeef, true);
      expect(new DataView(b.buffer).getUint32(0x1000, true)).toBe(0xdeadbeef);
      new Uint8Array(b.buffer).set([1, 2, 3], size - 3);
      expect([...new Uint8Array(a.buffer, size - 3)]).toEqual([1, 2, 3]);
    } finally {
      a.unmap();
      b.unmap();
    }
  });

  it('maps at a page offset and through a dup()ed fd', () => {
    const fd = memfdCreate('offset', 4 * 4096);
    const whole = mmapFd(fd, 4 * 4096);
    const fd2 = dupFd(fd);
    const page2 = mmapFd(fd2, 4096, 2 * 4096);
    const ro = mmapFd(fd, 4096, 3 * 4096, { readonly: true });
    try {
      new Uint8Array(page2.buffer)[7] = 0x5a;
      expect(new Uint8Array(whole.buffer)[2 * 4096 + 7]).toBe(0x5a);
      new Uint8Array(whole.buffer)[3 * 4096] = 0x77;
      expect(new Uint8Array(ro.buffer)[0]).toBe(0x77);
      expect(ro.readonly).toBe(true);
      expect(page2.offset).toBe(2 * 4096);
    } finally {
      whole.unmap();
      page2.unmap();
      ro.unmap();
      closeFd(fd);
      closeFd(fd2);
    }
  });

  it('detaches the buffer on unmap so stale views are empty, not dangling', () => {
    const fd = memfdCreate('unmap', 4096);
    const m = mmapFd(fd, 4096);
    const view = new Uint8Array(m.buffer);
    view[0] = 1;
    m.unmap();
    closeFd(fd);
    expect(m.mapped).toBe(false);
    expect(m.buffer.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(view[0]).toBeUndefined();
    expect(() => m.unmap()).toThrow(expect.objectContaining({ code: 'native.closed' }));
  });

  it('refuses a range past the end of the file (SIGBUS on touch) unless asked', () => {
    const fd = memfdCreate('short', 4096);
    try {
      expect(() => mmapFd(fd, 8192)).toThrow(expect.objectContaining({ code: 'native.mmap', errno: 'EINVAL' }));
      expect(() => mmapFd(fd, 4096, 4096)).toThrow(expect.objectContaining({ code: 'native.mmap' }));
      const m = mmapFd(fd, 8192, 0, { allowPastEof: true }); // the kernel allows it; we do not touch page 2
      m.unmap();
      expect(() => mmapFd(fd, 4096, 100)).toThrow(expect.objectContaining({ code: 'native.argument' }));
      expect(() => mmapFd(fd, 0)).toThrow(expect.objectContaining({ code: 'native.argument' }));
    } finally {
      closeFd(fd);
    }
  });

  it('reports the kernel errno when mmap itself fails', () => {
    const e = NativeEventFd.create();
    try {
      // eventfds have no mmap: the kernel answers ENODEV.
      expect(() => mmapFd(e.fd, 4096)).toThrow(expect.objectContaining({ code: 'native.mmap', errno: 'ENODEV' }));
    } finally {
      e.close();
    }
  });

  it('reads back the seals the kernel holds', () => {
    const fd = memfdCreate('sealed', 4096);
    try {
      expect(fileSeals(fd)).toBe(0);
      addSeals(fd, FileSeal.Shrink | FileSeal.Grow);
      expect(fileSeals(fd)).toBe(FileSeal.Shrink | FileSeal.Grow);
      const unsealable = memfdCreate('no-seal', 4096, { allowSealing: false });
      // Without MFD_ALLOW_SEALING the file starts with F_SEAL_SEAL.
      expect(fileSeals(unsealable)).toBe(FileSeal.Seal);
      closeFd(unsealable);
    } finally {
      closeFd(fd);
    }
  });
});
