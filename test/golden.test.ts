// The CPU float32 engine against transformers' own ViTMSN run in float64, every case of every
// tiny golden model (test/fixtures/goldens).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { relL2 } from './support/real-models';
import { golden, goldenDir, GOLDEN_MODELS } from './support/goldens';
import type { StTensor } from './support/safetensors';
import { TOL } from './tolerances';

const f32 = (t: StTensor) => t.data as Float32Array;

describe.each(GOLDEN_MODELS)('%s matches transformers (float64)', (name) => {
  const g = golden(name);
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(goldenDir(name), { device: 'cpu', dtype: 'float32', threads: 2 });
  });
  afterAll(() => model?.dispose());

  const pixels = () => ({ data: f32(g.pixel_values), shape: g.pixel_values.shape });
  const expectClose = (actual: { data: Float32Array; shape: number[] }, ref: StTensor, what: string) => {
    expect(actual.shape, what).toEqual(ref.shape);
    const err = relL2(actual.data, ref.data);
    expect(err, `${what}: relative L2 ${err.toExponential(2)}`).toBeLessThanOrEqual(TOL.f32VsFloat64);
  };

  it('last_hidden_state, every hidden_states and attentions entry, logits', async () => {
    const { data, shape } = pixels();
    const out = await model.forward(data, shape, { outputHiddenStates: true, outputAttentions: true });
    expectClose(out.lastHiddenState, g.last_hidden_state, 'last_hidden_state');
    const L = model.config.numHiddenLayers;
    expect(out.hiddenStates).toHaveLength(L + 1);
    out.hiddenStates!.forEach((h, i) => expectClose(h, g[`hidden_states.${i}`], `hidden_states.${i}`));
    expect(out.attentions).toHaveLength(L);
    out.attentions!.forEach((a, i) => expectClose(a, g[`attentions.${i}`], `attentions.${i}`));
    // The last hidden state is taken before the final LayerNorm, so it differs from last_hidden_state.
    expect(relL2(out.hiddenStates![L].data, out.lastHiddenState.data)).toBeGreaterThan(1e-2);
    if (g.logits) {
      expectClose(out.logits!, g.logits, 'logits');
    } else {
      expect(out.logits).toBeUndefined();
    }
  });

  it('without optional outputs returns only what was asked', async () => {
    const { data, shape } = pixels();
    const out = await model.forward(data, shape);
    expectClose(out.lastHiddenState, g.last_hidden_state, 'last_hidden_state');
    expect(out.hiddenStates).toBeUndefined();
    expect(out.attentions).toBeUndefined();
  });

  it('interpolate_pos_encoding at a non-square resolution', async () => {
    const p = g['interp.pixel_values'];
    const out = await model.forward(f32(p), p.shape, { interpolatePosEncoding: true });
    expectClose(out.lastHiddenState, g['interp.last_hidden_state'], 'interp.last_hidden_state');
  });

  it('interpolate_pos_encoding at the trained resolution changes nothing', async () => {
    const { data, shape } = pixels();
    const out = await model.forward(data, shape, { interpolatePosEncoding: true });
    expectClose(out.lastHiddenState, g['interp_same.last_hidden_state'], 'interp_same.last_hidden_state');
  });

  it('head_mask [layers, heads] scales the attention probabilities', async () => {
    const { data, shape } = pixels();
    const out = await model.forward(data, shape, { headMask: f32(g.head_mask), outputAttentions: true });
    expectClose(out.lastHiddenState, g['head_mask.last_hidden_state'], 'head_mask.last_hidden_state');
    // A head masked with 0 has all-zero probabilities in that layer.
    const hm = f32(g.head_mask);
    const H = model.config.numAttentionHeads;
    const zero = hm.findIndex((v) => v === 0);
    expect(zero).toBeGreaterThanOrEqual(0);
    const [layer, head] = [Math.floor(zero / H), zero % H];
    const att = out.attentions![layer];
    const T = att.shape[2];
    const slice = att.data.subarray(head * T * T, (head + 1) * T * T);
    expect(slice.every((v) => v === 0)).toBe(true);
  });

  it('head_mask [heads] applies to every layer', async () => {
    const { data, shape } = pixels();
    const H = model.config.numAttentionHeads;
    const L = model.config.numHiddenLayers;
    const perHead = new Float32Array(H).map((_, i) => (i === 0 ? 0.25 : 1));
    const full = new Float32Array(L * H).map((_, i) => perHead[i % H]);
    const a = await model.forward(data, shape, { headMask: perHead });
    const b = await model.forward(data, shape, { headMask: full });
    expect(relL2(a.lastHiddenState.data, b.lastHiddenState.data)).toBe(0);
    const plain = await model.forward(data, shape);
    expect(relL2(a.lastHiddenState.data, plain.lastHiddenState.data)).toBeGreaterThan(1e-4);
  });

  if (g.bool_masked_pos) {
    it('bool_masked_pos replaces patch embeddings with mask_token', async () => {
      const { data, shape } = pixels();
      const mask = g.bool_masked_pos.data as Uint8Array;
      const out = await model.forward(data, shape, { boolMaskedPos: mask });
      expectClose(out.lastHiddenState, g['masked.last_hidden_state'], 'masked.last_hidden_state');
    });
  }
});

