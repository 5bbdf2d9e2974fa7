/**
 * The job format shared by producers and workers: what a job carries (image references and the
 * encode options), what it returns, and how its id is made. Both sides may run different versions
 * of vitmsn, so a worker checks every field it reads (a malformed job fails at once, unretried).
 */
import type { ErrorCode } from '../errors';
import { POOLINGS, type Pooling } from '../encode';
import { formatValue } from '../format-value';
import { invalid } from '../check';

/** BullMQ job name of embedding jobs (one queue may carry other names; workers refuse them). */
export const JOB_NAME = 'vitmsn.embed';
/** Version of {@link EmbedJobData}; a worker refuses versions it does not know. */
export const JOB_VERSION = 1;

/** Shard file formats: NumPy .npy (ids in the entry file beside it) or .safetensors (ids also in its metadata). */
export type ShardFormat = 'npy' | 'safetensors';
export const SHARD_FORMATS: readonly ShardFormat[] = ['npy', 'safetensors'];

/**
 * One image of a job: a `path` that every worker can read (shared storage), or the file's `bytes`
 * in base64 (small images, no shared storage needed). `id` names the image in the results.
 */
export type JobImage = { id: string; path: string } | { id: string; bytes: string };

/** A job's data, as stored in Redis. */
export interface EmbedJobData {
  v: typeof JOB_VERSION;
  images: JobImage[];
  pooling: Pooling;
  normalize: boolean;
  /** Where the worker writes this job's shard and entry; absent: the embeddings are the job's return value. */
  out?: { dir: string; format: ShardFormat };
}

/** An image that could not be embedded, and why (the code is a {@link ErrorCode}). */
export interface ImageFailure {
  id: string;
  code: ErrorCode;
  message: string;
}

/** What a job returns (its `returnvalue` in Redis). */
export interface EmbedJobResult {
  job: string;
  /** Images embedded (rows of the shard, or of `data`). */
  embedded: number;
  failures: ImageFailure[];
  /** Embedding width. */
  dim: number;
  /** The worker that produced it (`name` of createWorker). */
  worker: string;
  /** File name of the shard in the output folder (jobs with `out`). */
  shard?: string;
  /** The output was already there and matched the job: nothing was recomputed. */
  skipped?: boolean;
  /** Inline results (jobs without `out`): the ids of the rows, in order… */
  ids?: string[];
  /** …and the rows: float32 little-endian [embedded, dim], base64. */
  data?: string;
}

/** Job ids: `<prefix>-<index, 6 digits>`; the prefix is safe as a file name and as a BullMQ id (no ':'). */
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}-\d{6,}$/;

export function checkPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) {
    invalid(`job prefix must be 1-64 letters, digits, '_', '.' or '-' (not first), got ${formatValue(prefix)}`);
  }
  return prefix;
}

export function jobIdOf(prefix: string, index: number): string {
  return `${prefix}-${String(index).padStart(6, '0')}`;
}

/** Whether `id` is a job id this package makes (so it can name files in an output folder). */
export function isJobId(id: unknown): id is string {
  return typeof id === 'string' && JOB_ID.test(id);
}

function bad(message: string): never {
  return invalid(`malformed job: ${message}`);
}

/** Checks a job's data as read from Redis; throws ERR_INVALID_ARGUMENT for anything malformed. */
export function parseJobData(data: unknown): EmbedJobData {
  if (typeof data !== 'object' || data === null) bad('data is not an object');
  const d = data as Record<string, unknown>;
  if (d.v !== JOB_VERSION) bad(`version ${formatValue(d.v)} (this worker reads version ${JOB_VERSION}; upgrade it)`);
  if (!Array.isArray(d.images) || d.images.length === 0) bad('images must be a non-empty array');
  const seen = new Set<string>();
  for (const [i, img] of (d.images as unknown[]).entries()) {
    const m = img as Record<string, unknown>;
    if (typeof m !== 'object' || m === null || typeof m.id !== 'string' || m.id.length === 0)
      bad(`image ${i} has no id`);
    if (seen.has(m.id)) bad(`image id ${formatValue(m.id)} appears twice`);
    seen.add(m.id);
    const hasPath = typeof m.path === 'string' && m.path.length > 0;
    const hasBytes = typeof m.bytes === 'string';
    if (hasPath === hasBytes) bad(`image ${formatValue(m.id)} needs exactly one of path or bytes`);
  }
  if (!POOLINGS.includes(d.pooling as Pooling)) bad(`pooling ${formatValue(d.pooling)}`);
  if (typeof d.normalize !== 'boolean') bad('normalize must be a boolean');
  if (d.out !== undefined) {
    const o = d.out as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.dir !== 'string' || o.dir.length === 0)
      bad('out.dir must be a folder path');
    if (!SHARD_FORMATS.includes(o.format as ShardFormat)) bad(`out.format ${formatValue(o.format)}`);
  }
  return d as unknown as EmbedJobData;
}
