/**
 * enqueue(): the producer side. Splits a list of images into jobs of `chunkSize`, adds them to the
 * queue with deterministic ids, and can wait for them (polling, wait.ts) and gather the results:
 * with `out`, the shards in that folder plus a manifest.json; without, the embeddings returned
 * through the queue.
 *
 * Job ids are `<prefix>-<index>`, the prefix a hash of what is submitted (image ids, options,
 * output) unless given: submitting the same thing again makes the same ids, which BullMQ ignores
 * while the jobs are still in Redis, and which workers skip when their shards are already written.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { VitMsnError, type ErrorCode } from '../errors';
import { POOLINGS, type Pooling } from '../encode';
import { formatValue } from '../format-value';
import type { Tensor } from '../types';
import { checkQueueName, connectionOptions, DEFAULT_KEY_PREFIX, waitReady } from './connection';
import {
  checkPrefix,
  JOB_NAME,
  JOB_VERSION,
  jobIdOf,
  SHARD_FORMATS,
  type EmbedJobData,
  type ImageFailure,
  type JobImage,
  type ShardFormat,
} from './job';
import { writeManifest } from './manifest';
import { codeOfReason } from './process-job';
import { waitForJobs, type WaitOptions } from './wait';
import { integer, invalid } from '../check';

/** An image to submit: a path (its id too), `{ id, path }`, or `{ id, bytes }` (sent inline, small images only). */
export type SubmitImage = string | { id: string; path: string } | { id: string; bytes: Uint8Array };

export interface EnqueueOptions {
  /** redis://[user:password@]host[:port][/db] */
  redis: string;
  queue: string;
  images: readonly SubmitImage[];
  /**
   * Output folder for the shards (`<job>.npy|.safetensors` + `<job>.json`) and manifest.json. It
   * must be the same path on every worker (shared storage). Without it, embeddings come back
   * through the queue (small jobs): see {@link SubmissionResult.embeddings}.
   */
  out?: string;
  /** Shard format. Default 'npy'. */
  format?: ShardFormat;
  /** Images per job. Default 64. */
  chunkSize?: number;
  pooling?: Pooling;
  normalize?: boolean;
  /** Job id prefix; default: a hash of the submission (resubmitting it makes the same ids). */
  prefix?: string;
  /** Tries per job before it goes to the failed set. Default 5. */
  attempts?: number;
  /** First retry delay, doubled at each further try. Default 1000 ms. */
  backoffMs?: number;
  /** Largest image sent inline (`bytes`); bigger ones are ERR_INVALID_ARGUMENT (use a shared path). Default 1 MiB. */
  maxInlineBytes?: number;
  /** BullMQ key prefix. Default 'bull'. */
  keyPrefix?: string;
  /** How long to wait for Redis (ERR_REDIS_UNAVAILABLE after). Default 10 000 ms. */
  connectTimeoutMs?: number;
}

/** A failed job: its reason in the failed set, and its images (none of which has a result). */
export interface FailedJob {
  job: string;
  code: ErrorCode;
  reason: string;
  images: string[];
}

export interface SubmissionResult {
  jobs: number;
  /** Images embedded. */
  embedded: number;
  /** Images that could not be embedded (bad inputs), with their codes and jobs. */
  failures: Array<ImageFailure & { job: string }>;
  /** Jobs that ended in the failed set after their attempts. */
  failedJobs: FailedJob[];
  /** With `out`: the manifest written. */
  manifest?: string;
  /** Without `out`: the embeddings in submission order (failed images left out), and their ids. */
  embeddings?: Tensor & { ids: string[] };
}

export interface Submission {
  readonly prefix: string;
  readonly jobIds: readonly string[];
  readonly images: number;
  /** Waits until every job is completed or failed; with `out`, writes manifest.json. */
  wait(options?: WaitOptions): Promise<SubmissionResult>;
  /** Closes the Redis connection (the jobs stay queued). */
  close(): Promise<void>;
}

function toJobImages(images: readonly SubmitImage[], maxInline: number): JobImage[] {
  if (!Array.isArray(images) || images.length === 0) invalid('images must be a non-empty array');
  const seen = new Set<string>();
  return images.map((im, i) => {
    let out: JobImage;
    if (typeof im === 'string') {
      out = { id: im, path: path.resolve(im) };
    } else if (
      im &&
      typeof im === 'object' &&
      typeof im.id === 'string' &&
      'path' in im &&
      typeof im.path === 'string'
    ) {
      out = { id: im.id, path: path.resolve(im.path) };
    } else if (
      im &&
      typeof im === 'object' &&
      typeof im.id === 'string' &&
      'bytes' in im &&
      im.bytes instanceof Uint8Array
    ) {
      if (im.bytes.byteLength > maxInline)
        invalid(
          `image ${formatValue(im.id)} is ${im.bytes.byteLength} bytes, over maxInlineBytes ${maxInline}: give a path on shared storage instead`,
        );
      out = {
        id: im.id,
        bytes: Buffer.from(im.bytes.buffer, im.bytes.byteOffset, im.bytes.byteLength).toString('base64'),
      };
    } else {
      return invalid(`images[${i}] must be a path, { id, path } or { id, bytes }, got ${formatValue(im)}`);
    }
    if (out.id.length === 0) invalid(`images[${i}] has an empty id`);
    if (seen.has(out.id)) invalid(`image id ${formatValue(out.id)} appears twice`);
    seen.add(out.id);
    return out;
  });
}

