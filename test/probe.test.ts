// The probe API end to end on the tiny golden backbone: k-NN vs a float64 brute force, a 'plain'
// head saved as a ViTMSNForImageClassification checkpoint, the embedding cache, bad inputs, the CLI.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  embedImages,
  fitClassifier,
  fitKnn,
  loadEmbeddings,
  loadHead,
  loadModel,
  readImageFolder,
  saveClassificationCheckpoint,
  saveEmbeddings,
  type Model,
} from '../lib/index';
import { goldenDir } from './support/goldens';
import { readSafetensors } from './support/safetensors';

const FIX = path.join(__dirname, 'fixtures');
const tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-probe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const IMGS = [
  ...['camera.png', 'chelsea.png', 'coffee.png', 'logo.png'].map((f) => path.join(FIX, 'images', f)),
  ...['exif2.jpg', 'exif3.jpg', 'gray.jpg', 'rgb420.jpg', 'rgb444.jpg', 'palette.png', 'rgba.png', 'la.png'].map((f) =>
    path.join(FIX, 'pil', f),
  ),
];
const CLASSES = ['alpha', 'beta', 'gamma'];

function tree(name: string, extra?: (root: string) => void): string {
  const root = path.join(tmp, name);
  IMGS.forEach((f, i) => {
    const dir = path.join(root, CLASSES[i % 3]);
    mkdirSync(dir, { recursive: true });
    copyFileSync(f, path.join(dir, `${i}${path.extname(f)}`));
  });
  extra?.(root);
  return root;
}

let model: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu' });
});
afterAll(() => model?.dispose());

describe('k-NN', () => {
  it('votes equal a float64 brute force', () => {
    let s = 7;
    const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
    const N = 40,
      D = 12,
      K = 4,
      n = 9;
    const bank = Float32Array.from({ length: N * D }, rnd);
    const labels = Array.from({ length: N }, (_, i) => `c${i % K}`);
    const q = Float32Array.from({ length: n * D }, rnd);
    for (const [k, T] of [
      [1, 0.07],
      [5, 0.07],
      [20, 0.5],
      [100, 1],
    ] as const) {
      const head = fitKnn({ data: bank, shape: [N, D], labels }, { k, temperature: T });
      const votes = head.votes({ data: q, shape: [n, D] });
      const norm = (a: Float32Array, i: number) => {
        const r = Array.from(a.subarray(i * D, i * D + D), Number);
        const inv = 1 / Math.sqrt(r.reduce((x, v) => x + v * v, 0));
        return r.map((v) => v * inv);
      };
      for (let i = 0; i < n; i++) {
        const qi = norm(q, i);
        const sims = Array.from({ length: N }, (_, j) => ({
          j,
          s: norm(bank, j).reduce((x, v, d) => x + v * qi[d], 0),
        }));
        sims.sort((a, b) => b.s - a.s || a.j - b.j);
        const ref = new Array(K).fill(0);
        for (const { j, s: sim } of sims.slice(0, Math.min(k, N))) ref[j % K] += Math.exp(sim / T);
        for (let c = 0; c < K; c++) expect(votes[i * K + c]).toBe(ref[c]); // same float64 operations in the same order: bit-equal
        const p = head.predict({ data: q.subarray(i * D, i * D + D), shape: [1, D] }, { topK: 1 })[0][0];
        expect(p.index).toBe(ref.indexOf(Math.max(...ref)));
      }
    }
  });
});

