// Dynamic batching, cancellation and backpressure on one model's queue (lib/call-queue.ts,
// lib/batch-runner.ts, lib/model-calls.ts): concurrent calls share native batches and each caller
// gets what it would get alone; aborted and timed-out calls leave the queue at once without
// touching anyone else's results; a full queue answers ERR_OVERLOADED at once; 10 000 waiting
// callers hold little memory; model.stats() reports what happened. All on the CPU, tiny models.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Classification, type ForwardOutput, type Model, type Tensor } from '../lib/index';
import { goldenDir, type GoldenModel } from './support/goldens';
import { relL2, tinyModelFolder } from './support/real-models';
import { TOL } from './tolerances';

const FIX = path.join(__dirname, 'fixtures');
const tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-batching-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A tiny golden model with the facebook preprocessor at `size` (bigger = slower forwards). */
function folder(name: GoldenModel, size: number): string {
  return tinyModelFolder(path.join(tmp, `${name}-${size}`), name, size);
}

const images = [
  readFileSync(path.join(FIX, 'images', 'chelsea.png')),
  readFileSync(path.join(FIX, 'images', 'camera.png')),
  readFileSync(path.join(FIX, 'pil', 'exif6.jpg')),
  readFileSync(path.join(FIX, 'pil', 'rgba.webp')),
];
const raw = (k: number) => ({
  data: new Uint8Array(40 * 30 * 3).map((_, i) => (i * 7 + k * 13) % 256),
  width: 40,
  height: 30,
  channels: 3 as const,
});
const same = (a: Float32Array, b: Float32Array) =>
  expect(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
  ).toBe(true);
/** A row from a shared batch vs the same call alone (see TOL.batchedVsAlone). */
const close = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  expect(relL2(a, b)).toBeLessThanOrEqual(TOL.batchedVsAlone);
};
const isAbort = (name: string) => (e: unknown) => (e as Error).name === name;

