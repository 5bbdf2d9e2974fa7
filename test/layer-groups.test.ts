// On the CPU a bf16 or int8 batch with more rows than the backend's layer_rows (1600: ~8 images of
// 197 tokens) runs its encoder layers image group by image group (the activations stay in cache);
// float32 runs the whole batch (its fused MLP picks its kernel by the row count). Every op is
// independent across images, so the results must equal the whole batch at once: forward() with
// outputHiddenStates (which taps every layer and so runs the whole batch in one pass) gives the
// reference. 128×128 images on the tiny golden backbone with interpolated positions: T = 257, groups
// of 6 images, and 13 images make groups of 6, 6 and 1.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { goldenDir } from './support/goldens';

const B = 13,
  S = 128;

function pixels(): Float32Array {
  const x = new Float32Array(B * 3 * S * S);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 1.7 + ((i * 7919) % 13) / 13 - 0.5;
  return x;
}

function firstDifference(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return 'equal';
}

describe('encoder layers in image groups (CPU)', () => {
  for (const dtype of ['float32', 'bfloat16', 'int8'] as const) {
    it(`${dtype}: a batch of ${B} at T = 257 equals the whole batch in one pass, bit for bit`, async () => {
      const model = await loadModel(path.resolve(goldenDir('tiny-s8')), { device: 'cpu', dtype, threads: 2 });
      try {
        const x = pixels();
        const shape: [number, number, number, number] = [B, 3, S, S];
        const grouped = await model.forward(x, shape, { interpolatePosEncoding: true });
        const whole = await model.forward(x, shape, { interpolatePosEncoding: true, outputHiddenStates: true });
        expect(grouped.lastHiddenState.shape).toEqual([B, 257, 32]);
        expect(firstDifference(grouped.lastHiddenState.data, whole.lastHiddenState.data)).toBe('equal');
        if (dtype === 'float32') return; // one pass either way; a lone image takes the MLP's other kernel
        // and each group's images equal the same images run alone (the last group: image 12)
        const alone = await model.forward(x.subarray(12 * 3 * S * S), [1, 3, S, S], { interpolatePosEncoding: true });
        expect(firstDifference(grouped.lastHiddenState.data.subarray(12 * 257 * 32), alone.lastHiddenState.data)).toBe(
          'equal',
        );
      } finally {
        await model.dispose();
      }
    }, 60_000);
  }
});
