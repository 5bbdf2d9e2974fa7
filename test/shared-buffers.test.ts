// Typed-array inputs may be views over a SharedArrayBuffer (and at an offset into it): the addon
// copies them at call time, with results identical to ordinary ArrayBuffer-backed inputs. A view
// whose ArrayBuffer was detached (transferred away) is refused with ERR_INVALID_ARGUMENT.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { native } from '../lib/binding';
import { nativePreprocessConfig } from '../lib/encode';
import { defaultPreprocessorConfig } from '../lib/preprocessor';
import { goldenDir, TINY_S8_NATIVE_CONFIG } from './support/goldens';

/** The same values in a view over a SharedArrayBuffer, `pad` elements into it. */
function shared<T extends Float32Array | Uint8Array | Uint16Array>(a: T, pad = 3): T {
  const Ctor = a.constructor as new (b: SharedArrayBuffer, off: number, n: number) => T;
  const sab = new SharedArrayBuffer((a.length + pad + 1) * a.BYTES_PER_ELEMENT);
  const view = new Ctor(sab, pad * a.BYTES_PER_ELEMENT, a.length);
  view.set(a as never);
  return view;
}

/** A view of `a`'s values whose ArrayBuffer has been transferred away (detached). */
function detached<T extends Float32Array | Uint8Array | Uint16Array>(a: T): T {
  const copy = a.slice() as T;
  structuredClone(copy.buffer, { transfer: [copy.buffer as ArrayBuffer] });
  return copy;
}

const bytes = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

let model: Model;
let masked: Model;
beforeAll(async () => {
  model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 1 });
  masked = await loadModel(goldenDir('tiny-mask'), { device: 'cpu', threads: 1 });
});
afterAll(async () => {
  await model.dispose();
  await masked.dispose();
});

const B = 3;
const pixels = new Float32Array(B * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.037) * 1.7);
const raw = (k: number) => ({
  data: new Uint8Array(40 * 30 * 3).map((_, i) => (i * 31 + k * 7) & 255),
  width: 40,
  height: 30,
  channels: 3 as const,
});

describe('SharedArrayBuffer-backed inputs', () => {
  it('forward: pixelValues, headMask and boolMaskedPos give identical outputs', async () => {
    const headMask = new Float32Array([1, 0, 0.5, 1, 1, 0.25, 0, 1]);
    const opts = { outputHiddenStates: true, outputAttentions: true, headMask };
    const want = await model.forward(pixels, [B, 3, 32, 32], opts);
    const got = await model.forward(shared(pixels), [B, 3, 32, 32], { ...opts, headMask: shared(headMask) });
    expect(bytes(got.lastHiddenState.data).equals(bytes(want.lastHiddenState.data))).toBe(true);
    expect(got.hiddenStates!.map((t) => bytes(t.data).toString('hex'))).toEqual(
      want.hiddenStates!.map((t) => bytes(t.data).toString('hex')),
    );
    expect(got.attentions!.map((t) => bytes(t.data).toString('hex'))).toEqual(
      want.attentions!.map((t) => bytes(t.data).toString('hex')),
    );

    const pos = new Uint8Array(B * 16).map((_, i) => (i % 3 === 0 ? 1 : 0));
    const wantM = await masked.forward(pixels, [B, 3, 32, 32], { boolMaskedPos: pos });
    const gotM = await masked.forward(shared(pixels), [B, 3, 32, 32], { boolMaskedPos: shared(pos) });
    expect(bytes(gotM.lastHiddenState.data).equals(bytes(wantM.lastHiddenState.data))).toBe(true);
  });

  it('encode and preprocess: raw pixels over a SharedArrayBuffer', async () => {
    const images = [raw(0), raw(1)];
    const sharedImages = images.map((im) => ({ ...im, data: shared(im.data) }));
    const want = await model.encode(images, { pooling: 'mean' });
    const got = await model.encode(sharedImages, { pooling: 'mean' });
    expect(bytes(got.data).equals(bytes(want.data))).toBe(true);
    const wantP = await model.preprocess(images);
    const gotP = await model.preprocess(sharedImages);
    expect(bytes(gotP.data).equals(bytes(wantP.data))).toBe(true);
  });

  it('the addon directly: 8-bit and 16-bit ("I;16") pixels over a SharedArrayBuffer', async () => {
    const cfg = nativePreprocessConfig({ ...defaultPreprocessorConfig(32, 3), doResize: true });
    const grey = {
      data: new Uint16Array(12 * 9).map((_, i) => i * 601),
      width: 12,
      height: 9,
      channels: 1,
      format: 'I;16' as const,
    };
    const rgb = { data: new Uint8Array(12 * 9 * 3).map((_, i) => i * 13), width: 12, height: 9, channels: 3 };
    const want = await native().preprocess([grey, rgb], cfg);
    const got = await native().preprocess(
      [
        { ...grey, data: shared(grey.data) },
        { ...rgb, data: shared(rgb.data) },
      ],
      cfg,
    );
    expect(bytes(got.data).equals(bytes(want.data))).toBe(true);
  });
});

describe('detached inputs', () => {
  it('forward, encode and preprocess refuse a detached buffer with ERR_INVALID_ARGUMENT', async () => {
    await expect(model.forward(detached(pixels), [B, 3, 32, 32])).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    await expect(
      model.forward(pixels, [B, 3, 32, 32], { headMask: detached(new Float32Array(4).fill(1)) }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(
      masked.forward(pixels, [B, 3, 32, 32], { boolMaskedPos: detached(new Uint8Array(B * 16)) }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const im = raw(0);
    await expect(model.encode({ ...im, data: detached(im.data) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    await expect(model.preprocess({ ...im, data: detached(im.data) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('the addon directly: a detached buffer is a coded error, never a crash', async () => {
    const cfg = nativePreprocessConfig(defaultPreprocessorConfig(32, 3));
    const im = raw(0);
    const call = () => Promise.resolve().then(() => native().preprocess([{ ...im, data: detached(im.data) }], cfg));
    await expect(call()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const nm = await native().loadModel(goldenDir('tiny-s8'), TINY_S8_NATIVE_CONFIG, {
      device: 'cpu',
      dtype: 'float32',
      threads: 1,
    });
    const fwd = { outputHiddenStates: false, outputAttentions: false, interpolatePosEncoding: false };
    await expect(Promise.resolve().then(() => nm.forward(detached(pixels), [B, 3, 32, 32], fwd))).rejects.toMatchObject(
      { code: 'ERR_INVALID_ARGUMENT' },
    );
    await expect(
      Promise.resolve().then(() =>
        nm.embed(
          detached(new Uint8Array(B * 32 * 32 * 3)),
          [B, 32, 32, 3],
          { interpolatePosEncoding: false, preprocess: cfg },
          { pooling: 'cls' },
        ),
      ),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    nm.dispose();
  });
});
