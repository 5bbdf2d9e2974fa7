/**
 * A queue worker's Prometheus metrics, in a Registry of its own: the model's queue and throughput
 * under the HTTP server's names (lib/model-metrics.ts: `vitmsn_images_total`,
 * `vitmsn_images_per_second`, `vitmsn_batch_size`, …), plus the jobs this worker finished by
 * outcome, job durations, image failures by code, job failures by code, and the BullMQ queue's
 * depth by state (read from Redis at each scrape). Scraped per worker, so the throughput is per
 * worker; the queue depth is the same from every worker.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ModelStats } from '../batch-stats';
import { registerModelMetrics } from '../model-metrics';

/** Job outcomes counted by `vitmsn_jobs_total{status}`. */
export type JobOutcome = 'completed' | 'skipped' | 'failed' | 'handed_back';

export interface WorkerMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  job(outcome: JobOutcome, seconds: number, code?: string): void;
  imageFailure(code: string): void;
  /** Prometheus text. */
  text(): Promise<string>;
}

const DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createWorkerMetrics(
  modelStats: () => ModelStats | undefined,
  queueCounts: () => Promise<Record<string, number>>,
  options: { prefix?: string; defaultMetrics?: boolean } = {},
): WorkerMetrics {
  const p = options.prefix ?? 'vitmsn_';
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  registerModelMetrics(registry, modelStats, p);
  const jobs = new Counter({
    name: `${p}jobs_total`,
    help: 'Queue jobs this worker finished, by outcome (skipped: output already there)',
    labelNames: ['status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${p}job_duration_seconds`,
    help: 'Time from taking a job to finishing it',
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const jobErrors = new Counter({
    name: `${p}job_errors_total`,
    help: 'Failed job attempts, by error code (retried until attempts run out)',
    labelNames: ['code'],
    registers: [registry],
  });
  const imageErrors = new Counter({
    name: `${p}image_errors_total`,
    help: 'Images recorded as failed in their shard, by error code',
    labelNames: ['code'],
    registers: [registry],
  });
  new Gauge({
    name: `${p}queue_jobs`,
    help: 'Jobs in the BullMQ queue by state (waiting, active, delayed, completed, failed, …)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      try {
        for (const [state, n] of Object.entries(await queueCounts())) this.set({ state }, n);
      } catch {
        /* Redis unreachable: the gauge keeps its last values rather than failing the scrape */
      }
    },
  });
  return {
    registry,
    contentType: registry.contentType,
    job(outcome, seconds, code) {
      jobs.inc({ status: outcome });
      duration.observe(seconds);
      if (outcome === 'failed') jobErrors.inc({ code: code ?? 'ERR_INTERNAL' });
    },
    imageFailure(code) {
      imageErrors.inc({ code });
    },
    text: () => registry.metrics(),
  };
}
