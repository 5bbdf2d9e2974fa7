/**
 * `vitmsn worker` and `vitmsn enqueue` (see cli-options.ts for their options). Loaded by lib/cli.ts
 * only for these two commands.
 *
 * The worker logs to stderr: one line when ready, one per job started and finished, connection
 * problems (each message at most every 5 s), and a stats line every --log-interval-s. SIGTERM or
 * SIGINT: stop taking jobs, finish the running ones (up to --drain-timeout-ms, then hand them back
 * to the queue), exit 0; a second signal exits 1 at once (the queue's stalled-job check then
 * recovers what was running).
 */
import { createServer, type Server } from 'node:http';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { VitMsnError } from '../errors';
import { POOLINGS, type Pooling } from '../encode';
import { IMAGE_EXTENSIONS } from '../images';
import { readBoundedFile } from '../read-file';
import { CountBar } from '../progress-bar';
import type { BatchingOptions } from '../call-queue';
import type { LoadOptions } from '../types';
import { redacted } from './connection';
import { SHARD_FORMATS, type ShardFormat } from './job';
import { enqueue, type SubmitImage } from './producer';
import { createWorker, type WorkerEvent } from './worker';
import { invalid } from '../check';

type Values = Record<string, string | boolean | undefined>;
type Out = { write(s: string): unknown; isTTY?: boolean; columns?: number };

function usage(m: string): never {
  throw Object.assign(new Error(m), { usage: true });
}

