/** Exact-sample latency recorder (keeps every value; runs are bounded) with percentiles. */
export class Histogram {
  private values: number[] = [];
  private sorted = true;

  record(v: number): void {
    if (this.values.length > 0 && v < this.values[this.values.length - 1]!) this.sorted = false;
    this.values.push(v);
  }

  get count(): number {
    return this.values.length;
  }

  /** The p-th percentile (0–100, nearest-rank); NaN when empty. */
  percentile(p: number): number {
    const n = this.values.length;
    if (n === 0) return NaN;
    if (!this.sorted) {
      this.values.sort((a, b) => a - b);
      this.sorted = true;
    }
    const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
    return this.values[rank - 1]!;
  }

  mean(): number {
    return this.values.length === 0 ? NaN : this.values.reduce((a, b) => a + b, 0) / this.values.length;
  }

  /** Counts per bucket of `width` starting at 0 (for charts). */
  buckets(width: number): number[] {
    const out: number[] = [];
    for (const v of this.values) {
      const i = Math.floor(v / width);
      while (out.length <= i) out.push(0);
      out[i]!++;
    }
    return out;
  }

  toArray(): readonly number[] {
    return this.values;
  }
}
