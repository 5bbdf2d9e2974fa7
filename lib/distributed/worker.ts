/**
 * createWorker(): a BullMQ worker that takes embedding jobs from a Redis queue and runs them on
 * one loaded model (process-job.ts). With `concurrency` N it runs N jobs at once, and because
 * every image is its own encode() call, the model's dynamic batcher fills its batches from all of
 * them. Faults are BullMQ's: a worker that dies loses its job locks, and another worker's stalled
 * check puts the job back in the queue; failed attempts are retried with the job's backoff; a
 * malformed job fails at once (UnrecoverableError). close() stops taking jobs, lets the running
 * ones finish, and after `timeoutMs` hands the rest back to the queue (without using an attempt).
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import type { ModelStats } from '../batch-stats';
import { isVitMsnError, type ErrorCode } from '../errors';
import { formatValue } from '../format-value';
import { loadModel, type Model } from '../model';
import type { LoadOptions } from '../types';
import { checkQueueName, connectionOptions, DEFAULT_KEY_PREFIX, waitReady } from './connection';
import { JOB_NAME, parseJobData, type EmbedJobData, type EmbedJobResult } from './job';
import { createWorkerMetrics, type WorkerMetrics } from './metrics';
import { codeOfReason, reasonOf, runJob } from './process-job';
import { integer, invalid } from '../check';

export interface WorkerOptions {
  /** redis://[user:password@]host[:port][/db] */
  redis: string;
  /** Queue name (the producer's). */
  queue: string;
  /**
   * A model folder or hub id (loaded with `load`, disposed by close()), or a loaded Model (the
   * caller keeps it: close() does not dispose it). Every worker of a queue should run the same
   * model and dtype: the shard entries record which one made each shard.
   */
  model: string | Model;
  /** loadModel() options when `model` is a folder or hub id (device, dtype, threads, batching). */
  load?: LoadOptions;
  /** The model's name in shard entries (a finished shard is reused only for the same name and dtype). Default: the folder's name or the hub id; 'model' for a Model given. */
  modelName?: string;
  /** Jobs run at once (their images share the model's batches). Default 2. */
  concurrency?: number;
  /** This worker's name in logs, results and BullMQ (`processedBy`). Default `<hostname>:<pid>`. */
  name?: string;
  /** When set, job output folders must lie inside it; others fail (ERR_INVALID_ARGUMENT). */
  outputRoot?: string;
  /** How long a job's lock lasts without renewal (BullMQ lockDuration). Default 30 000 ms. */
  lockDurationMs?: number;
  /** How often this worker looks for jobs whose worker died (BullMQ stalledInterval). Default 30 000 ms. */
  stalledIntervalMs?: number;
  /** How often a job may be recovered from a dead worker before it fails (BullMQ maxStalledCount). Default 2. */
  maxStalledCount?: number;
  /** Pause after a failed Redis command of the worker loop before it tries again. Default 1000 ms (BullMQ's 15 s is long for a Redis restart). */
  retryDelayMs?: number;
  /** BullMQ key prefix (the producer's `keyPrefix`). Default 'bull'. */
  keyPrefix?: string;
  /** How long to wait for Redis at start (ERR_REDIS_UNAVAILABLE after). Default 10 000 ms. */
  connectTimeoutMs?: number;
  /** What happens, for logs (job started, completed, failed, handed back; connection errors). */
  onEvent?: (event: WorkerEvent) => void;
  /** Register prom-client's default process metrics in the worker's registry. Default true. */
  defaultMetrics?: boolean;
}

export type WorkerEvent =
  | { type: 'job-started'; job: string; images: number; attempt: number }
  | { type: 'job-completed'; job: string; embedded: number; failed: number; skipped: boolean; ms: number }
  | { type: 'job-failed'; job: string; code: ErrorCode; reason: string; attempt: number; final: boolean }
  | { type: 'job-handed-back'; job: string }
  | { type: 'error'; error: Error };

export interface WorkerStats {
  name: string;
  /** Jobs by outcome since the worker started (failed: failed attempts). */
  jobs: { active: number; completed: number; skipped: number; failed: number; handedBack: number };
  /** Images embedded, and images recorded as failed, by this worker. */
  images: { embedded: number; failed: number };
  /** Images recorded as failed, by error code. */
  imageFailures: Record<string, number>;
  /** The model's queue: batches, images per second, latency. */
  model: ModelStats;
}

