/**
 * A progress bar on stderr for runs longer than a second: nothing is drawn before the first
 * second has passed, so short runs print nothing extra. On a terminal it redraws one line;
 * elsewhere (CI logs) it prints a line at each 25%.
 */
export class ProgressBar {
  private readonly start = Date.now();
  private lastQuarter = -1;
  private drawn = false;

  constructor(
    private readonly label: string,
    /** Printed after the counts (e.g. ' µs' of virtual time). */
    private readonly unit = '',
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(done: number, total: number): void {
    if (Date.now() - this.start < 1000 || total <= 0) return;
    const frac = Math.min(1, done / total);
    if (this.stream.isTTY) {
      const width = 30;
      const fill = Math.round(frac * width);
      this.stream.write(`\r${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total}${this.unit}`);
      this.drawn = true;
    } else {
      const q = Math.floor(frac * 4);
      if (q !== this.lastQuarter) {
        this.lastQuarter = q;
        this.stream.write(`${this.label}: ${done}/${total}${this.unit}\n`);
      }
    }
  }

  finish(): void {
    if (this.drawn) this.stream.write('\n');
  }
}