describe('linear probe on images', () => {
  it("a 'plain' head saved as ViTMSNForImageClassification gives the probe's logits through loadModel + classify", async () => {
    const folder = readImageFolder(tree('plain'));
    expect(folder.classes).toEqual(CLASSES);
    const progress: number[] = [];
    const set = await embedImages(model, folder.images, folder.labels, {
      pooling: 'cls',
      chunk: 5,
      onProgress: (p) => progress.push(p.done),
    });
    expect(progress).toEqual([5, 10, 12]);
    const head = await fitClassifier(set, { protocol: 'plain', folds: 2 });
    expect(head.cv?.scores).toHaveLength(8);
    const out = path.join(tmp, 'ckpt');
    saveClassificationCheckpoint(head, goldenDir('tiny-s8'), out);
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual(['ViTMSNForImageClassification']);
    expect(cfg.id2label).toEqual({ 0: 'alpha', 1: 'beta', 2: 'gamma' });
    expect(cfg.label2id).toEqual({ alpha: 0, beta: 1, gamma: 2 });
    expect(cfg.num_labels).toBe(3);
    expect(cfg.hidden_size).toBe(32);
    // docs/model.md: classification checkpoints put the backbone under vit. and add classifier.{weight,bias}.
    const st = readSafetensors(path.join(out, 'model.safetensors'));
    const base = readSafetensors(path.join(goldenDir('tiny-s8'), 'model.safetensors'));
    expect(Object.keys(st).sort()).toEqual(
      [...Object.keys(base).map((k) => `vit.${k}`), 'classifier.bias', 'classifier.weight'].sort(),
    );
    expect(st['classifier.weight'].shape).toEqual([3, 32]);
    expect(st['classifier.bias'].shape).toEqual([3]);
    expect(st['vit.embeddings.cls_token'].data).toEqual(base['embeddings.cls_token'].data);

    const cls = await loadModel(out, { device: 'cpu' });
    try {
      expect(cls.numLabels).toBe(3);
      const pixels = await cls.preprocess(folder.images);
      const { logits } = await cls.forward(pixels.data, pixels.shape);
      const ref = head.decisionFunction(set);
      let num = 0,
        den = 0;
      for (let i = 0; i < ref.length; i++) {
        num += (logits!.data[i] - ref[i]) ** 2;
        den += ref[i] ** 2;
      }
      expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
      const ranked = await cls.classify(folder.images, { topK: 3 });
      const mine = head.predict(set, { topK: 3 });
      expect(ranked.map((r) => r.map((c) => c.label))).toEqual(mine.map((r) => r.map((c) => c.label)));
      for (let i = 0; i < mine.length; i++)
        for (let j = 0; j < 3; j++) expect(ranked[i][j].score).toBeCloseTo(mine[i][j].score, 5);
    } finally {
      await cls.dispose();
    }
  });

  it("an 'msn' head round-trips through its files; the cache round-trips", async () => {
    const folder = readImageFolder(tree('msn'));
    const set = await embedImages(model, folder.images, folder.labels, { pooling: 'cls-prenorm' });
    const head = await fitClassifier(set, { protocol: 'msn', folds: 3 });
    expect(head.pooling).toBe('cls-prenorm');
    head.save(path.join(tmp, 'msnhead'));
    const back = loadHead(path.join(tmp, 'msnhead'));
    expect(back.predict(set, { topK: 3 })).toEqual(head.predict(set, { topK: 3 }));
    const viaImages = await back.classifyImages(model, folder.images, { topK: 1 });
    expect(viaImages).toEqual(head.predict(set, { topK: 1 }));
    expect(() => saveClassificationCheckpoint(head, goldenDir('tiny-s8'), path.join(tmp, 'no'))).toThrow(/plain/);
    const cache = path.join(tmp, 'emb.safetensors');
    saveEmbeddings(cache, set);
    const e = loadEmbeddings(cache);
    expect(e.labels).toEqual(set.labels);
    expect(e.pooling).toBe('cls-prenorm');
    expect(Array.from(e.data)).toEqual(Array.from(set.data));
  });
});

describe('fitting runs off the event loop', () => {
  it('a 1 ms interval keeps firing while 10 × 50 × 768 is fitted (5-fold CV × 8 C + final; ~3.7 s synchronously in TypeScript)', async () => {
    let s = 1;
    const rnd = () => (s = (s * 16807) % 2147483647) / 2147483647;
    const gauss = () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
    const K = 10,
      N = 500,
      D = 768;
    const centers = Array.from({ length: K }, () => Float64Array.from({ length: D }, () => gauss() * 0.04));
    const data = new Float32Array(N * D);
    for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) data[i * D + d] = centers[i % K][d] + gauss() * 0.5;
    const labels = Array.from({ length: N }, (_, i) => `class${i % K}`);
    let last = performance.now();
    let maxGap = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 1);
    const t0 = performance.now();
    try {
      const head = await fitClassifier({ data, shape: [N, D], labels }, { protocol: 'msn', folds: 5 });
      expect(head.cv?.scores).toHaveLength(8);
    } finally {
      clearInterval(timer);
    }
    const ms = performance.now() - t0;
    maxGap = Math.max(maxGap, performance.now() - last);
    console.log(
      `fitClassifier 500 × 768: ${ms.toFixed(0)} ms, ${ticks} interval ticks, max gap ${maxGap.toFixed(1)} ms`,
    );
    // Run synchronously the fit would hold the loop for seconds; on a loaded 2-core CI box the OS alone
    // can delay a tick by tens of ms (61 ms seen while other test files ran), so the bound is 250 ms.
    expect(maxGap).toBeLessThan(250);
    expect(ticks).toBeGreaterThan(ms / 20);
  });
});

