import fs from 'node:fs';
import { VirqError } from '@virq/core';
import { loadTopologyFile } from '@virq/machine';
import { parse } from 'yaml';

/**
 * The raw document of a topology file (for `compare`, which edits it per cell before
 * validation). The file is validated once as a whole first, so errors name its own paths.
 */
export function parseTopologyDocument(file: string): Record<string, unknown> {
  loadTopologyFile(file);
  const doc: unknown = parse(fs.readFileSync(file, 'utf8'));
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new VirqError('machine.topology-invalid', `${file}: a topology is a mapping`);
  return doc as Record<string, unknown>;
}
