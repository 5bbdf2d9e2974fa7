/**
 * Prometheus metrics of a model's queue, read from its stats() at each scrape: waiting images and
 * calls, images and batches run, batch sizes, images per second and call latency. Shared by the
 * HTTP server (lib/serve) and the queue worker (lib/distributed), so a dashboard reads the same
 * names from both.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ModelStats } from './batch-stats';

/** The stats these metrics read (a server's service may give only these). */
export type ModelMetricsStats = Pick<
  ModelStats,
  'queuedImages' | 'queuedCalls' | 'batches' | 'images' | 'batchSizes' | 'imagesPerSecond' | 'latencyMs'
>;

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** Registers `<prefix>queue_images`, `queue_calls`, `images_total`, `batches_total`, `batch_size`, `images_per_second`, `model_latency_seconds`. */
export function registerModelMetrics(
  registry: Registry,
  stats: () => ModelMetricsStats | undefined,
  prefix = 'vitmsn_',
): void {
  const p = prefix;
  // Model values come from stats() once per scrape (in the first model metric's collect, which
  // prom-client runs before reading any of these); counters and the batch-size histogram take
  // the increase since the previous scrape.
  const queued = new Gauge({
    name: `${p}queue_images`,
    help: 'Images waiting for the model',
    registers: [registry],
    collect: refresh,
  });
  const calls = new Gauge({
    name: `${p}queue_calls`,
    help: 'Calls (requests) waiting for the model',
    registers: [registry],
  });
  const images = new Counter({ name: `${p}images_total`, help: 'Images run by the model', registers: [registry] });
  const batches = new Counter({ name: `${p}batches_total`, help: 'Model batches run', registers: [registry] });
  const sizes = new Histogram({
    name: `${p}batch_size`,
    help: 'Images per model batch',
    buckets: BATCH_BUCKETS,
    registers: [registry],
  });
  const ips = new Gauge({
    name: `${p}images_per_second`,
    help: 'Images per second over the last seconds (model stats)',
    registers: [registry],
  });
  const latency = new Gauge({
    name: `${p}model_latency_seconds`,
    help: 'Model call latency percentiles, queue included (model stats)',
    labelNames: ['quantile'],
    registers: [registry],
  });
  let seen: ModelMetricsStats | undefined;
  function refresh() {
    let s: ModelMetricsStats | undefined;
    try {
      s = stats();
    } catch {
      s = undefined;
    }
    if (!s) return;
    queued.set(s.queuedImages);
    calls.set(s.queuedCalls);
    images.inc(Math.max(0, s.images - (seen?.images ?? 0)));
    batches.inc(Math.max(0, s.batches - (seen?.batches ?? 0)));
    for (const [size, count] of Object.entries(s.batchSizes)) {
      const n = count - (seen?.batchSizes[Number(size)] ?? 0);
      for (let i = 0; i < n; i++) sizes.observe(Number(size));
    }
    ips.set(s.imagesPerSecond);
    latency.set({ quantile: '0.5' }, s.latencyMs.p50 / 1000);
    latency.set({ quantile: '0.9' }, s.latencyMs.p90 / 1000);
    latency.set({ quantile: '0.99' }, s.latencyMs.p99 / 1000);
    seen = { ...s, batchSizes: { ...s.batchSizes } };
  }
}
