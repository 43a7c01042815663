import { VirqError } from '@virq/core';

export const MachineErrorCode = {
  TopologyInvalid: 'machine.topology-invalid',
  TopologySyntax: 'machine.topology-syntax',
  PresetUnknown: 'machine.preset-unknown',
  FlowUnknown: 'machine.flow-unknown',
  VaryInvalid: 'machine.vary-invalid',
  Unsupported: 'machine.unsupported',
} as const;
export type MachineErrorCode = (typeof MachineErrorCode)[keyof typeof MachineErrorCode];

export function machineError(code: MachineErrorCode, message: string, details?: Record<string, unknown>): VirqError {
  return new VirqError(code, message, details === undefined ? {} : { details });
}