describe('dynamic batching', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(folder('tiny-s8', 32), {
      device: 'cpu',
      threads: 1,
      batching: { maxBatch: 8, maxDelayMs: 50 },
    });
  });
  afterAll(() => model?.dispose());

  it('concurrent single-image encode() calls share batches; each gets its own row, as alone', async () => {
    const alone: Tensor[] = [];
    for (let k = 0; k < 8; k++) alone.push(await model.encode(k < 4 ? images[k] : raw(k)));
    const before = model.stats();
    const together = await Promise.all(Array.from({ length: 8 }, (_, k) => model.encode(k < 4 ? images[k] : raw(k))));
    const after = model.stats();
    expect(after.batches - before.batches).toBeLessThanOrEqual(2); // 8 calls in one batch (two if the delay ran out)
    expect(after.batchSizes[8] ?? 0).toBeGreaterThan(before.batchSizes[8] ?? 0);
    together.forEach((t, k) => {
      expect(t.shape).toEqual([1, 32]);
      close(t.data, alone[k].data);
    });
  });

  it('calls with other options do not share a batch; a multi-image call is split back in order', async () => {
    const want = await model.encode([images[0], images[1], raw(1)], { pooling: 'mean', normalize: true });
    const wantCls = await model.encode(images[2]);
    const [a, b] = await Promise.all([
      model.encode([images[0], images[1], raw(1)], { pooling: 'mean', normalize: true }),
      model.encode(images[2]),
    ]);
    close(a.data, want.data);
    close(b.data, wantCls.data);
  });

  it('forward() calls of one shape share a batch; each caller gets its own rows', async () => {
    const x = (k: number) => new Float32Array(3 * 32 * 32).map((_, i) => Math.sin(i * 0.05 + k));
    const alone: ForwardOutput[] = [];
    for (let k = 0; k < 4; k++) alone.push(await model.forward(x(k), [1, 3, 32, 32]));
    const before = model.stats().batches;
    const together = await Promise.all([0, 1, 2, 3].map((k) => model.forward(x(k), [1, 3, 32, 32])));
    expect(model.stats().batches - before).toBe(1);
    together.forEach((t, k) => {
      expect(t.lastHiddenState.shape).toEqual([1, 17, 32]);
      expect(t.lastHiddenState.data.buffer.byteLength).toBe(17 * 32 * 4); // not a view of the others' rows
      close(t.lastHiddenState.data, alone[k].lastHiddenState.data);
    });
  });

  it('a bad image fails only its own call, in a shared batch', async () => {
    const good = await model.encode(images[1]);
    const [bad, ok] = await Promise.allSettled([
      model.encode([images[0], Buffer.from('not an image')]),
      model.encode(images[1]),
    ]);
    expect(bad.status).toBe('rejected');
    expect((bad as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_IMAGE_INVALID' });
    expect(ok.status).toBe('fulfilled');
    close((ok as PromiseFulfilledResult<{ data: Float32Array }>).value.data, good.data);
  });

  it('classify() batches too, with id2label names', async () => {
    const m = await loadModel(goldenDir('tiny-cls'), {
      device: 'cpu',
      threads: 1,
      batching: { maxBatch: 4, maxDelayMs: 50 },
    });
    try {
      const alone: Classification[][][] = [];
      for (let k = 0; k < 4; k++) alone.push(await m.classify(raw(k), { topK: 2 }));
      const together = await Promise.all([0, 1, 2, 3].map((k) => m.classify(raw(k), { topK: 2 })));
      together.forEach((t, k) => {
        expect(t[0].map((c) => [c.label, c.index])).toEqual(alone[k][0].map((c) => [c.label, c.index]));
        t[0].forEach((c, j) => expect(Math.abs(c.score - alone[k][0][j].score)).toBeLessThanOrEqual(1e-6));
      });
      expect(together[0][0][0].label).toMatch(/^class_\d$/);
      expect(m.stats().batchSizes[4]).toBe(1);
    } finally {
      await m.dispose();
    }
  });

  it('batching: false runs every call alone, in call order', async () => {
    const m = await loadModel(folder('tiny-s8', 32), { device: 'cpu', threads: 1, batching: false });
    try {
      const order: number[] = [];
      await Promise.all([0, 1, 2, 3].map((k) => m.encode(raw(k)).then(() => order.push(k))));
      expect(order).toEqual([0, 1, 2, 3]);
      expect(m.stats().batchSizes).toEqual({ 1: 4 });
    } finally {
      await m.dispose();
    }
  });

  it('two models keep separate queues and stats', async () => {
    const m = await loadModel(goldenDir('tiny-mask'), { device: 'cpu', threads: 1 });
    try {
      const before = model.stats();
      await Promise.all([m.encode(raw(1)), m.encode(raw(2)), model.encode(raw(3))]);
      expect(m.stats().images).toBe(2);
      expect(model.stats().images - before.images).toBe(1);
    } finally {
      await m.dispose();
    }
  });
});

