export { nativeSupport } from './binding.js';
export { NativeErrorCode, errnoName } from './errors.js';
export { FdWatcher, PollEvent, type FdWatcherOptions } from './fd-watcher.js';
export { closeFd, dupFd, fdInfo, fdSize, setNonBlocking, type FdInfo } from './fd.js';
export { EVENTFD_COUNTER_MAX, NativeEventFd, type NativeEventFdOptions } from './eventfd.js';
export { FileSeal, addSeals, fileSeals, memfdCreate, type MemfdOptions } from './memfd.js';
export { mmapFd, type MappedMemory, type MmapOptions } from './mmap.js';
export {
  SCM_MAX_FD,
  UnixStreamSocket,
  UnixStreamSocket as UnixSeqSocket,
  type ReceivedInto,
  type ReceivedMessage,
} from './unix-stream-socket.js';
export { UnixSocketServer, type UnixSocketServerOptions } from './unix-socket-server.js';
