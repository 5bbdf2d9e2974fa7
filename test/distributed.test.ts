// Embedding jobs on a real Redis (redis-server started here, no mocks) with BullMQ: worker and
// producer processes run the built CLI (dist/cli.js) as a user would. One worker is SIGKILLed in
// the middle of a job, Redis is killed and restarted mid-run, a worker gets SIGTERM: every image
// must still be embedded exactly once, with the bits an in-process encode() gives, and every bad
// image listed with its code.
//
// Bit for bit: rows are compared with a reference made by `vitmsn embed` of the same files. The
// workers' dynamic batches differ from the reference's, so both run a CPU kernel path whose
// results do not depend on the batch (VITMSN_CPU_ISA=avx2, or scalar without AVX2); the AVX-512
// path's fused ops sum in another order at other batch sizes (TOL.batchedVsAlone).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue, readResults, type Manifest } from '../lib/distributed/index';
import { parseNpy } from '../lib/distributed/results';

import { bmpBytes } from './support/png';
import { redisSkipReason, startRedis, type RedisServer } from './support/redis';
import { tinyModelFolder } from './support/real-models';

const execFileP = promisify(execFile);
const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
const ISA = process.arch === 'x64' && /\bavx2\b/.test(cpuinfo) && /\bfma\b/.test(cpuinfo) ? 'avx2' : 'scalar';
const ENV = { ...process.env, VITMSN_CPU_ISA: ISA };

if (redisSkipReason) console.log(redisSkipReason);

const tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-dist-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const N = 2000;
/** The deliberately bad inputs among the N, by position, with the code each must be recorded with. */
const BAD: Record<number, { name: string; bytes?: Buffer | string; code: string }> = {
  7: { name: 'bad-text.png', bytes: 'not a png at all', code: 'ERR_IMAGE_INVALID' },
  500: { name: 'bad-empty.jpg', bytes: '', code: 'ERR_IMAGE_INVALID' },
  999: { name: 'bad.bmp', bytes: bmpBytes(), code: 'ERR_IMAGE_UNSUPPORTED' },
  1500: { name: 'bad-missing.png', code: 'ERR_IMAGE_NOT_FOUND' },
  1998: { name: 'bad-truncated.png', code: 'ERR_IMAGE_INVALID' },
};

let model: string;
let files: string[]; // all N, in submission order
let good: string[];
let expectedFailures: Record<string, string>;
let list: string;
let reference: Float32Array; // `vitmsn embed` of `good`, in order

/** A child process whose stderr lines are kept and can be watched. */
class Proc {
  readonly child: ChildProcess;
  lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #watchers: Array<(line: string) => void> = [];

  constructor(args: string[], env: NodeJS.ProcessEnv = ENV) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.child.stderr!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      for (const l of parts) {
        this.lines.push(l);
        for (const w of this.#watchers) w(l);
      }
    });
    this.child.stdout!.resume();
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Calls `f` with each later line (synchronously, as it arrives). */
  onLine(f: (line: string) => void) {
    this.#watchers.push(f);
  }

  /** Resolves with the first line (already seen or later) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no line matching ${re} in ${timeoutMs} ms:\n${this.lines.join('\n')}`)),
        timeoutMs,
      );
      this.onLine((l) => {
        if (re.test(l)) {
          clearTimeout(t);
          resolve(l);
        }
      });
    });
  }

  count(re: RegExp): number {
    return this.lines.filter((l) => re.test(l)).length;
  }

  /** Jobs this worker logged as started but never as finished. */
  unfinished(): string[] {
    const started = new Set(this.lines.flatMap((l) => /job (\S+): started/.exec(l)?.[1] ?? []));
    for (const l of this.lines) {
      const m = /job (\S+): (done|already done|handed back)/.exec(l);
      if (m) started.delete(m[1]);
    }
    return [...started];
  }
}

function worker(redis: RedisServer, queue: string, name: string, extra: string[] = []): Proc {
  return new Proc([
    'worker',
    '--redis',
    redis.url,
    '--queue',
    queue,
    '--model',
    model,
    '--device',
    'cpu',
    '--threads',
    '1',
    '--concurrency',
    '2',
    '--name',
    name,
    '--lock-duration-ms',
    '2000',
    '--stalled-interval-ms',
    '1000',
    '--log-interval-s',
    '0',
    ...extra,
  ]);
}