describe('cancellation and backpressure', () => {
  let model: Model;
  // 512×512 input on the tiny model: 4097 tokens, a forward of a few hundred ms — long enough to
  // queue calls behind it.
  const ip = { interpolatePosEncoding: true } as const;
  const slow = () => model.encode(raw(0), ip);
  beforeAll(async () => {
    model = await loadModel(folder('tiny-s8', 512), {
      device: 'cpu',
      threads: 1,
      batching: { maxBatch: 4, maxDelayMs: 0, maxQueue: 16 },
    });
  });
  afterAll(() => model?.dispose());

  it('an aborted queued call rejects at once with signal.reason and never runs; the others are unaffected', async () => {
    const want = await slow();
    const before = model.stats().images;
    const running = slow();
    await new Promise((r) => setTimeout(r, 20)); // its batch is running now (a few hundred ms)
    const ac = new AbortController();
    const cancelled = model.encode(raw(5), { interpolatePosEncoding: true, signal: ac.signal });
    const after = slow();
    const t0 = performance.now();
    ac.abort();
    await expect(cancelled).rejects.toSatisfy(isAbort('AbortError'));
    expect(performance.now() - t0).toBeLessThan(50); // not after the running batch
    same((await running).data, want.data);
    same((await after).data, want.data);
    // The running batch had 1 image, the next one the call behind the cancelled one: 2 in all.
    expect(model.stats().images - before).toBe(2);
  });

  it('a long encode() stops between batches when aborted', async () => {
    const ac = new AbortController();
    const before = model.stats().images;
    const many = Array.from({ length: 40 }, (_, k) => raw(k));
    const p = model.encode(many, { interpolatePosEncoding: true, batchSize: 2, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('enough')), 100);
    await expect(p).rejects.toThrow('enough');
    await model.encode(raw(0), ip); // the queue moves on
    expect(model.stats().images - before).toBeLessThan(20);
  });

  it('timeoutMs rejects with a TimeoutError; an already aborted signal rejects at once', async () => {
    const running = slow();
    await expect(model.encode(raw(1), { interpolatePosEncoding: true, timeoutMs: 5 })).rejects.toSatisfy(
      isAbort('TimeoutError'),
    );
    await expect(model.forward(new Float32Array(3 * 32 * 32), [1, 3, 32, 32], { timeoutMs: 1 })).rejects.toSatisfy(
      isAbort('TimeoutError'),
    );
    await expect(model.encode(raw(1), { ...ip, signal: AbortSignal.abort() })).rejects.toSatisfy(isAbort('AbortError'));
    await expect(model.encode(raw(1), { ...ip, timeoutMs: -1 })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    await expect(model.encode(raw(1), { ...ip, signal: 'stop' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    await running;
    expect(model.stats().errors.TimeoutError).toBeGreaterThanOrEqual(2);
  });

  it('a full queue rejects with ERR_OVERLOADED at once; the queue drains normally', async () => {
    const running = slow();
    const queued = Array.from({ length: 16 }, () =>
      model.encode(raw(2), { interpolatePosEncoding: true }).then(
        () => 'ok',
        (e) => e.code,
      ),
    );
    expect(model.stats().queuedImages).toBe(16);
    // queue(): the same counts without stats()' percentiles (what a server checks per request)
    expect(model.queue()).toEqual({ queuedImages: 16, queuedCalls: 16, maxQueue: model.stats().maxQueue });
    const t0 = performance.now();
    await expect(model.encode(raw(3), ip)).rejects.toMatchObject({ code: 'ERR_OVERLOADED' });
    expect(performance.now() - t0).toBeLessThan(5);
    const ac = new AbortController();
    const all = queued.concat([
      model.encode(raw(3), { ...ip, signal: ac.signal }).then(
        () => 'ok',
        () => 'rejected',
      ),
    ]);
    ac.abort();
    const rest = await Promise.all(all);
    expect(rest.slice(0, 16).every((r) => r === 'ok')).toBe(true);
    await running;
    expect(model.stats().queuedImages).toBe(0);
    expect(model.queue().queuedImages).toBe(0);
  }, 120_000);
});

describe('10 000 waiting callers', () => {
  it('hold little memory (paths are decoded when their batch forms) and leave when aborted', async () => {
    const m = await loadModel(folder('tiny-s8', 512), {
      device: 'cpu',
      threads: 1,
      batching: { maxBatch: 4, maxDelayMs: 0, maxQueue: 20_000 },
    });
    try {
      const file = path.join(FIX, 'images', 'chelsea.png');
      const running = m.encode(raw(0), { interpolatePosEncoding: true });
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      const ac = new AbortController();
      const calls = Array.from({ length: 10_000 }, () =>
        m.encode(file, { interpolatePosEncoding: true, signal: ac.signal }).catch((e) => e.name),
      );
      const rss1 = process.memoryUsage().rss;
      expect(m.stats().queuedCalls).toBe(10_000);
      console.log(`[batching.test] 10 000 queued callers: RSS +${((rss1 - rss0) / 1e6).toFixed(1)} MB`);
      expect(rss1 - rss0).toBeLessThan(200e6);
      const t0 = performance.now();
      ac.abort();
      const results = await Promise.all(calls);
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(results.filter((r) => r === 'AbortError').length).toBeGreaterThan(9_990);
      expect(m.stats().queuedImages).toBe(0);
      await running;
    } finally {
      await m.dispose();
    }
  }, 120_000);
});
