import { CoreErrorCode, VirqError } from './errors.js';

/** A versioned, JSON-serialisable state record (QEMU vmstate-like). */
export interface Snapshot<S> {
  readonly type: string;
  readonly version: number;
  readonly state: S;
}

/** Components whose state can be saved and put back. */
export interface Snapshottable<S> {
  snapshot(): Snapshot<S>;
  restore(snapshot: Snapshot<S>): void;
}

/** Checks a snapshot's type and version before a restore uses it. */
export function checkSnapshot<S>(snapshot: Snapshot<S>, type: string, version: number): S {
  if (snapshot === null || typeof snapshot !== 'object' || snapshot.type !== type) {
    throw new VirqError(CoreErrorCode.SnapshotVersion, `expected a "${type}" snapshot, got ${snapshot === null || typeof snapshot !== 'object' ? String(snapshot) : `"${String(snapshot.type)}"`}`);
  }
  if (snapshot.version !== version) {
    throw new VirqError(CoreErrorCode.SnapshotVersion, `"${type}" snapshot version ${snapshot.version} is not supported (this build reads version ${version})`);
  }
  return snapshot.state;
}
