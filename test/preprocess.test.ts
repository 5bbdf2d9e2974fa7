// preprocess(): HF's PIL image processor reproduced exactly. The four transformers goldens
// (test/fixtures/preprocess.safetensors) and the local Pillow goldens (test/fixtures/pil/, made by
// make_pil_goldens.py: every mode, container, filter, EXIF orientation, an ICC profile, 16-bit grey
// PNGs (PIL's mode I, clamped at 255), 16-bit grey+alpha, CMYK JPEGs with and without the Adobe marker
// and a CMYK TIFF).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { native } from '../lib/binding';
import { nativePreprocessConfig } from '../lib/encode';
import { decodeImage } from '../lib/images';
import { defaultPreprocessorConfig, parsePreprocessorConfig } from '../lib/preprocessor';
import { goldenDir } from './support/goldens';
import { readSafetensors } from './support/safetensors';
import { TOL } from './tolerances';
import { FACEBOOK_PREPROCESSOR } from './support/real-models';

const FIX = path.join(__dirname, 'fixtures');
const IMAGES = ['camera', 'chelsea', 'coffee', 'logo'];

const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-preprocess-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

function modelFolder(name: string, preprocessor: object | null): string {
  const dir = path.join(tmpRoot, name);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors'])
    copyFileSync(path.join(goldenDir('tiny-s8'), f), path.join(dir, f));
  if (preprocessor) writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
  return dir;
}

describe('transformers goldens (preprocess.safetensors)', () => {
  const g = readSafetensors(path.join(FIX, 'preprocess.safetensors'));
  let model: Model;
  let raw: Model; // no rescale, no normalize: the output is the resized uint8 levels
  beforeAll(async () => {
    model = await loadModel(modelFolder('fb', FACEBOOK_PREPROCESSOR), { device: 'cpu' });
    raw = await loadModel(modelFolder('raw', { ...FACEBOOK_PREPROCESSOR, do_rescale: false, do_normalize: false }), {
      device: 'cpu',
    });
  });
  afterAll(async () => {
    await model?.dispose();
    await raw?.dispose();
  });

  it.each(IMAGES)('%s: the resize equals Pillow uint8 exactly', async (name) => {
    const out = await raw.preprocess(path.join(FIX, 'images', `${name}.png`));
    expect(out.shape).toEqual([1, 3, 224, 224]);
    const want = g[`${name}.resized_u8`].data; // [224, 224, 3]
    let diff = 0;
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < 224 * 224; i++) diff += out.data[c * 224 * 224 + i] !== want[i * 3 + c] ? 1 : 0;
    expect(diff).toBe(0);
  });

  it.each(IMAGES)('%s: pixel_values match the PIL processor and the torchvision one', async (name) => {
    const out = await model.preprocess(readFileSync(path.join(FIX, 'images', `${name}.png`)));
    const pil = g[`${name}.pixel_values_pil`].data;
    const tv = g[`${name}.pixel_values_torchvision`].data;
    let maxPil = 0;
    let nDiff = 0;
    let maxLevels = 0;
    const plane = 224 * 224;
    for (let i = 0; i < pil.length; i++) {
      maxPil = Math.max(maxPil, Math.abs(out.data[i] - pil[i]));
      const d = Math.abs(out.data[i] - tv[i]);
      if (d > 1e-6) {
        nDiff++;
        maxLevels = Math.max(maxLevels, d * 255 * FACEBOOK_PREPROCESSOR.image_std[Math.floor(i / plane)]);
      }
    }
    expect(maxPil).toBeLessThanOrEqual(TOL.preprocessVsPil);
    expect(maxLevels).toBeLessThanOrEqual(TOL.torchvisionLevels + 1e-3);
    expect(nDiff / pil.length).toBeLessThanOrEqual(TOL.torchvisionFraction);
  });

  it('a batch of mixed inputs equals the images one by one', async () => {
    const files = IMAGES.map((n) => path.join(FIX, 'images', `${n}.png`));
    const batch = await model.preprocess([files[0], readFileSync(files[1]), files[2], files[3]], { batchSize: 3 });
    expect(batch.shape).toEqual([4, 3, 224, 224]);
    for (let i = 0; i < 4; i++) {
      const pil = g[`${IMAGES[i]}.pixel_values_pil`].data;
      const slice = batch.data.subarray(i * pil.length, (i + 1) * pil.length);
      let max = 0;
      for (let j = 0; j < pil.length; j++) max = Math.max(max, Math.abs(slice[j] - pil[j]));
      expect(max).toBeLessThanOrEqual(TOL.preprocessVsPil);
    }
  });
});

