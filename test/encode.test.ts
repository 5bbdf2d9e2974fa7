// encode() and classify() against their definitions on the tiny transformers checkpoints:
// encode(image) = pooling of forward(preprocess(image)); classify() ranks the softmax of the logits.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { native } from '../lib/binding';
import { type GoldenModel } from './support/goldens';
import { mixedImages } from './support/images';
import { TOL } from './tolerances';
import { tinyModelFolder } from './support/real-models';

// Which files the library opens, in order (a pass-through wrapper of fs/promises' open).
const { opened } = vi.hoisted(() => ({ opened: [] as string[] }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  return { ...fsp, open: (...args: Parameters<typeof fsp.open>) => (opened.push(String(args[0])), fsp.open(...args)) };
});

const FIX = path.join(__dirname, 'fixtures');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-encode-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

/** A copy of a tiny golden model folder with the facebook preprocessor config at its own size. */
function folder(name: GoldenModel, size: number, tag: string = name): string {
  return tinyModelFolder(path.join(tmpRoot, tag), name, size);
}

const images = mixedImages();

function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

/** Rows [B, D] from tokens [B, T, D]: CLS, or the mean of tokens 1..T-1, optionally L2-normalised (float64). */
function poolRef(tokens: Float32Array, [B, T, D]: number[], mode: 'cls' | 'mean', normalize: boolean): Float64Array {
  const out = new Float64Array(B * D);
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) {
      if (mode === 'cls') out[b * D + d] = tokens[b * T * D + d];
      else {
        let s = 0;
        for (let t = 1; t < T; t++) s += tokens[(b * T + t) * D + d];
        out[b * D + d] = s / (T - 1);
      }
    }
    if (normalize) {
      let n = 0;
      for (let d = 0; d < D; d++) n += out[b * D + d] ** 2;
      for (let d = 0; d < D; d++) out[b * D + d] /= Math.max(Math.sqrt(n), 1e-12);
    }
  }
  return out;
}

