// Ending a worker_threads Worker while the addon is busy in it (loading a model, forward, encode,
// preprocess) must never take the process down: the calls that complete while the worker's
// environment is shutting down are dropped quietly. Each case runs in a child process
// (test/support/terminate-child.cjs), so an abort shows up as its exit status instead of killing
// vitest. Uses the built dist/.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { goldenDir } from './support/goldens';
import { realModel } from './support/real-models';

const execFileP = promisify(execFile);
const DIST = path.join(__dirname, '..', 'dist', 'index.js');
const CHILD = path.join(__dirname, 'support', 'terminate-child.cjs');
const TINY = goldenDir('tiny-s8');
const DELAYS = [0, 2, 7, 20, 45];

interface Round {
  kind: string;
  model: string;
  delay: number;
  batch: number;
}

async function runChild(
  rounds: Round[],
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CHILD, JSON.stringify({ dist: DIST, rounds })], {
      timeout: 120_000,
    });
    return { code: 0, signal: null, stdout, stderr };
  } catch (e) {
    const err = e as { code: number | null; signal: string | null; stdout: string; stderr: string };
    return { code: err.code, signal: err.signal, stdout: err.stdout, stderr: err.stderr };
  }
}

function expectClean(r: Awaited<ReturnType<typeof runChild>>, rounds: number) {
  const detail = `exit ${r.code} signal ${r.signal}\n${r.stdout}\n${r.stderr}`;
  expect(r.code, detail).toBe(0);
  expect(r.stdout, detail).toContain('TERMINATE-OK');
  expect(r.stdout.split('\n').filter((l) => l.startsWith('round ')).length, detail).toBe(rounds);
}

describe('terminating a worker mid-call', () => {
  let vitS = '';
  beforeAll(async () => {
    vitS = (await realModel('vit-s16')).modelDir;
  });

  // Tiny model, big batches: many short calls, several in flight at each moment.
  it.each(['forward', 'encode', 'preprocess', 'load'])(
    'worker.terminate() during %s (tiny model, varied delays)',
    async (kind) => {
      const rounds = DELAYS.map((delay) => ({ kind, model: TINY, delay, batch: 96 }));
      expectClean(await runChild(rounds), rounds.length);
    },
  );

  it('process.exit() inside the worker mid-forward (tiny model, varied delays)', async () => {
    const rounds = DELAYS.map((delay) => ({ kind: 'exit', model: TINY, delay, batch: 96 }));
    expectClean(await runChild(rounds), rounds.length);
  });

  // Real-size ViT-S/16 (~90 MB of weights, ~80 ms to load, ~150 ms per forward here): cut off in
  // the middle of a load, a forward or an encode. Every round's model must be freed with its worker:
  // a leak would add its weights to this process's RSS each round.
  it('worker.terminate() and process.exit() during ViT-S/16 load, forward and encode; memory is freed', async () => {
    const rounds = [
      { kind: 'load', delay: 30 },
      { kind: 'load', delay: 120 },
      ...[10, 40, 80, 130, 170, 220, 260, 300].map((delay) => ({ kind: 'forward', delay })),
      { kind: 'encode', delay: 60 },
      { kind: 'encode', delay: 200 },
      { kind: 'exit', delay: 80 },
      { kind: 'exit', delay: 250 },
    ].map((r) => ({ ...r, model: vitS, batch: 2 }));
    const r = await runChild(rounds);
    expectClean(r, rounds.length);
    const rss = [...r.stdout.matchAll(/rss=(\d+)/g)].map((m) => Number(m[1]));
    // Allocator caches make RSS plateau after a few rounds, well under 10 leaked models (~900 MiB).
    expect(Math.max(...rss.slice(4)) - rss[3], r.stdout).toBeLessThan(400);
  });
});
