/**
 * Waiting for a submission's jobs by polling their states in Redis. Polling, not QueueEvents: a
 * stream subscription can miss events across a Redis restart or when it starts late, while a
 * job's state is always there to read. Jobs finish roughly in the order they were added, so each
 * poll reads the oldest unfinished jobs first and goes further only while it finds finished ones;
 * every tenth poll reads them all (stragglers: retried or recovered jobs).
 */
import type { Job, Queue } from 'bullmq';
import type { EmbedJobResult } from './job';

export type JobOutcome = { state: 'completed'; result: EmbedJobResult } | { state: 'failed'; reason: string };

export interface WaitProgress {
  /** Jobs finished (completed or failed for good) of all the submission's jobs. */
  jobsDone: number;
  jobs: number;
  /** Images of finished jobs, of all images. */
  imagesDone: number;
  images: number;
  /** Jobs in the failed set. */
  failedJobs: number;
}

export interface WaitOptions {
  /** Called after each poll that found something new (and once at the start). */
  onProgress?: (p: WaitProgress) => void;
  /** Time between polls. Default 500 ms. */
  pollMs?: number;
  /** Give up after this long: rejects with a DOMException named 'TimeoutError'. Default: wait for ever. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Job states read at once per group (ioredis pipelines the concurrent commands). */
const GROUP = 256;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/** Polls until every job in `sizes` (job id → images) is completed or failed; returns each outcome. */
export async function waitForJobs(
  queue: Queue,
  sizes: ReadonlyMap<string, number>,
  options: WaitOptions = {},
): Promise<Map<string, JobOutcome>> {
  const pollMs = options.pollMs ?? 500;
  const deadline = options.timeoutMs === undefined ? Infinity : performance.now() + options.timeoutMs;
  const outcomes = new Map<string, JobOutcome>();
  let pending = [...sizes.keys()];
  const images = [...sizes.values()].reduce((a, b) => a + b, 0);
  let imagesDone = 0;
  let failed = 0;
  const report = () =>
    options.onProgress?.({ jobsDone: outcomes.size, jobs: sizes.size, imagesDone, images, failedJobs: failed });
  report();

  const finish = (id: string, outcome: JobOutcome) => {
    outcomes.set(id, outcome);
    if (outcome.state === 'failed') failed++;
    imagesDone += sizes.get(id) ?? 0;
  };
  const check = async (ids: string[]): Promise<number> => {
    const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
    let found = 0;
    await Promise.all(
      ids.map(async (id, k) => {
        const state = states[k];
        if (state === 'unknown') {
          // Not in Redis any more: removed by someone, or a Redis without persistence restarted.
          // Waiting would never end; the job's images have no result from this submission.
          finish(id, {
            state: 'failed',
            reason: `ERR_JOB_FAILED: job ${id} is no longer in the queue (removed, or Redis lost its data)`,
          });
          found++;
          return;
        }
        if (state !== 'completed' && state !== 'failed') return;
        const job = (await queue.getJob(id)) as Job<unknown, EmbedJobResult> | undefined;
        if (!job) return; // removed between the two reads: seen as unknown next time
        if (state === 'completed') {
          if (!job.returnvalue) return; // the return value is written with the state: not there yet
          finish(id, { state, result: job.returnvalue });
        } else {
          finish(id, { state: 'failed', reason: job.failedReason ?? 'failed' });
        }
        found++;
      }),
    );
    return found;
  };

  for (let poll = 0; pending.length > 0; poll++) {
    options.signal?.throwIfAborted();
    if (performance.now() > deadline)
      throw new DOMException(`jobs not finished after ${options.timeoutMs} ms`, 'TimeoutError');
    let found = 0;
    const all = poll % 10 === 9;
    for (let i = 0; i < pending.length; i += GROUP) {
      const n = await check(pending.slice(i, i + GROUP));
      found += n;
      if (n === 0 && !all) break;
    }
    if (found > 0) {
      pending = pending.filter((id) => !outcomes.has(id));
      report();
    }
    if (pending.length > 0) await sleep(pollMs, options.signal);
  }
  return outcomes;
}