describe('encode() on tiny-s8', () => {
  let model: Model;
  let ref: {
    lastHiddenState: { data: Float32Array; shape: number[] };
    hiddenStates?: Array<{ data: Float32Array; shape: number[] }>;
  };
  beforeAll(async () => {
    model = await loadModel(folder('tiny-s8', 32), { device: 'cpu' });
    const px = await model.preprocess(images);
    ref = await model.forward(px.data, px.shape, { outputHiddenStates: true });
  });
  afterAll(() => model?.dispose());

  it.each([
    ['cls', false],
    ['cls', true],
    ['mean', false],
    ['mean', true],
  ] as const)('pooling %s, normalize %s', async (pooling, normalize) => {
    const out = await model.encode(images, { pooling, normalize });
    expect(out.shape).toEqual([images.length, 32]);
    const want = poolRef(ref.lastHiddenState.data, ref.lastHiddenState.shape, pooling, normalize);
    expect(relL2(out.data, want)).toBeLessThanOrEqual(TOL.encodeVsForward);
    if (normalize)
      for (let b = 0; b < images.length; b++)
        expect(Math.hypot(...out.data.subarray(b * 32, (b + 1) * 32))).toBeCloseTo(1, 6);
  });

  it('cls is the default; cls-prenorm is the CLS of the last hidden state before the final LayerNorm', async () => {
    const def = await model.encode(images);
    expect(
      relL2(def.data, poolRef(ref.lastHiddenState.data, ref.lastHiddenState.shape, 'cls', false)),
    ).toBeLessThanOrEqual(TOL.encodeVsForward);
    const pre = await model.encode(images, { pooling: 'cls-prenorm' });
    const last = ref.hiddenStates![ref.hiddenStates!.length - 1];
    expect(relL2(pre.data, poolRef(last.data, last.shape, 'cls', false))).toBeLessThanOrEqual(TOL.encodeVsForward);
    expect(relL2(pre.data, def.data)).toBeGreaterThan(1e-2); // really a different vector
  });

  it('batches: any batchSize gives the same rows, in input order', async () => {
    const many = Array.from({ length: 11 }, (_, i) => images[i % images.length]);
    const a = await model.encode(many, { batchSize: 4 });
    const b = await model.encode(many, { batchSize: 16 });
    expect(a.shape).toEqual([11, 32]);
    expect(relL2(a.data, b.data)).toBeLessThanOrEqual(TOL.encodeVsForward);
    const single = await model.encode(images[3]);
    expect(relL2(a.data.subarray(8 * 32, 9 * 32), single.data)).toBeLessThanOrEqual(TOL.encodeVsForward);
  });

  it('dispose() waits for an encode already queued; later calls reject with ERR_DISPOSED', async () => {
    const m = await loadModel(folder('tiny-s8', 32, 'dispose'), { device: 'cpu' });
    const running = m.encode(images, { batchSize: 1 });
    const disposed = m.dispose();
    expect((await running).shape).toEqual([images.length, 32]);
    await disposed;
    await expect(m.encode(images[0])).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
    await expect(m.preprocess(images[0])).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('decodes at most one batch ahead: a long list is never all in memory', async () => {
    // The list itself is read at call time (inputs are snapshotted); the files are opened and
    // decoded batch by batch: when batch k is preprocessed, no file of batch k + 1 has been opened.
    const bs = 3;
    const n = 20;
    const dir = path.join(tmpRoot, 'many');
    mkdirSync(dir);
    const list = Array.from({ length: n }, (_, i) => {
      const f = path.join(dir, `${i}.png`);
      copyFileSync(path.join(FIX, 'images', 'chelsea.png'), f);
      return f;
    });
    const openedIndex = () =>
      Math.max(-1, ...opened.filter((f) => f.startsWith(dir)).map((f) => Number(path.basename(f, '.png'))));
    const addon = native();
    const original = addon.preprocess;
    const seen: Array<[number, number]> = []; // [preprocess call k, highest image index opened so far]
    addon.preprocess = (imgs, cfg, opts) => {
      seen.push([seen.length, openedIndex()]);
      return original.call(addon, imgs, cfg, opts);
    };
    try {
      expect((await model.encode(list, { batchSize: bs })).shape).toEqual([n, 32]);
    } finally {
      addon.preprocess = original;
    }
    expect(seen).toHaveLength(Math.ceil(n / bs));
    expect(openedIndex()).toBe(n - 1);
    for (const [k, max] of seen) expect(max).toBeLessThan((k + 1) * bs);
  });

  it('runs in call order with forward()', async () => {
    const order: string[] = [];
    const p1 = model.encode(images, { batchSize: 1 }).then(() => order.push('encode'));
    const p2 = model.forward(new Float32Array(3 * 32 * 32), [1, 3, 32, 32]).then(() => order.push('forward'));
    await Promise.all([p1, p2]);
    expect(order).toEqual(['encode', 'forward']);
  });
});

describe('classify() on tiny-cls', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(folder('tiny-cls', 48), { device: 'cpu' });
  });
  afterAll(() => model?.dispose());

  it('ranks the softmax of the logits, with id2label names', async () => {
    const px = await model.preprocess(images);
    const { logits } = await model.forward(px.data, px.shape);
    const res = await model.classify(images, { topK: 3 });
    expect(res).toHaveLength(images.length);
    for (let b = 0; b < images.length; b++) {
      const row = Array.from(logits!.data.subarray(b * 5, b * 5 + 5));
      const m = Math.max(...row);
      const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
      const order = row.map((_, i) => i).sort((i, j) => row[j] - row[i]);
      expect(res[b].map((c) => c.index)).toEqual(order.slice(0, 3));
      for (const c of res[b]) {
        expect(c.label).toBe(`class_${c.index}`);
        expect(c.score).toBeCloseTo(Math.exp(row[c.index] - m) / z, 6);
      }
    }
    const all = await model.classify(images[0], { topK: 100 });
    expect(all[0]).toHaveLength(5);
    expect(all[0].reduce((s, c) => s + c.score, 0)).toBeCloseTo(1, 5);
  });
});
