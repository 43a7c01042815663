import { binding } from './binding.js';
import { NativeErrorCode, argumentError, syscallError } from './errors.js';
import { closeFd } from './fd.js';

export interface MemfdOptions {
  /** MFD_ALLOW_SEALING, so addSeals() can later forbid shrinking/growing. Default true. */
  allowSealing?: boolean;
}

/** F_SEAL_* bits (fcntl(2)). */
export const FileSeal = {
  Seal: 0x1,
  Shrink: 0x2,
  Grow: 0x4,
  Write: 0x8,
  FutureWrite: 0x10,
} as const;

/**
 * memfd_create(2) + ftruncate(2): anonymous shared memory with an fd, the way QEMU's
 * memory-backend-memfd holds guest RAM that a vhost-user back end then mmaps. MFD_CLOEXEC.
 */
export function memfdCreate(name: string, size: number, opts: MemfdOptions = {}): number {
  if (Buffer.byteLength(name) > 249) throw argumentError(`memfd name is at most 249 bytes (memfd_create(2)), got ${Buffer.byteLength(name)}`);
  if (name.includes('\0')) throw argumentError('memfd name may not contain NUL');
  if (!Number.isSafeInteger(size) || size < 0) throw argumentError(`memfd size must be a non-negative integer, got ${size}`);
  const fd = binding().memfdCreate(name, opts.allowSealing ?? true);
  if (fd < 0) throw syscallError(NativeErrorCode.Memfd, 'memfd_create', fd, 'the kernel needs CONFIG_MEMFD_CREATE and free fds', { name });
  const r = binding().ftruncate(fd, size);
  if (r < 0) {
    closeFd(fd);
    throw syscallError(NativeErrorCode.Memfd, 'ftruncate', r, `cannot size the memfd to ${size} bytes`, { name, size });
  }
  return fd;
}

/** F_GET_SEALS of a memfd (FileSeal bits); a non-memfd gives 'native.memfd' EINVAL. */
export function fileSeals(fd: number): number {
  const r = binding().getSeals(fd);
  if (r < 0) throw syscallError(NativeErrorCode.Memfd, 'fcntl(F_GET_SEALS)', r, `fd ${fd} must be a memfd created with sealing allowed`, { fd });
  return r;
}

/** F_ADD_SEALS (FileSeal bits), e.g. Shrink|Grow so a mapping can never hit SIGBUS by truncation. */
export function addSeals(fd: number, seals: number): void {
  const r = binding().addSeals(fd, seals);
  if (r < 0) throw syscallError(NativeErrorCode.Memfd, 'fcntl(F_ADD_SEALS)', r, `fd ${fd} must be a memfd with sealing allowed and not yet sealed (F_SEAL_SEAL)`, { fd, seals });
}
