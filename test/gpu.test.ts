// The CUDA backend against transformers' float64 goldens, in float32, float16 and bfloat16. These
// tests need a usable NVIDIA GPU and cuBLASLt; without one they are skipped, and the reason (from
// backends()) is printed. CI has no GPU: scripts/gpu-check.sh runs them on a GPU machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, loadModel, type DType, type Model } from '../lib/index';
import { relL2 } from './support/real-models';
import { golden, goldenDir, GOLDEN_MODELS } from './support/goldens';
import type { StTensor } from './support/safetensors';
import { TOL } from './tolerances';

const cuda = backends().find((b) => b.name === 'cuda');
const haveGpu = !!cuda?.available;
if (!haveGpu) console.log(`[gpu.test] skipped: no usable CUDA backend (${cuda?.detail ?? 'not compiled'})`);

const BOUND: Record<DType, number> = {
  float32: TOL.f32VsFloat64,
  float16: TOL.cudaF16VsFloat64,
  bfloat16: TOL.cudaBf16VsFloat64,
};
const f32 = (t: StTensor) => t.data as Float32Array;

describe.skipIf(!haveGpu).each(['float32', 'float16', 'bfloat16'] as DType[])('CUDA %s', (dtype) => {
  describe.each(GOLDEN_MODELS)('%s', (name) => {
    const g = golden(name);
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(goldenDir(name), { device: 'cuda', dtype });
    });
    afterAll(() => model?.dispose());
    const close = (a: { data: Float32Array; shape: number[] }, ref: StTensor, what: string) => {
      expect(a.shape, what).toEqual(ref.shape);
      const err = relL2(a.data, ref.data);
      expect(err, `${what} (${dtype}): relative L2 ${err.toExponential(2)}`).toBeLessThanOrEqual(BOUND[dtype]);
    };

    it('runs on the GPU', () => {
      expect(model.device).toBe('cuda:0');
      expect(model.dtype).toBe(dtype);
    });

    it('every output of the base case', async () => {
      const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape, { outputHiddenStates: true, outputAttentions: true });
      close(out.lastHiddenState, g.last_hidden_state, 'last_hidden_state');
      out.hiddenStates!.forEach((h, i) => close(h, g[`hidden_states.${i}`], `hidden_states.${i}`));
      out.attentions!.forEach((a, i) => close(a, g[`attentions.${i}`], `attentions.${i}`));
      if (g.logits) close(out.logits!, g.logits, 'logits');
    });

    it('flash attention path (no attentions requested) gives the same last_hidden_state', async () => {
      const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape);
      close(out.lastHiddenState, g.last_hidden_state, 'last_hidden_state');
    });

    it('interpolate_pos_encoding, head_mask, bool_masked_pos', async () => {
      const ip = g['interp.pixel_values'];
      close((await model.forward(f32(ip), ip.shape, { interpolatePosEncoding: true })).lastHiddenState,
        g['interp.last_hidden_state'], 'interp');
      close((await model.forward(f32(g.pixel_values), g.pixel_values.shape, { headMask: f32(g.head_mask) })).lastHiddenState,
        g['head_mask.last_hidden_state'], 'head_mask');
      if (g.bool_masked_pos) {
        const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape, { boolMaskedPos: g.bool_masked_pos.data as Uint8Array });
        close(out.lastHiddenState, g['masked.last_hidden_state'], 'masked');
      }
    });
  });
});

describe.skipIf(!haveGpu)('CUDA lifecycle', () => {
  it('concurrent models and calls give the sequential results; dispose frees', async () => {
    const a = await loadModel(goldenDir('tiny-s8'), { device: 'cuda', dtype: 'float32' });
    const b = await loadModel(goldenDir('tiny-s8'), { device: 'cuda', dtype: 'float32' });
    const x = new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.07));
    const ref = await a.forward(x, [2, 3, 32, 32]);
    const outs = await Promise.all([a.forward(x, [2, 3, 32, 32]), b.forward(x, [2, 3, 32, 32]), a.forward(x, [2, 3, 32, 32])]);
    for (const o of outs) expect(relL2(o.lastHiddenState.data, ref.lastHiddenState.data)).toBe(0);
    await Promise.all([a.dispose(), b.dispose()]);
  });
});