// dtype 'bfloat16' on the CPU: bf16 weights and GEMM inputs, float32 accumulation.
describe.each(GOLDEN_MODELS)('%s in bfloat16 stays near transformers (float64)', (name) => {
  const g = golden(name);
  it('last_hidden_state and logits within the bf16 bound', async () => {
    const model = await loadModel(goldenDir(name), { device: 'cpu', dtype: 'bfloat16', threads: 2 });
    try {
      expect(model.dtype).toBe('bfloat16');
      const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape);
      const err = relL2(out.lastHiddenState.data, g.last_hidden_state.data);
      expect(err, `last_hidden_state: relative L2 ${err.toExponential(2)}`).toBeLessThanOrEqual(TOL.bf16);
      // Really bf16: not bit-identical to float32 math.
      expect(err).toBeGreaterThan(1e-6);
      if (g.logits) expect(relL2(out.logits!.data, g.logits.data)).toBeLessThanOrEqual(TOL.bf16);
    } finally {
      await model.dispose();
    }
  });
});

// dtype 'int8' on the CPU: encoder Linears with int8 per-channel weights and per-token uint8
// activations (int32 sums), patch embedding bf16, classifier float32.
describe.each(GOLDEN_MODELS)('%s in int8 stays near transformers (float64)', (name) => {
  const g = golden(name);
  it('last_hidden_state and logits within the int8 bound', async () => {
    const model = await loadModel(goldenDir(name), { device: 'cpu', dtype: 'int8', threads: 2 });
    try {
      expect(model.dtype).toBe('int8');
      const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape);
      const err = relL2(out.lastHiddenState.data, g.last_hidden_state.data);
      console.log(`[golden] ${name} int8: last_hidden_state rel L2 vs float64 ${err.toExponential(2)}`);
      expect(err, `last_hidden_state: relative L2 ${err.toExponential(2)}`).toBeLessThanOrEqual(TOL.int8);
      // Really quantised: not float32 (nor bf16-only) math.
      expect(err).toBeGreaterThan(1e-6);
      if (g.logits) expect(relL2(out.logits!.data, g.logits.data)).toBeLessThanOrEqual(TOL.int8Logits);
    } finally {
      await model.dispose();
    }
  });
});

// The classification checkpoint's top-1 on the real test images: int8 picks what float32 picks.
describe('int8 keeps the top-1 class of a classification checkpoint', () => {
  it('tiny-cls on test/fixtures/images', async () => {
    const images = ['camera', 'chelsea', 'coffee', 'logo'].map((n) =>
      path.join(__dirname, 'fixtures', 'images', `${n}.png`),
    );
    const f = await loadModel(goldenDir('tiny-cls'), { device: 'cpu', dtype: 'float32', threads: 2 });
    const q = await loadModel(goldenDir('tiny-cls'), { device: 'cpu', dtype: 'int8', threads: 2 });
    try {
      const a = await f.classify(images, { topK: 2 });
      const b = await q.classify(images, { topK: 1 });
      for (let i = 0; i < images.length; i++) {
        // The float32 margin between its first two classes, for the log: a flip would need int8's
        // logit error to exceed it.
        const margin = a[i][0].score - a[i][1].score;
        console.log(
          `[golden] tiny-cls ${path.basename(images[i])}: top-1 ${a[i][0].index}, margin ${margin.toFixed(4)}`,
        );
        expect(b[i][0].index, path.basename(images[i])).toBe(a[i][0].index);
      }
    } finally {
      await f.dispose();
      await q.dispose();
    }
  });
});
