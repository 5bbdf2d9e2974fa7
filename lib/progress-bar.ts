/**
 * A one-line terminal progress renderer for downloads, driven by loadModel's `onProgress`:
 *
 *   const bar = new ProgressBar(process.stderr);
 *   await loadModel('facebook/vit-msn-small', { onProgress: bar.update });
 *   bar.done();
 *
 * On a TTY it redraws one line per file ("model.safetensors  42% |████░░░░| 36.1/86.4 MB");
 * elsewhere (CI logs, pipes) it prints a line when a file starts and when it completes.
 */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

export class ProgressBar {
  #current: string | undefined;
  #lastDraw = 0;

  constructor(
    private readonly out: ProgressStream,
    private readonly now: () => number = Date.now,
  ) {}

  /** The progress callback (bound, so it can be passed as `onProgress: bar.update`). */
  readonly update = (p: { file: string; loaded: number; total: number | undefined }): void => {
    const complete = p.total !== undefined && p.loaded >= p.total;
    if (!this.out.isTTY) {
      if (p.file !== this.#current)
        this.out.write(`downloading ${p.file}${p.total !== undefined ? ` (${mb(p.total)} MB)` : ''}\n`);
      if (complete) this.out.write(`downloaded ${p.file}\n`);
      this.#current = complete ? undefined : p.file;
      return;
    }
    if (p.file !== this.#current && this.#current !== undefined) this.out.write('\n');
    // Redraw at most ~10 times a second, but always draw the first and the final state.
    const t = this.now();
    if (p.file === this.#current && !complete && t - this.#lastDraw < 100) return;
    this.#lastDraw = t;
    this.#current = p.file;
    this.out.write(`\r${render(p, this.out.columns ?? 80)}`);
    if (complete) {
      this.out.write('\n');
      this.#current = undefined;
    }
  };

  /** Ends a line left open (e.g. a download of unknown size). */
  done(): void {
    if (this.#current !== undefined && this.out.isTTY) this.out.write('\n');
    this.#current = undefined;
  }
}

/** One line, at most `columns` wide. */
export function render(p: { file: string; loaded: number; total: number | undefined }, columns: number): string {
  if (p.total === undefined || p.total <= 0) return `${p.file}  ${mb(p.loaded)} MB`.slice(0, columns - 1);
  const frac = Math.min(1, p.loaded / p.total);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const size = `${mb(p.loaded)}/${mb(p.total)} MB`;
  // The file name gets what the numbers leave (at most 32 columns), keeping its end.
  const room = Math.max(4, Math.min(32, columns - 1 - pct.length - size.length - 6));
  const name = p.file.length > room ? `…${p.file.slice(-(room - 1))}` : p.file;
  const width = Math.max(0, Math.min(30, columns - 1 - name.length - pct.length - size.length - 6));
  const filled = Math.round(frac * width);
  return `${name} ${pct} |${'█'.repeat(filled)}${'░'.repeat(width - filled)}| ${size}`;
}

/**
 * Progress of a count (images of a queue submission, say): on a TTY one line redrawn at most ~10
 * times a second ("embedding ████░░░░ 1200/2000 images, 1 job failed"); elsewhere a line every
 * 2 s and at the end.
 */
export class CountBar {
  #last = -Infinity;
  #open = false;

  constructor(
    private readonly out: ProgressStream,
    private readonly label: string,
    private readonly unit: string,
    private readonly now: () => number = Date.now,
  ) {}

  update(done: number, total: number, note = ''): void {
    const t = this.now();
    const end = done >= total;
    if (!end && t - this.#last < (this.out.isTTY ? 100 : 2000)) return;
    this.#last = t;
    const tail = `${done}/${total} ${this.unit}${note ? `, ${note}` : ''}`;
    if (!this.out.isTTY) {
      this.out.write(`${this.label}: ${tail}\n`);
      return;
    }
    const columns = this.out.columns ?? 80;
    const width = Math.max(0, Math.min(30, columns - 1 - this.label.length - tail.length - 2));
    const filled = total > 0 ? Math.round(Math.min(1, done / total) * width) : 0;
    this.out.write(`\r${this.label} ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${tail}`.slice(0, columns));
    this.#open = !end;
    if (end) this.out.write('\n');
  }

  /** Ends a line left open. */
  done(): void {
    if (this.#open && this.out.isTTY) this.out.write('\n');
    this.#open = false;
  }
}
