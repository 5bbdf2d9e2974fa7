/**
 * Prometheus metrics of one server, in a Registry of its own (two servers in one process never
 * share a counter): requests by route and status, errors by code, request latency, and the model's
 * queue depth, batch sizes, images and throughput read from service.stats() at each scrape, plus
 * prom-client's default process metrics (event-loop lag `nodejs_eventloop_lag_*`, RSS, heap, GC).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServiceStats } from './port';

export interface ServerMetrics {
  readonly registry: Registry;
  /** One finished request (any route, any status). */
  request(route: string, method: string, status: number, seconds: number): void;
  /** One error answer. */
  error(route: string, code: string): void;
  /** Prometheus text. */
  text(): Promise<string>;
  contentType: string;
}

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(stats: () => ServiceStats | undefined, options: { prefix?: string; defaultMetrics?: boolean } = {}): ServerMetrics {
  const p = options.prefix ?? 'vitmsn_';
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });

  const requests = new Counter({ name: `${p}http_requests_total`, help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [registry] });
  const errors = new Counter({ name: `${p}http_errors_total`, help: 'Error answers by route and error code', labelNames: ['route', 'code'], registers: [registry] });
  const duration = new Histogram({ name: `${p}http_request_duration_seconds`, help: 'Request latency (arrival to last byte) by route', labelNames: ['route'], buckets: LATENCY_BUCKETS, registers: [registry] });

  // Model values come from stats() once per scrape (in the first model metric's collect, which
  // prom-client runs before reading any of these); counters and the batch-size histogram take
  // the increase since the previous scrape.
  const queued = new Gauge({ name: `${p}queue_images`, help: 'Images waiting for the model', registers: [registry], collect: refresh });
  const calls = new Gauge({ name: `${p}queue_calls`, help: 'Calls (requests) waiting for the model', registers: [registry] });
  const images = new Counter({ name: `${p}images_total`, help: 'Images run by the model', registers: [registry] });
  const batches = new Counter({ name: `${p}batches_total`, help: 'Model batches run', registers: [registry] });
  const sizes = new Histogram({ name: `${p}batch_size`, help: 'Images per model batch', buckets: BATCH_BUCKETS, registers: [registry] });
  const ips = new Gauge({ name: `${p}images_per_second`, help: 'Images per second over the last seconds (model stats)', registers: [registry] });
  const latency = new Gauge({ name: `${p}model_latency_seconds`, help: 'Model call latency percentiles, queue included (model stats)', labelNames: ['quantile'], registers: [registry] });
  let seen: ServiceStats | undefined;
  function refresh() {
    let s: ServiceStats | undefined;
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

  return {
    registry,
    contentType: registry.contentType,
    request(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route }, seconds);
    },
    error(route, code) {
      errors.inc({ route, code });
    },
    text: () => registry.metrics(),
  };
}
