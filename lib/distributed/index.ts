/**
 * vitmsn/distributed: embedding jobs on a Redis-backed BullMQ queue, run by any number of workers
 * on any number of machines. Loaded only through this subpath (`import … from 'vitmsn/distributed'`),
 * so `import 'vitmsn'` never loads BullMQ or needs Redis.
 *
 * @example
 * // on each machine
 * const worker = await createWorker({ redis: 'redis://queue-host:6379', queue: 'photos', model: './vit-msn-small' });
 * // anywhere
 * const sub = await enqueue({ redis: 'redis://queue-host:6379', queue: 'photos', images: files, out: '/shared/emb' });
 * const { embedded, failures, failedJobs } = await sub.wait();
 * const { ids, data, shape } = await readResults('/shared/emb');
 */
export { createWorker, type WorkerOptions, type WorkerEvent, type WorkerStats, type QueueWorker } from './worker';
export {
  enqueue,
  type EnqueueOptions,
  type SubmitImage,
  type Submission,
  type SubmissionResult,
  type FailedJob,
} from './producer';
export { readResults, readShard, readEntries, type Results } from './results';
export { MANIFEST_NAME, type Manifest } from './manifest';
export type { ShardEntry } from './shard';
export type { WaitOptions, WaitProgress } from './wait';
export type { WorkerMetrics, JobOutcome } from './metrics';
export {
  JOB_NAME,
  type EmbedJobData,
  type EmbedJobResult,
  type ImageFailure,
  type JobImage,
  type ShardFormat,
} from './job';
