// Inputs are read at call time: after forward() / encode() / classify() / preprocess() return their
// promise, the caller may overwrite, shrink or transfer what it passed, on an idle model (the call
// starts at once) and on a busy one (the call waits behind others). A buffer already transferred
// (detached) when passed is refused with ERR_INVALID_ARGUMENT instead of reading as empty.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { goldenDir } from './support/goldens';

const FIX = path.join(__dirname, 'fixtures');
const SHAPE = [2, 3, 32, 32];
const pixels = (phase: number) => new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.05 + phase));
const transfer = (buf: ArrayBuffer) => structuredClone(buf, { transfer: [buf] });
const same = (a: Float32Array, b: Float32Array) =>
  expect(
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
  ).toBe(true);

let model: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-mask'), { device: 'cpu', threads: 1 });
});
afterAll(() => model?.dispose());

/** Calls queued ahead of the one under test, so that it has to wait. */
const busy = () => [0, 1, 2].map((k) => model.forward(pixels(10 + k), SHAPE, { outputHiddenStates: true }));

describe('forward() reads its inputs at call time', () => {
  for (const state of ['idle', 'busy'] as const) {
    it(`pixelValues, headMask and boolMaskedPos overwritten after the call (${state} model)`, async () => {
      const heads = model.config.numAttentionHeads;
      const x = pixels(0.5),
        hm = new Float32Array(heads).fill(0.5),
        mask = new Uint8Array(2 * 16).map((_, i) => (i % 3 === 0 ? 1 : 0));
      const want = await model.forward(x.slice(), SHAPE, { headMask: hm.slice(), boolMaskedPos: mask.slice() });
      const ahead = state === 'busy' ? busy() : [];
      const p = model.forward(x, SHAPE, { headMask: hm, boolMaskedPos: mask });
      (x.fill(0), hm.fill(1), mask.fill(0));
      same((await p).lastHiddenState.data, want.lastHiddenState.data);
      await Promise.all(ahead);
    });

    it(`pixelValues transferred after the call (${state} model)`, async () => {
      const x = pixels(0.7);
      const want = await model.forward(x.slice(), SHAPE);
      const ahead = state === 'busy' ? busy() : [];
      const p = model.forward(x, SHAPE);
      transfer(x.buffer);
      expect(x.length).toBe(0); // detached
      same((await p).lastHiddenState.data, want.lastHiddenState.data);
      await Promise.all(ahead);
    });
  }

  it('a detached pixelValues / headMask is refused with ERR_INVALID_ARGUMENT', async () => {
    const x = pixels(0.1);
    transfer(x.buffer);
    await expect(model.forward(x, SHAPE)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /detached/ });
    const hm = new Float32Array(model.config.numAttentionHeads);
    transfer(hm.buffer);
    await expect(model.forward(pixels(0.1), SHAPE, { headMask: hm })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: /headMask.*detached/,
    });
  });
});

describe('encode(), classify() and preprocess() read their images at call time', () => {
  const png = () => readFileSync(path.join(FIX, 'images', 'chelsea.png'));
  const raw = () => ({
    data: new Uint8Array(40 * 30 * 3).map((_, i) => (i * 13) % 256),
    width: 40,
    height: 30,
    channels: 3 as const,
  });

  for (const state of ['idle', 'busy'] as const) {
    it(`encoded bytes, raw pixels and the list changed after the call (${state} model)`, async () => {
      const want = await model.encode([png(), raw(), png()], { batchSize: 2 });
      const buf = png(),
        px = raw(),
        list: Array<Buffer | ReturnType<typeof raw>> = [buf, px, png()];
      const ahead = state === 'busy' ? busy() : [];
      const p = model.encode(list, { batchSize: 2 });
      (buf.fill(0), px.data.fill(255), (px.width = 1), (list.length = 1));
      const got = await p;
      expect(got.shape).toEqual(want.shape);
      same(got.data, want.data);
      await Promise.all(ahead);
    });
  }

  it('preprocess() with its inputs overwritten, encode() with its buffer transferred, after the call', async () => {
    const want = await model.preprocess([png(), raw()]);
    const buf = png(),
      px = raw();
    const p = model.preprocess([buf, px]);
    (buf.fill(0), px.data.fill(0));
    same((await p).data, want.data);
    const u = new Uint8Array(png());
    const q = model.encode([u]);
    transfer(u.buffer);
    expect((await q).shape).toEqual([1, model.config.hiddenSize]);
  });

  it('an image whose buffer is already detached is refused with ERR_INVALID_ARGUMENT', async () => {
    const u = new Uint8Array(png());
    transfer(u.buffer);
    await expect(model.encode([u])).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: /image 0.*detached/,
    });
    const px = raw();
    transfer(px.data.buffer);
    await expect(model.encode(px)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: /detached/ });
  });
});
