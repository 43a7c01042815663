import fs from 'node:fs';
import { parseDocument, YAMLParseError, YAMLWarning } from 'yaml';
import { MachineErrorCode, machineError } from './errors.js';
import { parseTopology, type Topology } from './topology.js';

/** Parses topology text (YAML, of which JSON is a subset) and validates it. */
export function parseTopologyText(text: string, origin = 'topology'): Topology {
  let doc: unknown;
  try {
    const d = parseDocument(text, { uniqueKeys: true });
    if (d.errors.length > 0) throw d.errors[0];
    // A warning (an unresolved tag such as !!js/function) means the text says something this
    // parser would silently turn into a plain value: refuse it.
    if (d.warnings.length > 0) throw d.warnings[0];
    doc = d.toJS({ maxAliasCount: 100 });
  } catch (e) {
    if (e instanceof YAMLParseError || e instanceof YAMLWarning) {
      const at = e.linePos?.[0];
      const where = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`;
      throw machineError(MachineErrorCode.TopologySyntax, `${origin}: not valid YAML/JSON${where}: ${e.message.split('\n')[0]}`, { origin });
    }
    // yaml throws a plain ReferenceError for an alias bomb ("Excessive alias count") and a
    // RangeError for nesting deeper than the stack: still the user's text, still a typed error.
    if (e instanceof Error) throw machineError(MachineErrorCode.TopologySyntax, `${origin}: not valid YAML/JSON: ${e.message.split('\n')[0]}`, { origin });
    throw e;
  }
  return parseTopology(doc);
}

/** Loads a topology from a .yaml/.yml/.json file. */
export function loadTopologyFile(path: string): Topology {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw machineError(MachineErrorCode.TopologyInvalid, `cannot read topology file ${path}: ${(e as Error).message}`, { path });
  }
  if (text.length > 4 * 1024 * 1024) throw machineError(MachineErrorCode.TopologyInvalid, `topology file ${path} is larger than 4 MiB`, { path });
  return parseTopologyText(text, path);
}