export interface QueueWorker {
  readonly name: string;
  readonly model: Model;
  readonly metrics: WorkerMetrics;
  stats(): WorkerStats;
  /** Queue depth by state (waiting, active, delayed, completed, failed, …), from Redis. */
  queueCounts(): Promise<Record<string, number>>;
  /**
   * Stops taking jobs and waits for the running ones; after `timeoutMs` (default 30 000) the ones
   * still running are handed back to the queue for another worker. Then closes the connections
   * and, when the worker loaded it, disposes the model. Safe to call more than once.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * A signal that aborts when any of `signals` does (AbortSignal.any is Node ≥ 20.3); dispose()
 * removes its listeners from them (the worker's shutdown signal outlives every job).
 */
function linkedSignal(signals: Array<AbortSignal | undefined>): { signal: AbortSignal; dispose(): void } {
  const c = new AbortController();
  const off: Array<() => void> = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    const f = () => c.abort(s.reason);
    s.addEventListener('abort', f, { once: true });
    off.push(() => s.removeEventListener('abort', f));
  }
  return { signal: c.signal, dispose: () => off.forEach((f) => f()) };
}

/** Calls `f` at most every `ms` (and always for the last value, done === total). */
function throttled(ms: number, f: (done: number, total: number) => void): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    if (done < total && now - last < ms) return;
    last = now;
    f(done, total);
  };
}

/**
 * Loads the model (unless given one), connects to Redis and starts taking jobs.
 *
 * @example
 * const worker = await createWorker({ redis: 'redis://127.0.0.1:6379', queue: 'photos', model: './vit-msn-small' });
 * process.on('SIGTERM', () => worker.close().then(() => process.exit(0)));
 */
