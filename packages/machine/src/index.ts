export { MachineErrorCode } from './errors.js';
export { archOf, machineRunProblem, parseTopology, type Arch, type DeviceConfig, type IrqchipConfig, type IrqchipKind, type Topology, type VirtioBackend, type WorkloadConfig } from './topology.js';
export { loadTopologyFile, parseTopologyText } from './topology-file.js';
export { DEFAULT_PRESET, preset, presetDocument, presetNames } from './presets.js';
export { METRIC_COLUMNS, MetricsCollector, TraceMetricsCounter, type RunMetrics } from './metrics.js';
export { runTopology, type RunOptions, type ScenarioResult } from './scenario.js';
export { applyVary, expandMatrix, parseVary, varyKnobs, type VaryDimension } from './vary.js';
export { compareTopologies, type CompareOptions } from './compare.js';
export { renderMetricsTable, type TableFormat, type TableRow } from './render-table.js';
export { renderMermaid } from './render-mermaid.js';
export { renderHtmlReport } from './render-html.js';
export { ProgressBar } from './progress.js';
export { FLOW_SPECS, firstMissing, type FlowSpec } from './flows/expected.js';
export { FLOWS, flowById, flowFunctionNames, type FlowDefinition, type FlowRun } from './flows/registry.js';
// The command-line entry points of packages the `virq` command fronts.
export { runGoldenCli } from '@virq/kvm-irqchip';
export { runVhostUserNetCli } from '@virq/vhost-user';
