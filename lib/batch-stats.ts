/**
 * What a model's calls and batches did, for `model.stats()` (and a server's metrics): counts, the
 * batch-size histogram, images per second over the last 10 s, and call latency percentiles over
 * the last 1024 calls.
 */
const WINDOW_MS = 10_000;
const LATENCIES = 1024;

export interface ModelStats {
  /** Images waiting, not yet in a batch. */
  queuedImages: number;
  /** Calls with images still waiting. */
  queuedCalls: number;
  /** The queue's limit (batching.maxQueue): a call that would pass it gets ERR_OVERLOADED. */
  maxQueue: number;
  /** Batches run (native forward passes of the queue). */
  batches: number;
  /** Images run in those batches. */
  images: number;
  /** Batch size → how many batches had it. */
  batchSizes: Record<number, number>;
  /** Images per second over the last 10 s. */
  imagesPerSecond: number;
  /** Call latency (queued to settled) over the last 1024 calls, in ms. */
  latencyMs: { p50: number; p90: number; p99: number };
  /** Calls that failed, by error code (`AbortError` / `TimeoutError` for cancelled ones). */
  errors: Record<string, number>;
}

export class BatchStats {
  batches = 0;
  images = 0;
  readonly batchSizes: Record<number, number> = {};
  readonly errors: Record<string, number> = {};
  #recent: Array<[number, number]> = []; // [time, images] of batches in the window
  #latencies = new Float64Array(LATENCIES);
  #latencyCount = 0;

  batch(images: number): void {
    this.batches++;
    this.images += images;
    this.batchSizes[images] = (this.batchSizes[images] ?? 0) + 1;
    const now = performance.now();
    this.#recent.push([now, images]);
    while (this.#recent.length && this.#recent[0][0] < now - WINDOW_MS) this.#recent.shift();
  }

  call(ms: number, error?: unknown): void {
    this.#latencies[this.#latencyCount++ % LATENCIES] = ms;
    if (error !== undefined) {
      const e = error as { code?: unknown; name?: unknown };
      const code = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'Error';
      this.errors[code] = (this.errors[code] ?? 0) + 1;
    }
  }

  snapshot(queue: { queuedImages: number; queuedCalls: number; maxQueue: number }): ModelStats {
    const now = performance.now();
    const recent = this.#recent.filter(([t]) => t >= now - WINDOW_MS);
    const span = recent.length ? Math.max(now - recent[0][0], 1000) : WINDOW_MS;
    const n = Math.min(this.#latencyCount, LATENCIES);
    const sorted = this.#latencies.slice(0, n).sort(); // a typed array sorts numerically, natively
    const pct = (p: number) => (n ? sorted[Math.min(n - 1, Math.floor(p * n))] : 0);
    return {
      ...queue,
      batches: this.batches,
      images: this.images,
      batchSizes: { ...this.batchSizes },
      imagesPerSecond: (recent.reduce((s, [, k]) => s + k, 0) * 1000) / span,
      latencyMs: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) },
      errors: { ...this.errors },
    };
  }
}
