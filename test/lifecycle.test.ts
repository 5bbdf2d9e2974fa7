// Lifecycle and concurrency: the event loop keeps turning, concurrent calls are correct, dispose
// is safe with work in flight, use after dispose is a clear error.
import { describe, expect, it } from 'vitest';
import { backends, loadModel, VitMsnError, type ForwardOutput } from '../lib/index';
import { goldenDir } from './support/goldens';
import { realModel, relL2 } from './support/real-models';
import { TOL } from './tolerances';

const tinyInput = (seed: number, B = 1) =>
  new Float32Array(B * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.013 + seed) * 1.7);

describe('lifecycle', () => {
  it('forward() never blocks the event loop (timers fire while ViT-S/16 runs)', async () => {
    const { modelDir } = await realModel('vit-s16');
    const model = await loadModel(modelDir, { device: 'cpu', threads: 2 });
    const x = new Float32Array(2 * 3 * 224 * 224).map((_, i) => Math.cos(i * 0.001));
    let ticks = 0;
    let last = performance.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 2);
    const t0 = performance.now();
    const out = await model.forward(x, [2, 3, 224, 224]);
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    expect(out.lastHiddenState.shape).toEqual([2, 197, 384]);
    // A forward that held the main thread would give no ticks at all and one gap of `elapsed` ms.
    expect(ticks).toBeGreaterThan(Math.min(20, elapsed / 20));
    expect(maxGap).toBeLessThan(Math.max(100, elapsed / 4));
    await model.dispose();
  });

  it('concurrent calls on one model give exactly the sequential results', async () => {
    const model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 2 });
    const inputs = [0, 1, 2, 3, 4, 5].map((s) => tinyInput(s, 1 + (s % 3)));
    const sequential: ForwardOutput[] = [];
    for (const x of inputs)
      sequential.push(await model.forward(x, [x.length / 3072, 3, 32, 32], { outputAttentions: true }));
    const concurrent = await Promise.all(
      inputs.map((x) => model.forward(x, [x.length / 3072, 3, 32, 32], { outputAttentions: true })),
    );
    concurrent.forEach((c, i) => {
      expect(relL2(c.lastHiddenState.data, sequential[i].lastHiddenState.data)).toBe(TOL.deterministic);
      expect(relL2(c.attentions![1].data, sequential[i].attentions![1].data)).toBe(TOL.deterministic);
    });
    await model.dispose();
  });

  it('two models run at the same time', async () => {
    const [a, b] = await Promise.all([
      loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 2 }),
      loadModel(goldenDir('tiny-mask'), { device: 'cpu', threads: 1 }),
    ]);
    const x = tinyInput(7);
    const [ra, rb] = await Promise.all([a.forward(x, [1, 3, 32, 32]), b.forward(x, [1, 3, 32, 32])]);
    expect(ra.lastHiddenState.shape).toEqual([1, 17, 32]);
    expect(rb.lastHiddenState.shape).toEqual([1, 17, 32]);
    const again = await a.forward(x, [1, 3, 32, 32]);
    expect(relL2(again.lastHiddenState.data, ra.lastHiddenState.data)).toBe(0);
    await Promise.all([a.dispose(), b.dispose()]);
  });

  it('dispose() with work in flight lets that work finish, then frees the model', async () => {
    const model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 2 });
    const x = tinyInput(3, 2);
    const ref = await model.forward(x, [2, 3, 32, 32]);
    const inFlight = [1, 2, 3].map(() => model.forward(x, [2, 3, 32, 32]));
    const disposed = model.dispose();
    const results = await Promise.all(inFlight);
    await disposed;
    for (const r of results) expect(relL2(r.lastHiddenState.data, ref.lastHiddenState.data)).toBe(0);
    await model.dispose(); // twice is fine
  });

  it('use after dispose throws ERR_DISPOSED', async () => {
    const model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 1 });
    await model.dispose();
    const err = await model.forward(tinyInput(0), [1, 3, 32, 32]).catch((e) => e);
    expect(err).toBeInstanceOf(VitMsnError);
    expect(err.code).toBe('ERR_DISPOSED');
  });

  it('supports `await using` through Symbol.asyncDispose', async () => {
    const model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 1 });
    await model[Symbol.asyncDispose]();
    await expect(model.forward(tinyInput(0), [1, 3, 32, 32])).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('exposes the parsed config, the chosen device and the backends', async () => {
    const gpu = backends().some((b) => b.name === 'cuda' && b.available);
    const model = await loadModel(goldenDir('tiny-cls')); // device 'auto'
    expect(model.device).toBe(gpu ? 'cuda:0' : 'cpu');
    expect(model.dtype).toBe('float32');
    expect(model.config.hiddenSize).toBe(48);
    expect(model.config.numHiddenLayers).toBe(3);
    expect(model.config.id2label).toEqual({ 0: 'class_0', 1: 'class_1', 2: 'class_2', 3: 'class_3', 4: 'class_4' });
    expect(model.numLabels).toBe(5);
    expect(model.hasMaskToken).toBe(false);
    await model.dispose();
    const list = backends();
    expect(list.find((b) => b.name === 'cpu')?.available).toBe(true);
    const cuda = list.find((b) => b.name === 'cuda');
    expect(cuda?.available).toBe(gpu);
    expect(cuda?.detail.length).toBeGreaterThan(0);
  });
});
