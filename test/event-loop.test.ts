// forward() never blocks the event loop, even when it returns hundreds of MB: every output
// (last_hidden_state, hidden_states, attentions, logits) is written by the worker thread into an
// array made on the main thread, so settling the promise copies nothing. Measured with a 1 ms
// interval timer: the longest gap between its ticks while a call is in flight and resolves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type ForwardOutput, type Model } from '../lib/index';
import { goldenDir } from './support/goldens';
import { relL2 } from './support/real-models';

// tiny-s8 (2 layers, 4 heads, D = 32) at 256×256: T = 1025 tokens, so each image's attentions are
// 2·4·1025² floats (33.6 MB); 4 images give ~135 MB of outputs for very little compute.
const B = 4;
const S = 256;
const LIMIT_MS = 40; // before: ~65 ms per 129 MB spent copying on the event loop
const pixels = new Float32Array(B * 3 * S * S).map((_, i) => Math.sin(i * 0.0131) * 1.3);

/** Runs `call` and returns its result and the longest event-loop stall (ms) until it resolved. */
async function withStallMeter<T>(call: () => Promise<T>): Promise<{ value: T; maxStall: number }> {
  let last = performance.now();
  let maxStall = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxStall = Math.max(maxStall, now - last);
    last = now;
  }, 1);
  try {
    await new Promise((r) => setTimeout(r, 20)); // the timer is ticking before the call starts
    last = performance.now();
    maxStall = 0;
    const value = await call();
    await new Promise((r) => setTimeout(r, 5)); // ... and the tick right after it resolved counts
    return { value, maxStall: Math.max(maxStall, performance.now() - last) };
  } finally {
    clearInterval(timer);
  }
}

const outputBytes = (o: ForwardOutput) =>
  [o.lastHiddenState, ...(o.hiddenStates ?? []), ...(o.attentions ?? [])].reduce((n, t) => n + t.data.byteLength, 0);

let model: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 2 });
});
afterAll(() => model.dispose());

describe('large outputs and the event loop', () => {
  it(`hidden states + attentions of ${B}×${S}×${S} images (>100 MB) never stall the event loop ${LIMIT_MS} ms`, async () => {
    const opts = { outputHiddenStates: true, outputAttentions: true, interpolatePosEncoding: true };
    await model.forward(pixels, [B, 3, S, S], opts); // warm-up: first-touch of the allocator's pages
    const stalls: number[] = [];
    let out: ForwardOutput | undefined;
    for (let i = 0; i < 3; i++) {
      const { value, maxStall } = await withStallMeter(() => model.forward(pixels, [B, 3, S, S], opts));
      stalls.push(maxStall);
      out = value;
    }
    const mb = outputBytes(out!) / 2 ** 20;
    console.log(
      `event-loop stall with ${mb.toFixed(0)} MiB of outputs: ${stalls.map((s) => s.toFixed(1)).join(', ')} ms`,
    );
    expect(mb).toBeGreaterThan(100);
    // The best of three: the machine is shared, and one unlucky descheduling is not a stall of ours.
    expect(Math.min(...stalls)).toBeLessThan(LIMIT_MS);

    // The outputs are the model's: the same as running image 0 alone, every softmax row sums to 1,
    // and last_hidden_state matches a call without taps (a different path through the engine).
    const T = (S / 8) ** 2 + 1;
    const one = await model.forward(pixels.subarray(0, 3 * S * S), [1, 3, S, S], opts);
    expect(out!.hiddenStates).toHaveLength(3);
    expect(out!.attentions).toHaveLength(2);
    out!.hiddenStates!.forEach((h, i) => {
      expect(h.shape).toEqual([B, T, 32]);
      expect(relL2(h.data.subarray(0, T * 32), one.hiddenStates![i].data)).toBeLessThan(1e-6);
    });
    out!.attentions!.forEach((a, i) => {
      expect(a.shape).toEqual([B, 4, T, T]);
      expect(relL2(a.data.subarray(0, 4 * T * T), one.attentions![i].data)).toBeLessThan(1e-6);
      for (const row of [0, 1, T - 1, 4 * T * B - 1]) {
        const sum = a.data.subarray(row * T, (row + 1) * T).reduce((s, v) => s + v, 0);
        expect(sum).toBeCloseTo(1, 4);
      }
    });
    const plain = await model.forward(pixels, [B, 3, S, S], { interpolatePosEncoding: true });
    expect(relL2(out!.lastHiddenState.data, plain.lastHiddenState.data)).toBeLessThan(1e-6);
  });
});