async function stopAll(procs: Proc[]) {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

/** Checks an output folder against the submission of `ids` (all of `files` from `from` on): each good image once, bits equal to the reference. */
async function checkOutput(out: string, subset: { from: number; to: number }) {
  const r = await readResults(out);
  const want = files.slice(subset.from, subset.to).filter((f) => !(f in expectedFailures));
  expect(new Set(r.ids).size).toBe(r.ids.length); // no image twice
  expect(r.ids).toEqual(want); // shards in job order, rows in image order: exactly the good images
  const firstRow = good.indexOf(want[0]);
  const D = r.shape[1];
  const ref = reference.subarray(firstRow * D, (firstRow + want.length) * D);
  expect(
    Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength).equals(
      Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength),
    ),
  ).toBe(true);
  const failures = Object.fromEntries(r.failures.map((f) => [f.id, f.code]));
  expect(failures).toEqual(
    Object.fromEntries(
      Object.entries(expectedFailures).filter(
        ([id]) => files.indexOf(id) >= subset.from && files.indexOf(id) < subset.to,
      ),
    ),
  );
  expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]); // no temp file left behind
  return r;
}

describe('vitmsn worker / enqueue usage', () => {
  const run = async (args: string[]) => {
    try {
      await execFileP(process.execPath, [CLI, ...args], { cwd: tmp });
      return { code: 0, stderr: '' };
    } catch (e) {
      return e as { code: number; stderr: string };
    }
  };
  it('--help lists both commands and their options', async () => {
    const { stdout } = await execFileP(process.execPath, [CLI, '--help']);
    expect(stdout).toMatch(/^  vitmsn worker --redis <url> --queue <name> --model <dir>/m);
    expect(stdout).toMatch(/^  vitmsn enqueue <images, folders or \.txt lists\.\.\.> --redis <url>/m);
    expect(stdout).toMatch(/--stalled-interval-ms <n>/);
  });

  it('missing or bad options: usage (2) or a coded error (1), before any connection', async () => {
    expect(await run(['worker', '--queue', 'q', '--model', 'm'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--redis is required/),
    });
    expect(await run(['enqueue', 'x.png', '--redis', 'redis://127.0.0.1:1', '--queue', 'q'])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--out <dir>.*or --wait/),
    });
    expect(await run(['enqueue', 'x.png', '--redis', 'http://127.0.0.1:1', '--queue', 'q', '--wait'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/ERR_INVALID_ARGUMENT: redis must be a redis:\/\//),
    });
    expect(await run(['enqueue', 'x.png', '--redis', 'redis://127.0.0.1:1', '--queue', 'a:b', '--wait'])).toMatchObject(
      { code: 1, stderr: expect.stringMatching(/ERR_INVALID_ARGUMENT: queue must be/) },
    );
  });
});

