/**
 * Prometheus metrics of one server, in a Registry of its own (two servers in one process never
 * share a counter): requests by route and status, errors by code, request latency, and the model's
 * queue depth, batch sizes, images and throughput read from service.stats() at each scrape
 * (lib/model-metrics.ts, the same names as the queue worker's), plus
 * prom-client's default process metrics (event-loop lag `nodejs_eventloop_lag_*`, RSS, heap, GC).
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { registerModelMetrics } from '../model-metrics';
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

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(
  stats: () => ServiceStats | undefined,
  options: { prefix?: string; defaultMetrics?: boolean } = {},
): ServerMetrics {
  const p = options.prefix ?? 'vitmsn_';
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });

  const requests = new Counter({
    name: `${p}http_requests_total`,
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const errors = new Counter({
    name: `${p}http_errors_total`,
    help: 'Error answers by route and error code',
    labelNames: ['route', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${p}http_request_duration_seconds`,
    help: 'Request latency (arrival to last byte) by route',
    labelNames: ['route'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  registerModelMetrics(registry, stats, p);

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
