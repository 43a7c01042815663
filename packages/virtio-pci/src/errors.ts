/** Codes of @virq/virtio-pci. Guest-caused ones are reported in `virtio.error` events, never thrown. */
export const VirtioPciErrorCode = {
  // guest misbehaviour (virtio_error → NEEDS_RESET)
  QueueEnableValue: 'virtio.queue-enable-value',
  QueueConfig: 'virtio.queue-config',
  RingError: 'virtio.ring-error',
  CtrlMalformed: 'virtio.ctrl-malformed',
  BlkRequestMalformed: 'virtio.blk-request-malformed',
  NetHeaderMalformed: 'virtio.net-header-malformed',
  // user / peer input (thrown)
  BadConfig: 'virtio.bad-config',
  NoIrqfd: 'virtio.no-irqfd',
  BackendFailed: 'virtio.backend-failed',
  DriverProbe: 'virtio.driver-probe',
  DriverState: 'virtio.driver-state',
  SnapshotInvalid: 'virtio.snapshot-invalid',
} as const;
export type VirtioPciErrorCode = (typeof VirtioPciErrorCode)[keyof typeof VirtioPciErrorCode];
