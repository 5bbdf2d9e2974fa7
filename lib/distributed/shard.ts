/**
 * A job's results in an output folder: the shard (`<job>.npy` or `<job>.safetensors`, float32
 * [rows, dim], rows in the job's image order, failed images left out) and its entry
 * (`<job>.json`: the row ids, the failures with their codes, how it was made, the shard's size
 * and sha256).
 *
 * Exactly once: BullMQ delivers a job at least once (a worker that dies mid-job has it retried by
 * another), so writing must be idempotent. Files are named by job id, written to a temp file in the
 * same folder, fsynced and renamed into place (a reader never sees half a file, and two workers
 * finishing the same job replace one file by an identical one); the entry is renamed in after its
 * shard, so an entry always describes a complete shard. A worker that finds a matching entry and
 * shard skips the job.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { VitMsnError } from '../errors';
import type { Pooling } from '../encode';
import { readOptionalText } from '../read-file';
import { npyBytes, safetensorsBytes } from '../writers';
import type { ImageFailure, ShardFormat } from './job';

export const ENTRY_VERSION = 1;

/** `<job>.json`: one shard's manifest entry. */
export interface ShardEntry {
  version: typeof ENTRY_VERSION;
  job: string;
  /** The shard's file name, in the same folder. */
  shard: string;
  format: ShardFormat;
  /** [rows, dim] float32. */
  shape: [number, number];
  /** Image id of each row. */
  ids: string[];
  /** Images of the job that have no row, with their error codes. */
  failures: ImageFailure[];
  pooling: Pooling;
  normalize: boolean;
  /** The worker's model: folder name or hub id, device, dtype. */
  model: { name: string; device: string; dtype: string };
  worker: string;
  /** Size and sha256 of the shard file. */
  bytes: number;
  sha256: string;
  createdAt: string;
}

/** Largest entry file read back (ids of a job of 100 000 images with long paths fit). */
const MAX_ENTRY_BYTES = 256 * 2 ** 20;

export const entryName = (job: string) => `${job}.json`;
export const shardName = (job: string, format: ShardFormat) => `${job}.${format}`;

function writeFailed(file: string, e: unknown): never {
  throw new VitMsnError('ERR_WRITE_FAILED', `${file} could not be written: ${(e as Error)?.message ?? e}`, {
    cause: e,
  });
}

/** Writes `bytes` as `dir/name` through a temp file, fsync and rename. */
async function writeAtomic(dir: string, name: string, bytes: Buffer): Promise<void> {
  const file = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    writeFailed(file, e);
  }
}

/** fsync of the folder, so the renames survive a machine crash (best effort: not every file system allows it). */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* e.g. a network file system that refuses fsync on a folder */
  }
}

export interface ShardContent {
  job: string;
  format: ShardFormat;
  rows: Float32Array;
  dim: number;
  ids: string[];
  failures: ImageFailure[];
  pooling: Pooling;
  normalize: boolean;
  model: ShardEntry['model'];
  worker: string;
}

/** Writes the shard, then its entry; returns the entry. Throws ERR_WRITE_FAILED (a retry may succeed). */
export async function writeShard(dir: string, c: ShardContent): Promise<ShardEntry> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    writeFailed(dir, e);
  }
  const shape: [number, number] = [c.ids.length, c.dim];
  const bytes =
    c.format === 'npy'
      ? npyBytes(c.rows, shape)
      : safetensorsBytes(
          { embeddings: { data: c.rows, shape } },
          {
            job: c.job,
            ids: JSON.stringify(c.ids),
            pooling: c.pooling,
            normalize: String(c.normalize),
            model: c.model.name,
          },
        );
  const shard = shardName(c.job, c.format);
  await writeAtomic(dir, shard, bytes);
  const entry: ShardEntry = {
    version: ENTRY_VERSION,
    job: c.job,
    shard,
    format: c.format,
    shape,
    ids: c.ids,
    failures: c.failures,
    pooling: c.pooling,
    normalize: c.normalize,
    model: c.model,
    worker: c.worker,
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    createdAt: new Date().toISOString(),
  };
  await writeAtomic(dir, entryName(c.job), Buffer.from(`${JSON.stringify(entry)}\n`));
  await syncDir(dir);
  return entry;
}

/** The entry `dir/<job>.json`, or undefined when there is none (or it is not a readable entry). */
export async function readEntry(dir: string, job: string): Promise<ShardEntry | undefined> {
  let text: string | undefined;
  try {
    text = await readOptionalText(path.join(dir, entryName(job)), MAX_ENTRY_BYTES, (_p, message) => {
      throw new Error(message);
    });
  } catch {
    return undefined;
  }
  if (text === undefined) return undefined;
  try {
    const e = JSON.parse(text) as ShardEntry;
    return e && e.version === ENTRY_VERSION && e.job === job && Array.isArray(e.ids) && Array.isArray(e.failures)
      ? e
      : undefined;
  } catch {
    return undefined; // a foreign or damaged file: the job is run again and replaces it
  }
}

/**
 * The entry of a finished run of this very job, or undefined: the entry must account for each of
 * the job's image ids exactly once (rows in job order, then failures), with the same options,
 * format, model and dtype (not device: a CPU and a GPU worker serve one queue), and the shard must
 * be there with the size and sha256 the entry records.
 */
export async function finishedShard(
  dir: string,
  job: string,
  want: {
    ids: readonly string[];
    format: ShardFormat;
    pooling: Pooling;
    normalize: boolean;
    model: ShardEntry['model'];
  },
): Promise<ShardEntry | undefined> {
  const e = await readEntry(dir, job);
  if (!e || e.format !== want.format || e.pooling !== want.pooling || e.normalize !== want.normalize) return undefined;
  // Another model's (or dtype's) output is not this job's result, even under the same job id.
  if (e.model?.name !== want.model.name || e.model?.dtype !== want.model.dtype) return undefined;
  if (e.ids.length + e.failures.length !== want.ids.length) return undefined;
  const failed = new Set(e.failures.map((f) => f.id));
  const rows = want.ids.filter((id) => !failed.has(id));
  if (rows.length !== e.ids.length || rows.some((id, i) => e.ids[i] !== id)) return undefined;
  const file = path.join(dir, e.shard);
  if (e.shard !== shardName(job, e.format)) return undefined;
  try {
    if ((await stat(file)).size !== e.bytes) return undefined;
    const bytes = await readFile(file);
    return createHash('sha256').update(bytes).digest('hex') === e.sha256 ? e : undefined;
  } catch {
    return undefined;
  }
}