/**
 * Submits `images` as jobs of `chunkSize` images; resolves once they are all in the queue.
 *
 * @example
 * const sub = await enqueue({ redis: 'redis://127.0.0.1:6379', queue: 'photos', images: files, out: '/shared/emb' });
 * const { embedded, failures, failedJobs } = await sub.wait({ onProgress: (p) => console.log(p.imagesDone, p.images) });
 * await sub.close();
 */
export async function enqueue(options: EnqueueOptions): Promise<Submission> {
  const queueName = checkQueueName(options.queue);
  const connection = connectionOptions(options.redis);
  const chunkSize = integer(options.chunkSize, 'chunkSize', 1, Number.MAX_SAFE_INTEGER, 64);
  const attempts = integer(options.attempts, 'attempts', 1, Number.MAX_SAFE_INTEGER, 5);
  const backoffMs = integer(options.backoffMs, 'backoffMs', 1, Number.MAX_SAFE_INTEGER, 1000);
  const maxInline = integer(options.maxInlineBytes, 'maxInlineBytes', 1, Number.MAX_SAFE_INTEGER, 2 ** 20);
  const connectTimeout = integer(options.connectTimeoutMs, 'connectTimeoutMs', 1, Number.MAX_SAFE_INTEGER, 10_000);
  const pooling = options.pooling ?? 'cls';
  if (!POOLINGS.includes(pooling))
    invalid(`pooling must be one of ${POOLINGS.join(', ')}, got ${formatValue(pooling)}`);
  const normalize = options.normalize ?? false;
  if (typeof normalize !== 'boolean') invalid('normalize must be a boolean');
  const format = options.format ?? 'npy';
  if (!SHARD_FORMATS.includes(format))
    invalid(`format must be one of ${SHARD_FORMATS.join(', ')}, got ${formatValue(format)}`);
  const images = toJobImages(options.images, maxInline);
  const out = options.out === undefined ? undefined : { dir: path.resolve(options.out), format };
  const prefix = checkPrefix(
    options.prefix ??
      createHash('sha256')
        .update(JSON.stringify({ v: JOB_VERSION, ids: images.map((im) => im.id), chunkSize, pooling, normalize, out }))
        .digest('hex')
        .slice(0, 16),
  );

  const jobs: Array<{ id: string; data: EmbedJobData }> = [];
  for (let i = 0; i < images.length; i += chunkSize) {
    jobs.push({
      id: jobIdOf(prefix, jobs.length),
      data: { v: JOB_VERSION, images: images.slice(i, i + chunkSize), pooling, normalize, ...(out ? { out } : {}) },
    });
  }
  if (out) {
    try {
      await mkdir(out.dir, { recursive: true });
    } catch (e) {
      throw new VitMsnError('ERR_WRITE_FAILED', `output folder ${out.dir} could not be made: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  const queue = new Queue(queueName, { connection, prefix: options.keyPrefix ?? DEFAULT_KEY_PREFIX });
  queue.on('error', () => undefined); // connection errors: commands wait for the reconnection
  try {
    await waitReady(queue, options.redis, connectTimeout);
    // Kept after completion for a week (wait() reads the results from them; a duplicate id is
    // ignored while they are kept); failed jobs are kept until removed, with their reasons.
    const opts = {
      attempts,
      backoff: { type: 'exponential', delay: backoffMs },
      removeOnComplete: { age: 7 * 24 * 3600 },
      removeOnFail: false,
    };
    for (let i = 0; i < jobs.length; i += 500) {
      await queue.addBulk(
        jobs.slice(i, i + 500).map((j) => ({ name: JOB_NAME, data: j.data, opts: { ...opts, jobId: j.id } })),
      );
    }
  } catch (e) {
    await queue.close().catch(() => undefined);
    throw e;
  }

  const sizes = new Map(jobs.map((j) => [j.id, j.data.images.length]));
  return {
    prefix,
    jobIds: jobs.map((j) => j.id),
    images: images.length,
    async wait(waitOptions?: WaitOptions): Promise<SubmissionResult> {
      const outcomes = await waitForJobs(queue, sizes, waitOptions);
      const result: SubmissionResult = { jobs: jobs.length, embedded: 0, failures: [], failedJobs: [] };
      const inline: Array<{ ids: string[]; data: Float32Array }> = [];
      let dim = 0;
      for (const j of jobs) {
        const o = outcomes.get(j.id)!;
        if (o.state === 'failed') {
          result.failedJobs.push({
            job: j.id,
            code: codeOfReason(o.reason),
            reason: o.reason,
            images: j.data.images.map((im) => im.id),
          });
          continue;
        }
        result.embedded += o.result.embedded;
        result.failures.push(...o.result.failures.map((f) => ({ ...f, job: j.id })));
        dim ||= o.result.dim;
        if (!out && o.result.ids && o.result.data !== undefined) {
          const b = Buffer.from(o.result.data, 'base64');
          inline.push({ ids: o.result.ids, data: new Float32Array(new Uint8Array(b).buffer, 0, b.length / 4) });
        }
      }
      if (out) {
        result.manifest = await writeManifest(out.dir, {
          prefix,
          queue: queueName,
          format,
          pooling,
          normalize,
          dim,
          jobs: jobs.map((j) => j.id),
          outcomes,
          result,
        });
      } else {
        const data = new Float32Array(inline.reduce((n, p) => n + p.data.length, 0));
        let off = 0;
        for (const p of inline) (data.set(p.data, off), (off += p.data.length));
        result.embeddings = { data, shape: [data.length / (dim || 1), dim], ids: inline.flatMap((p) => p.ids) };
      }
      return result;
    },
    close: () => queue.close(),
  };
}
