import { VirqError } from '@virq/core';
import { binding } from './binding.js';
import { NativeErrorCode, argumentError, closedError, syscallError } from './errors.js';
import { fdSize } from './fd.js';

/** A MAP_SHARED mapping seen from JS without copies. */
export interface MappedMemory {
  /** Zero-copy view of the mapping; detached (byteLength 0) once unmapped. */
  readonly buffer: ArrayBuffer;
  readonly size: number;
  /** Offset in the file the mapping starts at. */
  readonly offset: number;
  readonly readonly: boolean;
  readonly mapped: boolean;
  /** munmap(2); views over `buffer` become empty instead of pointing at freed memory. */
  unmap(): void;
}

export interface MmapOptions {
  /** PROT_READ only. Default false (PROT_READ|PROT_WRITE). */
  readonly?: boolean;
  /**
   * Allow a mapping that extends past the end of a regular file. Touching such pages raises
   * SIGBUS, which kills Node, so it is refused unless asked for. Default false.
   */
  allowPastEof?: boolean;
}

const PAGE_SIZE = 4096;

class Mapping implements MappedMemory {
  private live = true;
  constructor(
    readonly buffer: ArrayBuffer,
    readonly size: number,
    readonly offset: number,
    readonly readonly: boolean,
  ) {}

  get mapped(): boolean {
    return this.live;
  }

  unmap(): void {
    if (!this.live) throw closedError('MappedMemory');
    this.live = false;
    const r = binding().munmap(this.buffer);
    if (r < 0) throw syscallError(NativeErrorCode.Munmap, 'munmap', r, 'the mapping was already released');
  }
}

/**
 * mmap(2) MAP_SHARED of `size` bytes of `fd` from `offset` (page aligned): writes through the
 * returned buffer are the peer's memory (QEMU's guest RAM for a vhost-user back end).
 * Refuses a range past the end of a regular file (SIGBUS on touch), see MmapOptions.
 */
export function mmapFd(fd: number, size: number, offset = 0, opts: MmapOptions = {}): MappedMemory {
  if (!Number.isInteger(fd) || fd < 0) throw argumentError(`mmapFd needs an fd, got ${fd}`);
  if (!Number.isSafeInteger(size) || size <= 0) throw argumentError(`mmap size must be a positive integer, got ${size}`);
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE_SIZE !== 0) {
    throw argumentError(`mmap offset must be a non-negative multiple of the page size (${PAGE_SIZE}), got ${offset}`);
  }
  if (!opts.allowPastEof) {
    const st = fdSize(fd);
    if (st.regular && offset + size > st.size) {
      throw new VirqError(
        NativeErrorCode.Mmap,
        `mmap of ${size} bytes at offset ${offset} passes the end of fd ${fd} (${st.size} bytes): touching those pages would raise SIGBUS; map at most ${Math.max(0, st.size - offset)} bytes or pass allowPastEof`,
        { errno: 'EINVAL', details: { fd, size, offset, fileSize: st.size } },
      );
    }
  }
  const r = binding().mmap(fd, size, offset, !opts.readonly);
  if (typeof r === 'number') {
    throw syscallError(NativeErrorCode.Mmap, 'mmap', r, 'check the fd is open with a matching access mode and the size/offset', { fd, size, offset });
  }
  return new Mapping(r, size, offset, opts.readonly ?? false);
}