export async function createWorker(options: WorkerOptions): Promise<QueueWorker> {
  const queueName = checkQueueName(options.queue);
  const connection = connectionOptions(options.redis);
  const concurrency = integer(options.concurrency, 'concurrency', 1, Number.MAX_SAFE_INTEGER, 2);
  const lockDuration = integer(options.lockDurationMs, 'lockDurationMs', 1, Number.MAX_SAFE_INTEGER, 30_000);
  const stalledInterval = integer(options.stalledIntervalMs, 'stalledIntervalMs', 1, Number.MAX_SAFE_INTEGER, 30_000);
  const maxStalledCount = integer(options.maxStalledCount, 'maxStalledCount', 1, Number.MAX_SAFE_INTEGER, 2);
  const retryDelay = integer(options.retryDelayMs, 'retryDelayMs', 1, Number.MAX_SAFE_INTEGER, 1000);
  const connectTimeout = integer(options.connectTimeoutMs, 'connectTimeoutMs', 1, Number.MAX_SAFE_INTEGER, 10_000);
  const name = options.name ?? `${os.hostname()}:${process.pid}`;
  const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const emit = (e: WorkerEvent) => {
    try {
      options.onEvent?.(e);
    } catch {
      /* a logger's bug must not fail jobs */
    }
  };

  const owned = typeof options.model === 'string';
  const model = typeof options.model === 'string' ? await loadModel(options.model, options.load) : options.model;
  const modelName =
    options.modelName ??
    (typeof options.model === 'string'
      ? existsSync(options.model)
        ? path.basename(path.resolve(options.model))
        : options.model
      : 'model');
  const modelInfo = { name: modelName, device: model.device, dtype: model.dtype };

  const counts = { active: 0, completed: 0, skipped: 0, failed: 0, handedBack: 0 };
  const images = { embedded: 0, failed: 0 };
  const imageFailures: Record<string, number> = {};
  // Aborted by close() once its timeout passes: running jobs stop and go back to the queue.
  const handBack = new AbortController();

  const queue = new Queue(queueName, { connection, prefix });
  queue.on('error', (error) => emit({ type: 'error', error }));
  const queueCounts = () => queue.getJobCounts();
  const metrics = createWorkerMetrics(() => model.stats(), queueCounts, { defaultMetrics: options.defaultMetrics });

  const processor = async (
    job: Job<EmbedJobData, EmbedJobResult>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<EmbedJobResult> => {
    const t0 = performance.now();
    const id = job.id!;
    const attempt = job.attemptsMade + 1;
    const attempts = job.opts.attempts ?? 1;
    let data: EmbedJobData;
    try {
      if (job.name !== JOB_NAME)
        invalid(`job ${id} is named ${formatValue(job.name)}, not ${JOB_NAME}: not a vitmsn job`);
      data = parseJobData(job.data);
    } catch (e) {
      const reason = reasonOf(e);
      metrics.job('failed', (performance.now() - t0) / 1000, 'ERR_INVALID_ARGUMENT');
      counts.failed++;
      emit({ type: 'job-failed', job: id, code: 'ERR_INVALID_ARGUMENT', reason, attempt, final: true });
      throw new UnrecoverableError(reason);
    }
    counts.active++;
    emit({ type: 'job-started', job: id, images: data.images.length, attempt });
    const stop = linkedSignal([signal, handBack.signal]);
    try {
      const result = await runJob(id, data, {
        model,
        modelInfo,
        worker: name,
        outputRoot: options.outputRoot,
        signal: stop.signal,
        onProgress: throttled(500, (done, total) => void job.updateProgress({ done, total }).catch(() => undefined)),
      });
      const s = (performance.now() - t0) / 1000;
      metrics.job(result.skipped ? 'skipped' : 'completed', s);
      if (result.skipped) counts.skipped++;
      else counts.completed++;
      if (!result.skipped) {
        images.embedded += result.embedded;
        images.failed += result.failures.length;
        for (const f of result.failures) {
          imageFailures[f.code] = (imageFailures[f.code] ?? 0) + 1;
          metrics.imageFailure(f.code);
        }
      }
      emit({
        type: 'job-completed',
        job: id,
        embedded: result.embedded,
        failed: result.failures.length,
        skipped: result.skipped === true,
        ms: s * 1000,
      });
      return result;
    } catch (e) {
      const s = (performance.now() - t0) / 1000;
      if (handBack.signal.aborted && token) {
        // Shutting down: back to the waiting list, without using up one of the job's attempts.
        await job.moveToWait(token);
        metrics.job('handed_back', s);
        counts.handedBack++;
        emit({ type: 'job-handed-back', job: id });
        throw new WaitingError();
      }
      const reason = reasonOf(e);
      const code = codeOfReason(reason);
      const permanent = isVitMsnError(e, 'ERR_INVALID_ARGUMENT');
      metrics.job('failed', s, code);
      counts.failed++;
      emit({ type: 'job-failed', job: id, code, reason, attempt, final: permanent || attempt >= attempts });
      if (permanent) throw new UnrecoverableError(reason);
      throw Object.assign(new Error(reason), { code });
    } finally {
      stop.dispose();
      counts.active--;
    }
  };

  const worker = new Worker<EmbedJobData, EmbedJobResult>(queueName, processor, {
    connection,
    prefix,
    concurrency,
    name,
    lockDuration,
    stalledInterval,
    maxStalledCount,
    runRetryDelay: retryDelay,
    autorun: false,
  });
  worker.on('error', (error) => emit({ type: 'error', error }));

  let closing: Promise<void> | undefined;
  const close = (o: { timeoutMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      const timeoutMs = o.timeoutMs ?? 30_000;
      const timer = setTimeout(
        () => handBack.abort(new DOMException('the worker is shutting down', 'AbortError')),
        timeoutMs,
      );
      try {
        await worker.close();
      } finally {
        clearTimeout(timer);
        await queue.close().catch(() => undefined);
        if (owned) await model.dispose();
      }
    })();
    return closing;
  };

  try {
    await waitReady(worker, options.redis, connectTimeout);
    await waitReady(queue, options.redis, connectTimeout);
  } catch (e) {
    await Promise.all([worker.close(true), queue.close()]).catch(() => undefined);
    if (owned) await model.dispose();
    throw e;
  }
  worker.run().catch((error) => emit({ type: 'error', error: error as Error }));

  return {
    name,
    model,
    metrics,
    stats: () => ({
      name,
      jobs: { ...counts },
      images: { ...images },
      imageFailures: { ...imageFailures },
      model: model.stats(),
    }),
    queueCounts,
    close,
  };
}
