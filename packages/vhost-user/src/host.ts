/**
 * What the back end needs from its host for the file descriptors it receives. A real host
 * (Unix socket, @virq/native) maps memfds with mmap and watches eventfds in Node's event loop;
 * the in-process host hands over ArrayBuffers and @virq/core EventFds. `F` is the fd type.
 */
export interface VhostUserHost<F> {
  /**
   * Maps [0, offset + size) of a memory fd MAP_SHARED and returns a view whose bytes
   * [offset, offset + size) back the region. Throws a VirqError (`vhost-user.map`) when the fd
   * cannot be mapped or is smaller than offset + size.
   */
  mapMemory(fd: F, offset: number, size: number): MappedRegion;
  /**
   * Watches a kick fd: `onKick` runs whenever it becomes readable, after the counter was read
   * (drained). Returns a function that stops watching (it does not close the fd).
   */
  watchKick(fd: F, onKick: () => void): () => void;
  /** A notifier that writes 1 to a call (or err) eventfd. */
  notifier(fd: F): CallNotifier;
  /** Closes an fd the back end owns. */
  close(fd: F): void;
  /** Creates a shared memory fd of `size` bytes (GET_INFLIGHT_FD); optional. */
  createSharedMemory?(size: number): { fd: F; region: MappedRegion };
}

/** A mapped region: `bytes` are the region's bytes (offset applied). */
export interface MappedRegion {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Offset of the region's first byte inside `buffer`. */
  readonly offset: number;
  readonly size: number;
  unmap(): void;
}

export interface CallNotifier {
  /** eventfd_write(fd, 1). */
  signal(): void;
}
