/**
 * Runs one embedding job on a loaded model (no BullMQ here: the worker wraps it).
 *
 * Each image is its own encode() call, all issued at once: the model's dynamic batcher packs them
 * (and the images of the worker's other running jobs) into full batches, and a bad image fails
 * only its own call, so it is recorded with its code while the rest of the job goes on. Errors
 * that are not about one image (memory, a disposed model, a write that failed) fail the whole job,
 * and the queue retries it with backoff.
 */
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import { isErrorCode, isVitMsnError, VitMsnError, type ErrorCode } from '../errors';
import type { Model } from '../model';
import type { ImageInput } from '../images';
import type { EmbedJobData, EmbedJobResult, ImageFailure } from './job';
import { finishedShard, writeShard, type ShardEntry } from './shard';
import { floatBytes } from '../writers';
import { invalid } from '../check';

/** Codes that belong to one image (recorded in the shard's failures); any other fails the job. */
export const IMAGE_ERROR_CODES: readonly ErrorCode[] = [
  'ERR_IMAGE_NOT_FOUND',
  'ERR_IMAGE_INVALID',
  'ERR_IMAGE_UNSUPPORTED',
  'ERR_IMAGE_TOO_LARGE',
];

export interface JobContext {
  model: Model;
  /** What the shard entries record about the model. */
  modelInfo: ShardEntry['model'];
  worker: string;
  /** When set, job output folders must lie inside it (a producer cannot make workers write elsewhere). */
  outputRoot?: string;
  /** Aborted when the job must stop (worker shutting down, job cancelled): pending images leave the model's queue. */
  signal?: AbortSignal;
  /** Images settled so far (embedded or failed) out of the job's total. */
  onProgress?: (done: number, total: number) => void;
}

/** The job's output folder, checked against the worker's outputRoot. */
export function outputDir(dir: string, root: string | undefined): string {
  const abs = path.resolve(dir);
  if (root !== undefined) {
    const r = path.resolve(root);
    const rel = path.relative(r, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      invalid(`output folder ${abs} is outside this worker's output root ${r}`);
    }
  }
  return abs;
}

function failureOf(id: string, e: unknown): ImageFailure {
  const code = isVitMsnError(e) ? e.code : 'ERR_INTERNAL';
  return { id, code, message: String((e as Error)?.message ?? e) };
}

/** Runs `data` (job `jobId`); throws what should fail the attempt (a VitMsnError, or the abort reason). */
export async function runJob(jobId: string, data: EmbedJobData, ctx: JobContext): Promise<EmbedJobResult> {
  const { model, worker } = ctx;
  const ids = data.images.map((im) => im.id);
  const dir = data.out ? outputDir(data.out.dir, ctx.outputRoot) : undefined;
  if (dir && data.out) {
    // Idempotent by job id and output: a job already done (another worker finished it before it
    // was handed out again, or it was submitted again) is not recomputed.
    const done = await finishedShard(dir, jobId, {
      ids,
      format: data.out.format,
      pooling: data.pooling,
      normalize: data.normalize,
      model: ctx.modelInfo,
    });
    if (done)
      return {
        job: jobId,
        embedded: done.ids.length,
        failures: done.failures,
        dim: done.shape[1],
        worker,
        shard: done.shard,
        skipped: true,
      };
  }

  // A local controller: the first job-wide error withdraws the job's other images at once.
  const stop = new AbortController();
  setMaxListeners(0, stop.signal); // one listener per image call of the job
  const onAbort = () => stop.abort(ctx.signal!.reason);
  if (ctx.signal?.aborted) onAbort();
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  const total = ids.length;
  const rows: Array<Float32Array | undefined> = new Array(total);
  const failures: Array<ImageFailure | undefined> = new Array(total);
  let fatal: unknown;
  let done = 0;
  let dim = 0;
  try {
    await Promise.all(
      data.images.map(async (im, i) => {
        const input: ImageInput = 'path' in im ? im.path : Buffer.from(im.bytes, 'base64');
        try {
          const t = await model.encode(input, {
            pooling: data.pooling,
            normalize: data.normalize,
            signal: stop.signal,
          });
          rows[i] = t.data;
          dim = t.shape[1];
        } catch (e) {
          if (isVitMsnError(e) && IMAGE_ERROR_CODES.includes(e.code)) {
            failures[i] = failureOf(ids[i], e);
          } else if (fatal === undefined) {
            fatal = stop.signal.aborted ? stop.signal.reason : e;
            if (!stop.signal.aborted) stop.abort(e);
          }
        }
        ctx.onProgress?.(++done, total);
      }),
    );
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
  if (fatal !== undefined) throw fatal;

  dim ||= model.config.hiddenSize;
  const okIds: string[] = [];
  const out = new Float32Array(rows.filter(Boolean).length * dim);
  rows.forEach((r, i) => {
    if (!r) return;
    out.set(r, okIds.length * dim);
    okIds.push(ids[i]);
  });
  const failed = failures.filter((f): f is ImageFailure => f !== undefined);
  if (dir && data.out) {
    const entry = await writeShard(dir, {
      job: jobId,
      format: data.out.format,
      rows: out,
      dim,
      ids: okIds,
      failures: failed,
      pooling: data.pooling,
      normalize: data.normalize,
      model: ctx.modelInfo,
      worker,
    });
    return { job: jobId, embedded: okIds.length, failures: failed, dim, worker, shard: entry.shard };
  }
  return {
    job: jobId,
    embedded: okIds.length,
    failures: failed,
    dim,
    worker,
    ids: okIds,
    data: floatBytes(out).toString('base64'),
  };
}

/** "CODE: message", the form a failed job's reason takes in the queue (so the code can be read back). */
export function reasonOf(e: unknown): string {
  if (isVitMsnError(e)) return `${e.code}: ${e.message}`;
  const err = e as { name?: unknown; message?: unknown };
  return `${typeof err?.name === 'string' ? err.name : 'Error'}: ${String(err?.message ?? e)}`;
}

/** The code at the start of a failed job's reason ({@link reasonOf}), else ERR_INTERNAL. */
export function codeOfReason(reason: string | undefined): ErrorCode {
  const code = /^([A-Z_]+):/.exec(reason ?? '')?.[1];
  return isErrorCode(code) ? code : 'ERR_INTERNAL';
}
