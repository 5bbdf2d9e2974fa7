// The embed path (Model::embed: uint8 pixels → patchify with rescale/normalize fused → layers →
// pooling on the backend) that encode() and classify() run, against its definition: forward() of
// preprocess()'s float32 pixel_values, then the host pooling of engine/model/pooling.cc (cls,
// cls-prenorm from the hidden states, mean; L2 normalize) and the softmax of the logits — bit for
// bit on the CPU, for float32 and bfloat16 weights, interpolated grids, odd image sizes, and
// preprocessor configs that skip the resize, the rescale or the normalize.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { native } from '../lib/binding';
import { nativePreprocessConfig } from '../lib/encode';
import { decodeImage } from '../lib/images';
import { defaultPreprocessorConfig } from '../lib/preprocessor';
import { goldenDir, type GoldenModel } from './support/goldens';
import { hostPool, hostSoftmax } from './support/host-pooling';
import { mixedImages } from './support/images';
import { TOL } from './tolerances';

const FIX = path.join(__dirname, 'fixtures');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-embed-path-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

const images = mixedImages();
// Without a resize every image of a batch must have one size: an odd-sized one, three times.
const oddImage = path.join(FIX, 'pil', 'rgb_small.png');

let folders = 0;
function folder(name: GoldenModel, preprocessor: Record<string, unknown>): string {
  const dir = path.join(tmpRoot, `${name}-${folders++}`);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(path.join(goldenDir(name), f), path.join(dir, f));
  writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
  return dir;
}

const HF = { image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225], resample: 2 };

/** Bit-for-bit equality (TOL.embedVsForwardCpu), naming the first differing element. */
function expectBitIdentical(got: Float32Array, want: Float32Array, what: string) {
  expect(TOL.embedVsForwardCpu).toBe(0);
  expect(got.length, what).toBe(want.length);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = g.findIndex((v, k) => v !== w[k]);
  expect(i === -1 ? 'identical' : `element ${i}: ${got[i]} vs ${want[i]}`, what).toBe('identical');
}

const variants: Array<{ name: string; pre: Record<string, unknown>; interpolate: boolean; odd?: boolean }> = [
  { name: 'HF defaults at the model size', pre: { ...HF, do_resize: true, do_normalize: true }, interpolate: false },
  {
    name: 'resize to an odd size, interpolated grid',
    pre: { ...HF, do_resize: true, size: { height: 41, width: 27 }, rescale_factor: 1 / 127.5 },
    interpolate: true,
  },
  {
    name: 'no resize (odd image), interpolated grid',
    pre: { ...HF, do_resize: false, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] },
    interpolate: true,
    odd: true,
  },
  { name: 'no rescale', pre: { ...HF, do_rescale: false }, interpolate: false },
  { name: 'no normalize', pre: { ...HF, do_normalize: false }, interpolate: false },
  { name: 'neither rescale nor normalize', pre: { ...HF, do_rescale: false, do_normalize: false }, interpolate: false },
];

describe.each(['float32', 'bfloat16'] as const)('encode() / classify() = forward() + host pooling, %s', (dtype) => {
  describe.each(variants)('$name', ({ pre, interpolate, odd }) => {
    it.each(['tiny-s8', 'tiny-cls'] as const)('%s: every pooling × normalize, and classify', async (name) => {
      const size = name === 'tiny-cls' ? 48 : 32;
      const model: Model = await loadModel(folder(name, { size, ...pre }), { device: 'cpu', dtype });
      try {
        const list = odd ? [oddImage, oddImage, oddImage] : images;
        const px = await model.preprocess(list);
        const ref = await model.forward(px.data, px.shape, {
          outputHiddenStates: true,
          interpolatePosEncoding: interpolate,
        });
        const last = ref.hiddenStates![ref.hiddenStates!.length - 1];
        const opts = { interpolatePosEncoding: interpolate, batchSize: list.length };
        for (const pooling of ['cls', 'cls-prenorm', 'mean'] as const) {
          for (const normalize of [false, true]) {
            const got = await model.encode(list, { ...opts, pooling, normalize });
            const src = pooling === 'cls-prenorm' ? last : ref.lastHiddenState;
            const want = hostPool(src.data, src.shape, pooling === 'mean', normalize);
            expect(got.shape).toEqual([list.length, model.config.hiddenSize]);
            expectBitIdentical(got.data, want, `${pooling} normalize=${normalize}`);
          }
        }
        if (model.numLabels > 0) {
          const n = model.numLabels;
          const probs = hostSoftmax(ref.logits!.data, list.length, n);
          const got = await model.classify(list, { ...opts, topK: n });
          const flat = new Float32Array(list.length * n);
          got.forEach((row, b) => row.forEach((c) => (flat[b * n + c.index] = c.score)));
          expectBitIdentical(flat, probs, 'classify probabilities');
        }
      } finally {
        await model.dispose();
      }
    });
  });
});

describe('the native preprocess spread over every core (what a GPU model uses)', () => {
  it('gives the same bytes and floats as one thread, for a batch of mixed images', async () => {
    const list = Array.from({ length: 9 }, (_, i) => images[i % images.length]);
    const decoded = await Promise.all(list.map((im, i) => decodeImage(im, i)));
    const cfg = nativePreprocessConfig(defaultPreprocessorConfig(37, 29));
    for (const uint8 of [true, false]) {
      const one = await native().preprocess(decoded, cfg, { uint8 });
      const all = await native().preprocess(decoded, cfg, { uint8, parallel: true });
      expect(all.shape).toEqual(one.shape);
      expect(Buffer.from(all.data.buffer).equals(Buffer.from(one.data.buffer)), `uint8 ${uint8}`).toBe(true);
    }
  });
});