describe.skipIf(redisSkipReason !== undefined)('distributed embedding on BullMQ (real Redis)', () => {
  beforeAll(async () => {
    model = tinyModelFolder(path.join(tmp, 'tiny-s8'), 'tiny-s8', 32);
    const dir = path.join(tmp, 'images');
    mkdirSync(dir);
    files = [];
    expectedFailures = {};
    let truncated: Buffer | undefined;
    for (let k = 0; k < N; k++) {
      const bad = BAD[k];
      const file = path.join(dir, bad ? bad.name : `img${String(k).padStart(4, '0')}.png`);
      files.push(file);
      if (bad) {
        expectedFailures[file] = bad.code;
        continue;
      }
      const px = Buffer.alloc(32 * 32 * 3);
      for (let i = 0; i < px.length; i++) px[i] = (i * 7 + k * 131 + (i >> 5) * (k % 97)) & 255;
      const png = await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
        .png()
        .toBuffer();
      truncated ??= png.subarray(0, png.length >> 1);
      writeFileSync(file, png);
    }
    for (const bad of Object.values(BAD)) {
      const bytes = bad.name === 'bad-truncated.png' ? truncated : bad.bytes;
      if (bytes !== undefined) writeFileSync(path.join(dir, bad.name), bytes);
    }
    good = files.filter((f) => !(f in expectedFailures));
    list = path.join(tmp, 'images.txt');
    writeFileSync(list, `${files.join('\n')}\n`);
    // The reference: in-process encode() of the good images (the embed command, one process).
    const ref = path.join(tmp, 'reference.npy');
    await execFileP(
      process.execPath,
      [CLI, 'embed', ...good, '--model', model, '--device', 'cpu', '--threads', '1', '--out', ref],
      { env: ENV },
    );
    reference = parseNpy(readFileSync(ref), ref).data;
    expect(reference.length).toBe(good.length * 32);
  }, 120_000);

  it('3 workers, 1 producer, 2000 images, one worker SIGKILLed mid-job: each image embedded once, bit for bit, bad ones listed with codes', async () => {
    const redis = await startRedis();
    const procs: Proc[] = [];
    try {
      const [w1, w2, w3] = ['w1', 'w2', 'w3'].map((n) =>
        worker(redis, 'kill', n, n === 'w2' ? ['--metrics-port', '0'] : []),
      );
      procs.push(w1, w2, w3);
      await Promise.all([w1, w2, w3].map((w) => w.waitFor(/ready/)));
      // SIGKILL w1 as it starts a job, once it has finished two: it dies holding that job (and
      // perhaps another), which the others' stalled-job checks must put back in the queue.
      let done = 0;
      w1.onLine((l) => {
        if (/: done,/.test(l)) done++;
        else if (done >= 2 && /: started/.test(l) && w1.child.exitCode === null) w1.child.kill('SIGKILL');
      });
      const out = path.join(tmp, 'out-kill');
      const producer = new Proc([
        'enqueue',
        list,
        '--redis',
        redis.url,
        '--queue',
        'kill',
        '--out',
        out,
        '--chunk-size',
        '40',
        '--wait',
      ]);
      procs.push(producer);
      const { code } = await producer.exited;
      expect(code, producer.lines.join('\n')).toBe(0);
      expect((await w1.exited).signal).toBe('SIGKILL');

      const lost = w1.unfinished();
      expect(lost.length).toBeGreaterThan(0); // it did die in the middle of a job
      // Each job was finished (its shard written) by exactly one worker.
      const finished = new Map<string, number>();
      for (const w of [w1, w2, w3])
        for (const l of w.lines) {
          const job = /job (\S+): done,/.exec(l)?.[1];
          if (job) finished.set(job, (finished.get(job) ?? 0) + 1);
        }
      expect(finished.size).toBe(N / 40);
      expect([...finished.values()].every((n) => n === 1)).toBe(true);
      const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as Manifest;
      expect(manifest.jobs).toBe(N / 40);
      expect(manifest.failedJobs).toEqual([]);
      expect(manifest.embedded).toBe(good.length);
      expect(manifest.shards.length).toBe(N / 40);
      for (const job of lost) expect(manifest.shards.find((s) => s.job === job)?.worker).toMatch(/^w[23]$/);
      await checkOutput(out, { from: 0, to: N });
      // The producer listed each bad image with its code.
      for (const [file, c] of Object.entries(expectedFailures))
        expect(producer.lines.some((l) => l.includes(`image ${file}: ${c}:`))).toBe(true);

      // BullMQ's view: every job completed, the dead worker's ones after a stall.
      const queue = new Queue('kill', { connection: { url: redis.url } });
      try {
        expect(await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed')).toEqual({
          completed: N / 40,
          failed: 0,
          waiting: 0,
          active: 0,
          delayed: 0,
        });
        for (const job of lost) expect((await queue.getJob(job))!.stalledCounter).toBeGreaterThanOrEqual(1);
      } finally {
        await queue.close();
      }

      // Metrics of w2: throughput, jobs by outcome, image failures by code, queue depth.
      const url = /metrics at (\S+)/.exec(await w2.waitFor(/metrics at/))![1];
      const text = await (await fetch(url)).text();
      expect(text).toMatch(/^vitmsn_images_total \d+/m);
      expect(text).toMatch(/^vitmsn_jobs_total\{status="completed"\} [1-9]/m);
      expect(text).toMatch(/^vitmsn_queue_jobs\{state="completed"\} 50$/m);
      expect(text).toMatch(/^vitmsn_images_per_second /m);
      const imageErrors = [...text.matchAll(/^vitmsn_image_errors_total\{code="(\w+)"\} (\d+)/gm)];
      expect(imageErrors.length).toBeGreaterThan(0);

      // Running the same submission again is a no-op: same job ids, nothing recomputed or rewritten.
      const stamp = () =>
        Object.fromEntries(
          readdirSync(out)
            .filter((f) => f !== 'manifest.json')
            .map((f) => [f, statSync(path.join(out, f)).mtimeMs]),
        );
      const before = stamp();
      const again = new Proc([
        'enqueue',
        list,
        '--redis',
        redis.url,
        '--queue',
        'kill',
        '--out',
        out,
        '--chunk-size',
        '40',
        '--wait',
      ]);
      expect((await again.exited).code, again.lines.join('\n')).toBe(0);
      expect(again.lines.join('\n')).toMatch(/1995 images embedded, 5 failed, 0 of 50 jobs failed/);
      // …and with the jobs gone from Redis, the workers find the outputs and skip the jobs.
      const q2 = new Queue('kill', { connection: { url: redis.url } });
      await q2.obliterate({ force: true });
      await q2.close();
      const skipped0 = w2.count(/already done/) + w3.count(/already done/);
      const third = new Proc([
        'enqueue',
        list,
        '--redis',
        redis.url,
        '--queue',
        'kill',
        '--out',
        out,
        '--chunk-size',
        '40',
        '--wait',
      ]);
      expect((await third.exited).code, third.lines.join('\n')).toBe(0);
      expect(w2.count(/already done/) + w3.count(/already done/) - skipped0).toBe(N / 40);
      expect(stamp()).toEqual(before);
      await checkOutput(out, { from: 0, to: N });

      // SIGTERM: both remaining workers close cleanly.
      for (const w of [w2, w3]) w.child.kill('SIGTERM');
      for (const w of [w2, w3]) expect(await w.exited).toEqual({ code: 0, signal: null });
      expect(w2.lines.join('\n')).toMatch(/closed: exiting/);
    } finally {
      await stopAll(procs);
      await redis.stop();
    }
  }, 120_000);

  it('Redis killed and restarted mid-run (AOF): workers and producer reconnect and finish; nothing lost or duplicated', async () => {
    const redis = await startRedis({ aof: true });
    const procs: Proc[] = [];
    try {
      const ws = ['r1', 'r2'].map((n) => worker(redis, 'restart', n, ['--lock-duration-ms', '5000']));
      procs.push(...ws);
      await Promise.all(ws.map((w) => w.waitFor(/ready/)));
      const out = path.join(tmp, 'out-restart');
      const sub = await enqueue({
        redis: redis.url,
        queue: 'restart',
        images: files.slice(0, 600),
        out,
        chunkSize: 20,
      });
      const finished = sub.wait({ pollMs: 100 });
      finished.catch(() => undefined);
      // Once some shards are written, Redis dies (SIGKILL: only its append-only file remains) and
      // comes back a second later on the same port.
      const entries = () => readdirSync(out).filter((f) => /-\d{6}\.json$/.test(f)).length;
      for (const t0 = Date.now(); entries() < 4; ) {
        if (Date.now() - t0 > 60_000) throw new Error('no shard written');
        await new Promise((r) => setTimeout(r, 20));
      }
      await redis.kill();
      const during = entries();
      await new Promise((r) => setTimeout(r, 1000));
      await redis.start();
      const r = await finished;
      await sub.close();
      expect(during).toBeLessThan(30); // it did restart mid-run
      expect(r.failedJobs).toEqual([]);
      expect(r.jobs).toBe(30);
      expect(r.embedded).toBe(600 - 2);
      await checkOutput(out, { from: 0, to: 600 });
      for (const w of ws) expect(w.child.exitCode).toBe(null); // both still running
      expect(ws.some((w) => w.lines.some((l) => /queue: /.test(l)))).toBe(true); // and they did see the outage
    } finally {
      await stopAll(procs);
      await redis.stop();
    }
  }, 120_000);

  it('SIGTERM hands running jobs back without using an attempt; inline results; a job that keeps failing ends in the failed set with its reason', async () => {
    const redis = await startRedis();
    const procs: Proc[] = [];
    try {
      const a = worker(redis, 'term', 'a', ['--drain-timeout-ms', '0']);
      const b = worker(redis, 'term', 'b');
      procs.push(a, b);
      await Promise.all([a, b].map((w) => w.waitFor(/ready/)));
      let done = 0;
      let terminated = false; // once: a second SIGTERM means "exit now" (code 1), and under load a job can
      // still start between the kill and the worker's handler running
      a.onLine((l) => {
        if (/: done,/.test(l)) done++;
        else if (done >= 1 && /: started/.test(l) && !terminated) {
          terminated = true;
          a.child.kill('SIGTERM');
        }
      });
      const out = path.join(tmp, 'out-term');
      const sub = await enqueue({
        redis: redis.url,
        queue: 'term',
        images: files.slice(1000, 1400),
        out,
        chunkSize: 40,
        format: 'safetensors',
      });
      const r = await sub.wait({ pollMs: 100 });
      await sub.close();
      expect(await a.exited).toEqual({ code: 0, signal: null });
      const handed = a.lines.flatMap((l) => /job (\S+): handed back/.exec(l)?.[1] ?? []);
      expect(handed.length).toBeGreaterThan(0);
      expect(r.failedJobs).toEqual([]);
      const queue = new Queue('term', { connection: { url: redis.url } });
      try {
        // A job given back ran once more but used no attempt: as many as a job that ran once (BullMQ counts the completion too).
        const once = (await queue.getJob(sub.jobIds.find((id) => !handed.includes(id))!))!;
        for (const id of handed) {
          const job = (await queue.getJob(id))!;
          expect([job.attemptsStarted, job.attemptsMade, job.processedBy]).toEqual([
            once.attemptsStarted + 1,
            once.attemptsMade,
            'b',
          ]);
        }
      } finally {
        await queue.close();
      }
      await checkOutput(out, { from: 1000, to: 1400 });

      // Without an output folder the embeddings come back through the queue (here sent inline too).
      const some = good.slice(0, 50);
      const inline = await enqueue({
        redis: redis.url,
        queue: 'term',
        images: some.map((f) => ({ id: f, bytes: readFileSync(f) })),
        chunkSize: 16,
      });
      const res = await inline.wait({ pollMs: 100 });
      await inline.close();
      expect(res.embeddings!.ids).toEqual(some);
      const ref = reference.subarray(0, 50 * 32);
      expect(
        Buffer.from(res.embeddings!.data.buffer).equals(Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength)),
      ).toBe(true);

      // A shard that cannot be written (a folder stands where it goes): each attempt fails with
      // ERR_WRITE_FAILED, is retried with backoff, and after the last one the job is in the failed
      // set with that reason.
      const broken = path.join(tmp, 'out-broken');
      mkdirSync(path.join(broken, 'broken-000000.npy'), { recursive: true });
      const failing = await enqueue({
        redis: redis.url,
        queue: 'term',
        images: good.slice(0, 3),
        out: broken,
        prefix: 'broken',
        attempts: 3,
        backoffMs: 50,
      });
      const f = await failing.wait({ pollMs: 100 });
      await failing.close();
      expect(f.failedJobs.map((j) => [j.job, j.code, j.images.length])).toEqual([
        [failing.jobIds[0], 'ERR_WRITE_FAILED', 3],
      ]);
      expect(f.failedJobs[0].reason).toMatch(/^ERR_WRITE_FAILED: .*broken-000000\.npy/);
      expect(readdirSync(broken).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      expect(b.count(/attempt 3 failed \(no retry left\): ERR_WRITE_FAILED/)).toBe(1);

      // A malformed job (here from a newer producer) fails at once, not retried, with its reason.
      const q = new Queue('term', { connection: { url: redis.url } });
      try {
        await q.add('vitmsn.embed', { v: 99, images: [] }, { jobId: 'malformed-000000', attempts: 5 });
        for (
          const t0 = Date.now();
          (await q.getJobState('malformed-000000')) !== 'failed';
          await new Promise((r) => setTimeout(r, 50))
        ) {
          if (Date.now() - t0 > 20_000) throw new Error('the malformed job did not fail');
        }
        const job = (await q.getJob('malformed-000000'))!;
        expect(job.failedReason).toMatch(/^ERR_INVALID_ARGUMENT: malformed job: version 99/);
        expect(job.attemptsMade).toBe(1);
      } finally {
        await q.close();
      }
    } finally {
      await stopAll(procs);
      await redis.stop();
    }
  }, 120_000);
});
