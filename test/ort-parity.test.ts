// vitmsn against onnxruntime-node on the same real-size model (ViT-S/16, deterministic weights):
// transformers' own ONNX export of ViTMSNModel run by ORT is the reference a Node user would
// otherwise reach for. Both run fp32 on the CPU with 2 threads, on one input, in one process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { closeOrt, ortRun, realModel, relL2, syntheticPixels } from './support/real-models';
import { TOL } from './tolerances';

// ORT itself matches transformers' float64 output to ~7e-7 (anchors README); an fp32 engine
// doing the same math should land well within this.
const MAX_REL_L2 = 1e-5;
const THREADS = 2;
const ARCH = 'vit-s16';
const H = 224;
const W = 224;
const T = 1 + (H / 16) * (W / 16); // 197
const D = 384;

let modelDir = '';
let onnxPath = '';

beforeAll(async () => {
  ({ modelDir, onnxPath } = await realModel(ARCH)); // a few seconds the first time, then cached
}, 300_000);

afterAll(async () => {
  await closeOrt();
});

async function compare(B: number) {
  const shape = [B, 3, H, W];
  const x = syntheticPixels(B, H, W);
  const ref = await ortRun(onnxPath, x, shape, THREADS);
  expect(ref.length).toBe(B * T * D);

  const model = await loadModel(modelDir, { device: 'cpu', dtype: 'float32', threads: THREADS });
  try {
    const out = await model.forward(x, shape);
    const got = out.lastHiddenState;
    expect(got.shape).toEqual([B, T, D]);
    expect(got.data.length).toBe(ref.length);
    expect(got.data.every(Number.isFinite)).toBe(true);

    const total = relL2(got.data, ref);
    const per = Array.from({ length: B }, (_, b) =>
      relL2(got.data.subarray(b * T * D, (b + 1) * T * D), ref.subarray(b * T * D, (b + 1) * T * D)),
    );
    const cls = Array.from({ length: B }, (_, b) =>
      relL2(got.data.subarray(b * T * D, b * T * D + D), ref.subarray(b * T * D, b * T * D + D)),
    );
    console.log(
      `[ort-parity] ${ARCH} batch ${B}: last_hidden_state rel L2 vs onnxruntime-node = ${total.toExponential(3)}` +
        ` (per item ${per.map((v) => v.toExponential(2)).join(', ')}; CLS ${cls.map((v) => v.toExponential(2)).join(', ')})`,
    );
    expect(total).toBeLessThanOrEqual(MAX_REL_L2);
    for (const v of per) expect(v).toBeLessThanOrEqual(MAX_REL_L2);
    return got.data;
  } finally {
    await model.dispose();
  }
}

describe('parity with onnxruntime-node (ViT-S/16, same weights)', () => {
  it('batch 1: last_hidden_state within 1e-5 relative L2', async () => {
    await compare(1);
  }, 120_000);

  it('batch 2, different images: every item within 1e-5 relative L2', async () => {
    const x = syntheticPixels(2, H, W);
    const per = 3 * H * W;
    // The two items really differ (otherwise a batch-mixing bug could pass).
    expect(relL2(x.subarray(0, per), x.subarray(per))).toBeGreaterThan(0.5);
    await compare(2);
  }, 120_000);
});

describe('bfloat16 on the CPU against onnxruntime-node fp32 (ViT-S/16, same weights)', () => {
  it('batch 2: last_hidden_state within the bf16 bound', async () => {
    const shape = [2, 3, H, W];
    const x = syntheticPixels(2, H, W);
    const ref = await ortRun(onnxPath, x, shape, THREADS);
    const model = await loadModel(modelDir, { device: 'cpu', dtype: 'bfloat16', threads: THREADS });
    try {
      const got = (await model.forward(x, shape)).lastHiddenState.data;
      const err = relL2(got, ref);
      console.log(`[ort-parity] ${ARCH} bfloat16 batch 2: rel L2 vs onnxruntime-node fp32 = ${err.toExponential(3)}`);
      expect(err).toBeLessThanOrEqual(TOL.bf16);
    } finally {
      await model.dispose();
    }
  }, 120_000);
});