function int(v: Values, name: string, fallback: number | undefined, min = 1): number | undefined {
  const s = v[name];
  if (s === undefined) return fallback;
  const n = Number(s);
  if (typeof s !== 'string' || !Number.isSafeInteger(n) || n < min)
    usage(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(s)}`);
  return n;
}

function required(v: Values, name: string): string {
  if (typeof v[name] !== 'string') usage(`--${name} is required`);
  return v[name] as string;
}

/** Logs each distinct message at most every `ms` (a Redis outage repeats its error at every reconnect). */
function rateLimited(log: (line: string) => void, ms: number): (line: string) => void {
  const last = new Map<string, number>();
  return (line) => {
    const now = Date.now();
    if (now - (last.get(line) ?? -Infinity) < ms) return;
    last.set(line, now);
    log(line);
  };
}

/** `vitmsn worker`: runs until SIGTERM/SIGINT; resolves only if it cannot start. */
export async function workerCommand(v: Values, load: LoadOptions, err: Out = process.stderr): Promise<number> {
  const redis = required(v, 'redis');
  const queue = required(v, 'queue');
  const model = required(v, 'model');
  const log = (line: string) => err.write(`vitmsn: ${line}\n`);
  const connectionLog = rateLimited(log, 5000);
  const batching: BatchingOptions = {};
  const maxBatch = int(v, 'max-batch', undefined);
  if (maxBatch !== undefined) batching.maxBatch = maxBatch;
  const maxDelay = int(v, 'max-delay-ms', undefined, 0);
  if (maxDelay !== undefined) batching.maxDelayMs = maxDelay;
  const drainTimeoutMs = int(v, 'drain-timeout-ms', 30_000, 0)!;
  const logIntervalS = int(v, 'log-interval-s', 60, 0)!;
  const metricsPort = int(v, 'metrics-port', undefined, 0);
  const onEvent = (e: WorkerEvent) => {
    switch (e.type) {
      case 'job-started':
        return log(`job ${e.job}: started (${e.images} images${e.attempt > 1 ? `, attempt ${e.attempt}` : ''})`);
      case 'job-completed':
        return log(
          e.skipped
            ? `job ${e.job}: already done (shard and entry found): skipped`
            : `job ${e.job}: done, ${e.embedded} embedded, ${e.failed} failed, ${Math.round(e.ms)} ms`,
        );
      case 'job-failed':
        return log(
          `job ${e.job}: attempt ${e.attempt} failed${e.final ? ' (no retry left)' : ', will retry'}: ${e.reason}`,
        );
      case 'job-handed-back':
        return log(`job ${e.job}: handed back to the queue`);
      case 'error':
        return connectionLog(`queue: ${e.error.message}`);
    }
  };
  const worker = await createWorker({
    redis,
    queue,
    model,
    load: { ...load, batching },
    onEvent,
    concurrency: int(v, 'concurrency', undefined),
    name: v.name as string | undefined,
    outputRoot: v['output-root'] as string | undefined,
    lockDurationMs: int(v, 'lock-duration-ms', undefined),
    stalledIntervalMs: int(v, 'stalled-interval-ms', undefined),
  });
  let server: Server | undefined;
  if (metricsPort !== undefined) {
    server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404).end('only GET /metrics here\n');
        return;
      }
      worker.metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': worker.metrics.contentType }).end(text),
        (e) => res.writeHead(500).end(String((e as Error)?.message ?? e)),
      );
    });
    const host = (v.host as string | undefined) ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => server!.once('error', reject).listen(metricsPort, host, resolve));
    const a = server.address();
    log(`metrics at http://${host}:${typeof a === 'object' && a ? a.port : metricsPort}/metrics`);
  }
  log(
    `worker ${worker.name} ready: model ${model} (${worker.model.device}, ${worker.model.dtype}), queue ${queue} at ${redacted(redis)}`,
  );
  const timer =
    logIntervalS > 0
      ? setInterval(() => {
          const s = worker.stats();
          worker.queueCounts().then(
            (c) =>
              log(
                `stats: ${s.jobs.completed} jobs done, ${s.images.embedded} images embedded, ${s.images.failed} failed, ` +
                  `${s.model.imagesPerSecond.toFixed(1)} img/s; queue: ${c.waiting ?? 0} waiting, ${c.active ?? 0} active, ${c.failed ?? 0} failed`,
              ),
            () => undefined,
          );
        }, logIntervalS * 1000)
      : undefined;
  timer?.unref();

  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        log(`${signal} again: exiting now (the queue recovers the running jobs)`);
        process.exit(1);
      }
      signalled = true;
      log(
        `${signal}: taking no more jobs; finishing the running ones (up to ${drainTimeoutMs} ms, then handing them back)`,
      );
      if (timer) clearInterval(timer);
      server?.close();
      worker.close({ timeoutMs: drainTimeoutMs }).then(
        () => {
          log('closed: exiting');
          resolve(0);
        },
        (e) => {
          log(`close failed: ${(e as Error)?.message ?? e}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Files of a folder that are images (sorted; sub-folders too when `recursive`). */
async function imagesIn(dir: string, recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && recursive) out.push(...(await imagesIn(p, true)));
    else if (!e.isDirectory() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(p);
  }
  return out;
}

const LIST_EXT = new Set(['.txt', '.lst', '.list']);
const MAX_LIST_BYTES = 1 << 30;

/**
 * The images named on the command line: files as given, folders expanded, and list files (.txt,
 * .lst, .list: one path a line, '#' comments; relative paths from the list's folder).
 */
async function expand(args: string[], recursive: boolean): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) {
    let isDir = false;
    try {
      isDir = (await stat(a)).isDirectory();
    } catch {
      /* a missing file is recorded by the worker, with its code */
    }
    if (isDir) {
      out.push(...(await imagesIn(a, recursive)));
    } else if (LIST_EXT.has(path.extname(a).toLowerCase())) {
      const text = (
        await readBoundedFile(a, MAX_LIST_BYTES, (_p, m) => {
          invalid(`list ${a} ${m}`);
        })
      ).toString('utf8');
      for (const line of text.split(/\r?\n/)) {
        const t = line.trim();
        if (t && !t.startsWith('#')) out.push(path.resolve(path.dirname(a), t));
      }
    } else {
      out.push(a);
    }
  }
  if (out.length === 0) usage('no images given');
  return out.map((p) => path.resolve(p));
}

/** `vitmsn enqueue`: submits, and with --wait follows the jobs to the end. */
export async function enqueueCommand(
  args: string[],
  v: Values,
  out: Out = process.stdout,
  err: Out = process.stderr,
): Promise<number> {
  const redis = required(v, 'redis');
  const queue = required(v, 'queue');
  const pooling = (v.pooling as string | undefined) ?? 'cls';
  if (!POOLINGS.includes(pooling as Pooling)) usage(`--pooling must be one of ${POOLINGS.join(', ')}`);
  const format = (v.format as string | undefined) ?? 'npy';
  if (!SHARD_FORMATS.includes(format as ShardFormat)) usage(`--format must be one of ${SHARD_FORMATS.join(', ')}`);
  const outDir = v.out as string | undefined;
  if (!outDir && !v.wait)
    usage('give --out <dir> (shards on shared storage) or --wait (results back through Redis, printed as JSON lines)');
  const files = await expand(args, v.recursive === true);
  let images: SubmitImage[] = files;
  if (v.inline) {
    images = await Promise.all(
      files.map(async (f) => ({
        id: f,
        bytes: await readBoundedFile(f, 2 ** 20, (_p, m) => {
          invalid(`--inline: ${f} ${m} (inline images are at most 1 MiB: use a shared folder instead)`);
        }),
      })),
    );
  }
  const sub = await enqueue({
    redis,
    queue,
    images,
    out: outDir,
    format: format as ShardFormat,
    pooling: pooling as Pooling,
    normalize: v.normalize === true,
    chunkSize: int(v, 'chunk-size', undefined),
    attempts: int(v, 'attempts', undefined),
    prefix: v['job-prefix'] as string | undefined,
  });
  try {
    err.write(`vitmsn: queued ${sub.images} images in ${sub.jobIds.length} jobs (${sub.prefix}-…) on ${queue}\n`);
    if (!v.wait) return 0;
    const bar = new CountBar(err, 'embedding', 'images');
    const r = await sub.wait({
      onProgress: (p) =>
        bar.update(
          p.imagesDone,
          p.images,
          p.failedJobs ? `${p.failedJobs} job${p.failedJobs > 1 ? 's' : ''} failed` : '',
        ),
    });
    bar.done();
    for (const f of r.failures) err.write(`vitmsn: image ${f.id}: ${f.code}: ${f.message}\n`);
    for (const j of r.failedJobs) err.write(`vitmsn: job ${j.job} failed (${j.images.length} images): ${j.reason}\n`);
    if (r.embeddings) {
      const { data, shape, ids } = r.embeddings;
      const D = shape[1];
      const lines: string[] = [];
      for (let i = 0; i < ids.length; i++)
        lines.push(JSON.stringify({ image: ids[i], embedding: Array.from(data.subarray(i * D, (i + 1) * D)) }));
      if (lines.length) out.write(`${lines.join('\n')}\n`);
    }
    err.write(
      `vitmsn: ${r.embedded} images embedded, ${r.failures.length} failed, ${r.failedJobs.length} of ${r.jobs} jobs failed${r.manifest ? `; manifest ${r.manifest}` : ''}\n`,
    );
    if (r.failedJobs.length)
      throw new VitMsnError(
        'ERR_JOB_FAILED',
        `${r.failedJobs.length} job(s) ended in the failed set (first: ${r.failedJobs[0].reason})`,
      );
    return 0;
  } finally {
    await sub.close();
  }
}
