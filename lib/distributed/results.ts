/**
 * Reading an output folder back: one shard with its ids, or every shard of the folder as one
 * matrix. Only files this package writes are read (float32 .npy version 1 and .safetensors with an
 * `embeddings` tensor); anything else is ERR_CHECKPOINT_INVALID, as for other files vitmsn reads.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { VitMsnError } from '../errors';
import { parseSafetensors } from '../probe/safetensors-read';
import type { Tensor } from '../types';
import { isJobId, type ImageFailure } from './job';
import { readEntry, type ShardEntry } from './shard';
import { invalid } from '../check';

function notAShard(file: string, why: string): never {
  throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${file}: not a shard vitmsn wrote (${why})`);
}

function floats(bytes: Buffer, file: string, count: number): Float32Array {
  if (bytes.length !== count * 4) notAShard(file, `${bytes.length} data bytes for ${count} float32 values`);
  const copy = new Uint8Array(bytes); // aligned, and owned by the caller
  return new Float32Array(copy.buffer, 0, count);
}

/** The float32 [N, D] matrix of a .npy file (format 1.0, '<f4', C order, as writers.ts makes it). */
export function parseNpy(buf: Buffer, file: string): Tensor {
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY' || buf[6] !== 1)
    notAShard(file, 'not a version 1 .npy file');
  const hlen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + hlen);
  const shape = /'shape': \((\d+), (\d+)\)/.exec(header);
  if (!/'descr': '<f4'/.test(header) || !/'fortran_order': False/.test(header) || !shape)
    notAShard(file, `header ${header.trim()}`);
  const dims = [Number(shape[1]), Number(shape[2])];
  return { data: floats(buf.subarray(10 + hlen), file, dims[0] * dims[1]), shape: dims };
}

/** One shard's rows, with the id of each row (from its entry). */
export async function readShard(dir: string, entry: ShardEntry): Promise<Tensor & { ids: string[] }> {
  const file = path.join(dir, entry.shard);
  const buf = await readFile(file);
  let t: Tensor;
  if (entry.format === 'npy') {
    t = parseNpy(buf, file);
  } else {
    const { tensors } = parseSafetensors(buf, file);
    const e = tensors.embeddings;
    if (!e || e.dtype !== 'F32' || e.shape.length !== 2) notAShard(file, 'no float32 [N, D] tensor "embeddings"');
    t = { data: floats(e.bytes, file, e.shape[0] * e.shape[1]), shape: e.shape };
  }
  if (t.shape[0] !== entry.ids.length || t.shape[1] !== entry.shape[1])
    notAShard(file, `shape [${t.shape}] but its entry says [${entry.shape}]`);
  return { ...t, ids: entry.ids };
}

/** The entries of every shard in `dir`, sorted by job id. */
export async function readEntries(dir: string): Promise<ShardEntry[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json') && isJobId(n.slice(0, -5))).sort();
  const entries = await Promise.all(names.map((n) => readEntry(dir, n.slice(0, -5))));
  return entries.filter((e): e is ShardEntry => e !== undefined);
}

export interface Results extends Tensor {
  /** Id of each row. */
  ids: string[];
  /** Images without a row, with their codes, and the job they were in. */
  failures: Array<ImageFailure & { job: string }>;
  /** Shard entries read, in job-id order. */
  entries: ShardEntry[];
}

/**
 * Every shard of an output folder as one [N, D] matrix (shards in job-id order, rows in each
 * job's image order), with the ids and the failures. Throws ERR_INVALID_ARGUMENT when the shards
 * do not agree on the embedding width.
 */
export async function readResults(dir: string): Promise<Results> {
  const entries = await readEntries(dir);
  const shards = await Promise.all(entries.map((e) => readShard(dir, e)));
  const dims = new Set(shards.filter((s) => s.shape[0] > 0).map((s) => s.shape[1]));
  if (dims.size > 1)
    invalid(`${dir} holds shards of different widths (${[...dims].join(', ')}): outputs of different models`);
  const D = dims.size ? [...dims][0] : (entries[0]?.shape[1] ?? 0);
  const N = shards.reduce((n, s) => n + s.shape[0], 0);
  const data = new Float32Array(N * D);
  let off = 0;
  for (const s of shards) (data.set(s.data, off), (off += s.data.length));
  return {
    data,
    shape: [N, D],
    ids: shards.flatMap((s) => s.ids),
    failures: entries.flatMap((e) => e.failures.map((f) => ({ ...f, job: e.job }))),
    entries,
  };
}