describe('bad inputs', () => {
  const D = 4;
  const data = Float32Array.from({ length: 6 * D }, (_, i) => Math.sin(i));
  it('labels/images length mismatch, one class, NaN, empty folder, non-images', async () => {
    await expect(embedImages(model, IMGS.slice(0, 3), ['a', 'b'])).rejects.toMatchObject({
      code: 'ERR_SHAPE_MISMATCH',
    });
    await expect(fitClassifier({ data, shape: [6, D], labels: ['a', 'b'] })).rejects.toThrow(
      expect.objectContaining({ code: 'ERR_SHAPE_MISMATCH' }),
    );
    await expect(fitClassifier({ data, shape: [6, D], labels: Array(6).fill('a') })).rejects.toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/at least 2 classes/) }),
    );
    const nan = data.slice();
    nan[5] = NaN;
    await expect(fitClassifier({ data: nan, shape: [6, D], labels: ['a', 'b', 'a', 'b', 'a', 'b'] })).rejects.toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARGUMENT',
        message: expect.stringMatching(/row 1 has a non-finite/),
      }),
    );
    const empty = path.join(tmp, 'empty');
    mkdirSync(empty);
    expect(() => readImageFolder(empty)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    mkdirSync(path.join(empty, 'cls'));
    expect(() => readImageFolder(empty)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/holds no images/) }),
    );
    const junk = tree('junk', (root) => writeFileSync(path.join(root, 'beta', 'notes.txt'), 'hi'));
    expect(() => readImageFolder(junk)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/notes\.txt/) }),
    );
    expect(readImageFolder(junk, { skipNonImages: true }).skipped).toEqual([path.join(junk, 'beta', 'notes.txt')]);
    await expect(
      fitClassifier({ data, shape: [6, D], labels: ['a', 'b', 'a', 'b', 'a', 'b'] }, { protocol: 'x' as never }),
    ).rejects.toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});

describe('vitmsn probe (CLI)', () => {
  const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
  const run = async (args: string[]) => {
    try {
      const r = await promisify(execFile)(process.execPath, [CLI, ...args], { cwd: tmp });
      return { code: 0, ...r };
    } catch (e) {
      return e as { code: number; stdout: string; stderr: string };
    }
  };
  it('fit prints CV accuracy and writes a head and a cache; eval prints accuracy, recall and the confusion matrix', async () => {
    const dir = tree('cli', (root) => writeFileSync(path.join(root, 'alpha', 'README'), 'x'));
    const bad = await run(['probe', 'fit', dir, '--model', goldenDir('tiny-s8'), '--out', path.join(tmp, 'h1')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ERR_INVALID_ARGUMENT: not image files.*README/);
    const cache = path.join(tmp, 'cli-emb.safetensors');
    const fit = await run([
      'probe',
      'fit',
      dir,
      '--model',
      goldenDir('tiny-s8'),
      '--out',
      path.join(tmp, 'h1'),
      '--folds',
      '2',
      '--cache',
      cache,
      '--skip-non-images',
      '--protocol',
      'plain',
      '--checkpoint',
      path.join(tmp, 'h1-hf'),
    ]);
    expect(fit.code).toBe(0);
    expect(fit.stderr).toMatch(/warning: skipping .*README/);
    expect(fit.stderr).toMatch(/encoding: 12\/12 images/);
    expect(fit.stdout).toMatch(/2-fold CV accuracy/);
    expect(fit.stdout).toMatch(/C=0\.01 .*%/);
    expect(fit.stdout).toMatch(/<- chosen/);
    const again = await run([
      'probe',
      'fit',
      dir,
      '--model',
      goldenDir('tiny-s8'),
      '--out',
      path.join(tmp, 'h2'),
      '--folds',
      '2',
      '--cache',
      cache,
      '--skip-non-images',
      '--protocol',
      'plain',
    ]);
    expect(again.stderr).toMatch(/using cached embeddings/);
    const ev = await run([
      'probe',
      'eval',
      dir,
      '--head',
      path.join(tmp, 'h1'),
      '--model',
      goldenDir('tiny-s8'),
      '--skip-non-images',
    ]);
    expect(ev.code).toBe(0);
    expect(ev.stdout).toMatch(/^accuracy: [\d.]+% \(\d+\/12\)/);
    expect(ev.stdout).toMatch(/per-class recall:\n  alpha/);
    expect(ev.stdout).toMatch(/confusion matrix/);
    const ev2 = await run(['probe', 'eval', cache, '--head', path.join(tmp, 'h1')]);
    expect(ev2.stdout.split('\n')[0]).toBe(ev.stdout.split('\n')[0]);
    // classify --head: the head's labels, as head.classifyImages() gives them in process.
    const img = path.join(dir, 'beta', readdirSync(path.join(dir, 'beta'))[0]);
    const cl = await run([
      'classify',
      img,
      '--head',
      path.join(tmp, 'h1'),
      '--model',
      goldenDir('tiny-s8'),
      '--top-k',
      '2',
    ]);
    expect(cl.code).toBe(0);
    const line = JSON.parse(cl.stdout.trim()) as { image: string; predictions: Array<{ label: string }> };
    const m = await loadModel(goldenDir('tiny-s8'), { device: 'cpu' });
    const want = await loadHead(path.join(tmp, 'h1')).classifyImages(m, img, { topK: 2 });
    await m.dispose();
    expect(line.image).toBe(img);
    expect(line.predictions.map((p) => p.label)).toEqual(want[0].map((p) => p.label));
    expect(CLASSES).toContain(line.predictions[0].label);
  });
});
