import { nativeSupport } from '@virq/native';

const support = nativeSupport();

/**
 * `describe` when the real primitives are here; otherwise one test that records why the
 * suite did not run (printed), so a machine without the addon still reports something.
 */
export function describeNative(name: string, body: () => void): void {
  if (support.ok) {
    describe(name, body);
    return;
  }
  const reason = support.reason;
  describe(name, () => {
    it(`is not run here: ${reason}`, () => {
      console.warn(`@virq/native: ${name} not run: ${reason}`);
      expect(support.ok).toBe(false);
    });
  });
}

/** Resolves after `n` turns of Node's event loop (setImmediate runs after the poll phase). */
export function loopTurns(n = 1): Promise<void> {
  return new Promise((resolve) => {
    let left = n;
    const step = (): void => {
      if (--left <= 0) resolve();
      else setImmediate(step);
    };
    setImmediate(step);
  });
}

/** Resolves when `check()` is true, polling once per loop turn; rejects after `maxTurns`. */
export async function until(check: () => boolean, what: string, maxMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > maxMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
