/**
 * Counters behind {@link ServiceStats} for a service that batches itself (the adapter's local
 * queue): batches run, images, batch sizes, images per second over the last 10 s, and call
 * latency percentiles over the last 1024 calls.
 */
import type { ServiceStats } from './port';

const WINDOW_MS = 10_000;
const LATENCIES = 1024;

export class StatsRecorder {
  batches = 0;
  images = 0;
  readonly batchSizes: Record<number, number> = {};
  #done: Array<{ t: number; n: number }> = [];
  #latencies: number[] = [];
  #next = 0;
  readonly #start = performance.now();

  batch(n: number) {
    this.batches++;
    this.images += n;
    this.batchSizes[n] = (this.batchSizes[n] ?? 0) + 1;
    this.#done.push({ t: performance.now(), n });
    this.#trim();
  }

  latency(ms: number) {
    if (this.#latencies.length < LATENCIES) this.#latencies.push(ms);
    else this.#latencies[this.#next] = ms;
    this.#next = (this.#next + 1) % LATENCIES;
  }

  #trim() {
    const old = performance.now() - WINDOW_MS;
    let i = 0;
    while (i < this.#done.length && this.#done[i].t < old) i++;
    if (i > 0) this.#done.splice(0, i);
  }

  snapshot(queuedImages: number, queuedCalls: number): ServiceStats {
    this.#trim();
    const span = Math.min(WINDOW_MS, performance.now() - this.#start) / 1000;
    const recent = this.#done.reduce((s, d) => s + d.n, 0);
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0);
    return {
      queuedImages, queuedCalls, batches: this.batches, images: this.images, batchSizes: { ...this.batchSizes },
      imagesPerSecond: span > 0 ? recent / span : 0,
      latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99) },
    };
  }
}