describe('Pillow goldens (test/fixtures/pil)', () => {
  const dir = path.join(FIX, 'pil');
  const g = readSafetensors(path.join(dir, 'pil_goldens.safetensors'));
  const { cases } = JSON.parse(readFileSync(path.join(dir, 'cases.json'), 'utf8')) as {
    cases: Array<{ key: string; file: string; width: number; height: number; resample: number }>;
  };
  it('has cases', () => expect(cases.length).toBeGreaterThan(20));
  it.each(cases.map((c) => [c.key, c] as const))('%s', async (_key, c) => {
    const cfg = {
      ...defaultPreprocessorConfig(c.height, c.width),
      resample: c.resample,
      doRescale: false,
      doNormalize: false,
    };
    const im = await decodeImage(path.join(dir, c.file), 0);
    const out = await native().preprocess([im], nativePreprocessConfig(cfg));
    expect(out.shape).toEqual([1, 3, c.height, c.width]);
    const want = g[c.key].data;
    const plane = c.width * c.height;
    let diff = 0;
    for (let ch = 0; ch < 3; ch++)
      for (let i = 0; i < plane; i++) diff += out.data[ch * plane + i] !== want[i * 3 + ch] ? 1 : 0;
    expect(diff).toBe(0);
  });
});

describe('raw pixels and odd images', () => {
  it('raw grey, LA, RGB, RGBA pixels convert as PIL does', async () => {
    const cfg = nativePreprocessConfig({
      ...defaultPreprocessorConfig(2, 1),
      doResize: false,
      doRescale: false,
      doNormalize: false,
    });
    const grey = await decodeImage({ data: new Uint8Array([7, 9]), width: 1, height: 2, channels: 1 }, 0);
    const rgba = await decodeImage(
      { data: new Uint8Array([1, 2, 3, 0, 4, 5, 6, 255]), width: 1, height: 2, channels: 4 },
      1,
    );
    const la = await decodeImage({ data: new Uint8ClampedArray([10, 0, 20, 99]), width: 1, height: 2, channels: 2 }, 2);
    const out = await native().preprocess([grey, rgba, la], cfg);
    expect(Array.from(out.data)).toEqual([7, 9, 7, 9, 7, 9, 1, 4, 2, 5, 3, 6, 10, 20, 10, 20, 10, 20]);
  });

  it('CMYK and 16-bit grey ("I;16") pixels convert as PIL does; a bad format is refused', async () => {
    const cfg = nativePreprocessConfig({
      ...defaultPreprocessorConfig(1, 3),
      doResize: false,
      doRescale: false,
      doNormalize: false,
    });
    // cmyk2rgb: (255 − K) − round(C·(255 − K)/255) per channel.
    const cmyk = {
      data: new Uint8Array([0, 0, 0, 0, 255, 128, 0, 0, 100, 0, 50, 100]),
      width: 3,
      height: 1,
      channels: 4,
      format: 'CMYK' as const,
    };
    // mode I → RGB clamps at 255; a second channel (alpha added by the decoder) is ignored.
    const grey = { data: new Uint16Array([0, 254, 256]), width: 3, height: 1, channels: 1, format: 'I;16' as const };
    const greyA = {
      data: new Uint16Array([300, 1, 12, 2, 65535, 3]),
      width: 3,
      height: 1,
      channels: 2,
      format: 'I;16' as const,
    };
    const out = await native().preprocess([cmyk, grey, greyA], cfg);
    expect(Array.from(out.data)).toEqual([
      255,
      0,
      94,
      255,
      127,
      155,
      255,
      255,
      125, // CMYK: R, G, B planes
      0,
      254,
      255,
      0,
      254,
      255,
      0,
      254,
      255, // I;16
      255,
      12,
      255,
      255,
      12,
      255,
      255,
      12,
      255,
    ]);
    const call = (im: object) => Promise.resolve().then(() => native().preprocess([im as typeof cmyk], cfg));
    await expect(call({ ...cmyk, format: 'YCbCr' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(call({ ...cmyk, channels: 3, data: cmyk.data.subarray(0, 9) })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
    await expect(call({ ...grey, data: new Uint8Array(6) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(call({ ...grey, data: new Uint16Array(2) })).rejects.toMatchObject({ code: 'ERR_IMAGE_INVALID' });
  });

  it("decoding picks PIL's mode: I;16 for 16-bit grey PNG, CMYK for CMYK, 8-bit otherwise", async () => {
    const dir = path.join(FIX, 'pil');
    const g16 = await decodeImage(path.join(dir, 'gray16.png'), 0);
    expect([g16.format, g16.channels, g16.data instanceof Uint16Array, Math.max(...g16.data)]).toEqual([
      'I;16',
      1,
      true,
      65535,
    ]);
    const c = await decodeImage(path.join(dir, 'cmyk.jpg'), 0);
    expect([c.format, c.channels, c.data instanceof Uint8Array]).toEqual(['CMYK', 4, true]);
    const la16 = await decodeImage(path.join(dir, 'la16.png'), 0); // PIL: RGBA, high byte of each sample
    expect([la16.format, la16.channels]).toEqual([undefined, 4]);
    const sharp = (await import('sharp')).default;
    const rgb16 = await sharp(path.join(dir, 'rgb_small.png')).toColourspace('rgb16').png().toBuffer();
    const d = await decodeImage(rgb16, 0);
    expect([d.format, d.channels, d.data instanceof Uint8Array]).toEqual([undefined, 3, true]);
  });

  it('do_resize false keeps the size; mixed sizes then cannot be batched', async () => {
    const dir = modelFolder('noresize', { ...FACEBOOK_PREPROCESSOR, do_resize: false });
    const m = await loadModel(dir, { device: 'cpu' });
    try {
      const a = { data: new Uint8Array(5 * 3 * 3), width: 5, height: 3, channels: 3 as const };
      expect((await m.preprocess(a)).shape).toEqual([1, 3, 3, 5]);
      await expect(m.preprocess([a, { ...a, data: new Uint8Array(4 * 3 * 3), width: 4 }])).rejects.toMatchObject({
        code: 'ERR_SHAPE_MISMATCH',
      });
    } finally {
      await m.dispose();
    }
  });

  it('16-bit and CMYK images decode without error', async () => {
    // Made here with sharp (no Pillow needed): a 16-bit RGB PNG and a CMYK JPEG (their byte-exact
    // agreement with PIL is checked by the Pillow goldens).
    const sharp = (await import('sharp')).default;
    const base = sharp(path.join(FIX, 'pil', 'rgb_small.png'));
    const png16 = await base.clone().toColourspace('rgb16').png().toBuffer();
    const cmyk = await base.clone().toColourspace('cmyk').jpeg().toBuffer();
    expect((await sharp(png16).metadata()).depth).toBe('ushort');
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    const m = await loadModel(modelFolder('fb2', FACEBOOK_PREPROCESSOR), { device: 'cpu' });
    try {
      const out = await m.preprocess([png16, cmyk, path.join(FIX, 'pil', 'rgb_small.png')]);
      expect(out.shape).toEqual([3, 3, 224, 224]);
      // The 16-bit PNG holds the same picture: its 8-bit reduction lands within a level or two.
      const n = 3 * 224 * 224;
      let max = 0;
      for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(out.data[i] - out.data[2 * n + i]));
      expect(max).toBeLessThan(2 / 255 / 0.224);
    } finally {
      await m.dispose();
    }
  });
});

describe('preprocessor_config.json', () => {
  it('legacy size, dict size, defaults', () => {
    const legacy = parsePreprocessorConfig(JSON.stringify(FACEBOOK_PREPROCESSOR), 32, 32);
    expect(legacy).toMatchObject({
      size: { height: 224, width: 224 },
      resample: 2,
      doRescale: true,
      rescaleFactor: 1 / 255,
    });
    const dict = parsePreprocessorConfig(
      '{"size": {"height": 100, "width": 120}, "image_mean": 0.5, "do_rescale": false}',
      32,
      32,
    );
    expect(dict).toMatchObject({ size: { height: 100, width: 120 }, imageMean: [0.5, 0.5, 0.5], doRescale: false });
    expect(parsePreprocessorConfig('{}', 48, 40).size).toEqual({ height: 48, width: 40 });
  });
  it.each([
    ['{"size": {"shortest_edge": 224}}', /height.*width/],
    ['{"resample": 0}', /NEAREST/],
    ['{"image_std": [1, 0, 1]}', /image_std/],
    ['{"image_mean": [1, 2]}', /image_mean/],
    ['{"do_resize": "yes"}', /do_resize/],
    ['{"size": -3}', /size/],
    ['not json', /JSON/],
  ])('%s is refused', (text, msg) => {
    expect(() => parsePreprocessorConfig(text, 32, 32)).toThrow(msg);
    try {
      parsePreprocessorConfig(text, 32, 32);
    } catch (e) {
      expect((e as { code: string }).code).toBe('ERR_CONFIG_INVALID');
    }
  });
  it("a folder without the file uses the checkpoints' defaults at the model's image size", async () => {
    const m = await loadModel(modelFolder('nofile', null), { device: 'cpu' });
    expect(m.preprocessor).toMatchObject({ source: 'defaults', size: { height: 32, width: 32 }, resample: 2 });
    await m.dispose();
  });
});
