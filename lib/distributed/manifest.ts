/**
 * manifest.json of an output folder, written by the producer once every job of a submission has
 * finished: the shards in job order with their row counts, every image that failed (id, code,
 * message, job), and the jobs that ended in the failed set. The ids of each shard's rows are in
 * its entry (`<job>.json`); readResults() reads them all. Written through a temp file and a
 * rename, like the shards.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { VitMsnError } from '../errors';
import type { Pooling } from '../encode';
import type { ShardFormat } from './job';
import type { SubmissionResult } from './producer';
import type { JobOutcome } from './wait';

export const MANIFEST_NAME = 'manifest.json';

export interface Manifest {
  version: 1;
  prefix: string;
  queue: string;
  format: ShardFormat;
  pooling: Pooling;
  normalize: boolean;
  /** Embedding width. */
  dim: number;
  jobs: number;
  /** Images embedded (rows over all shards). */
  embedded: number;
  shards: Array<{ job: string; shard: string; rows: number; worker: string }>;
  failures: SubmissionResult['failures'];
  failedJobs: SubmissionResult['failedJobs'];
  createdAt: string;
}

export async function writeManifest(
  dir: string,
  s: Pick<Manifest, 'prefix' | 'queue' | 'format' | 'pooling' | 'normalize' | 'dim'> & {
    jobs: string[];
    outcomes: ReadonlyMap<string, JobOutcome>;
    result: SubmissionResult;
  },
): Promise<string> {
  const shards: Manifest['shards'] = [];
  for (const job of s.jobs) {
    const o = s.outcomes.get(job);
    if (o?.state === 'completed' && o.result.shard)
      shards.push({ job, shard: o.result.shard, rows: o.result.embedded, worker: o.result.worker });
  }
  const manifest: Manifest = {
    version: 1,
    prefix: s.prefix,
    queue: s.queue,
    format: s.format,
    pooling: s.pooling,
    normalize: s.normalize,
    dim: s.dim,
    jobs: s.jobs.length,
    embedded: s.result.embedded,
    shards,
    failures: s.result.failures,
    failedJobs: s.result.failedJobs,
    createdAt: new Date().toISOString(),
  };
  const file = path.join(dir, MANIFEST_NAME);
  const tmp = path.join(dir, `.${MANIFEST_NAME}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, `${JSON.stringify(manifest, null, 1)}\n`, { flag: 'wx' });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new VitMsnError('ERR_WRITE_FAILED', `${file} could not be written: ${(e as Error).message}`, { cause: e });
  }
  return file;
}
