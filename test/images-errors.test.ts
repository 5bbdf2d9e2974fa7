// Bad images never crash, hang or allocate absurdly: each gives a VitMsnError with a stable code.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, VitMsnError, type ErrorCode, type Model } from '../lib/index';
import { native } from '../lib/binding';
import { goldenDir } from './support/goldens';
import { bmpBytes, pngWithHeader } from './support/png';

const FIX = path.join(__dirname, 'fixtures');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-bad-images-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

async function expectCode(p: Promise<unknown>, code: ErrorCode, message?: RegExp) {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(VitMsnError);
  expect((err as VitMsnError).code, (err as Error).message).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}

let model: Model;
beforeAll(async () => {
  const dir = path.join(tmpRoot, 'model');
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors'])
    copyFileSync(path.join(goldenDir('tiny-s8'), f), path.join(dir, f));
  model = await loadModel(dir, { device: 'cpu' });
});
afterAll(() => model?.dispose());

const jpeg = () => readFileSync(path.join(FIX, 'pil', 'rgb420.jpg'));

describe('bad images', () => {
  it('zero bytes', () => expectCode(model.encode(Buffer.alloc(0)), 'ERR_IMAGE_INVALID', /empty/));
  it('a truncated JPEG', () => expectCode(model.encode(jpeg().subarray(0, 3000)), 'ERR_IMAGE_INVALID', /decoded/));
  it('a text file', () => {
    const f = path.join(tmpRoot, 'notes.txt');
    writeFileSync(f, 'this is not an image\n'.repeat(20));
    return expectCode(model.encode(f), 'ERR_IMAGE_INVALID', /not an image/);
  });
  it('a 0x0 PNG', () => expectCode(model.encode(pngWithHeader(0, 0)), 'ERR_IMAGE_INVALID'));
  it('0x0 raw pixels', () =>
    expectCode(
      model.encode({ data: new Uint8Array(0), width: 0, height: 0, channels: 3 }),
      'ERR_IMAGE_INVALID',
      /empty/,
    ));
  it('a PNG header declaring 100000x100000 is refused before any allocation', async () => {
    const before = process.memoryUsage().rss;
    await expectCode(model.encode(pngWithHeader(100000, 100000)), 'ERR_IMAGE_TOO_LARGE', /pixel limit/);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 << 20);
  });
  it('maxPixels lowers the limit (encoded and raw)', async () => {
    await expectCode(model.encode(jpeg(), { maxPixels: 1000 }), 'ERR_IMAGE_TOO_LARGE');
    await expectCode(
      model.encode({ data: new Uint8Array(300), width: 10, height: 10, channels: 3 }, { maxPixels: 99 }),
      'ERR_IMAGE_TOO_LARGE',
    );
  });
  it('a PNG whose pixel data is garbage', () =>
    expectCode(model.encode(pngWithHeader(8, 8, Buffer.from('garbage garbage'))), 'ERR_IMAGE_INVALID'));
  it('unsupported formats: BMP, SVG', async () => {
    await expectCode(model.encode(bmpBytes()), 'ERR_IMAGE_UNSUPPORTED', /BMP/);
    const svg = Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>');
    await expectCode(model.encode(svg), 'ERR_IMAGE_UNSUPPORTED', /SVG/);
  });
  it('a missing file', () =>
    expectCode(model.encode(path.join(tmpRoot, 'nope.jpg')), 'ERR_IMAGE_NOT_FOUND', /nope\.jpg/));
  it('raw pixels that do not fit their size', () =>
    expectCode(
      model.encode({ data: new Uint8Array(10), width: 2, height: 2, channels: 3 }),
      'ERR_IMAGE_INVALID',
      /12 bytes/,
    ));
  it('wrong input types', async () => {
    await expectCode(model.encode(42 as never), 'ERR_INVALID_ARGUMENT');
    await expectCode(model.encode([]), 'ERR_INVALID_ARGUMENT');
    await expectCode(
      model.encode({ data: new Uint8Array(5), width: 1, height: 1, channels: 5 } as never),
      'ERR_INVALID_ARGUMENT',
      /channels/,
    );
    await expectCode(
      model.encode({ data: [1, 2, 3], width: 1, height: 1, channels: 3 } as never),
      'ERR_INVALID_ARGUMENT',
    );
  });
  it('bad options', async () => {
    await expectCode(model.encode(jpeg(), { pooling: 'max' as never }), 'ERR_INVALID_ARGUMENT', /pooling/);
    await expectCode(model.encode(jpeg(), { batchSize: 0 }), 'ERR_INVALID_ARGUMENT', /batchSize/);
    await expectCode(model.encode(jpeg(), { nope: 1 } as never), 'ERR_INVALID_ARGUMENT', /nope/);
    await expectCode(model.classify(jpeg(), { topK: 0 }), 'ERR_NO_CLASSIFIER');
  });
  it('a preprocessor size the model does not take is refused up front; interpolatePosEncoding runs it', async () => {
    const dir = path.join(tmpRoot, 'model224');
    mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors'])
      copyFileSync(path.join(goldenDir('tiny-s8'), f), path.join(dir, f));
    writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ size: 64 }));
    const m = await loadModel(dir, { device: 'cpu' });
    try {
      await expectCode(
        m.encode(jpeg()),
        'ERR_SHAPE_MISMATCH',
        /preprocessor_config\.json resizes images to 64x64.*32x32/,
      );
      expect((await m.encode(jpeg(), { interpolatePosEncoding: true })).shape).toEqual([1, 32]);
    } finally {
      await m.dispose();
    }
  });
  it('classify() on a backbone checkpoint', () =>
    expectCode(model.classify(jpeg()), 'ERR_NO_CLASSIFIER', /classifier/));
  it('one bad image in a later batch fails the call, and the model keeps working', async () => {
    const good = { data: new Uint8Array(32 * 32 * 3).fill(100), width: 32, height: 32, channels: 3 as const };
    const list = [good, good, good, good, good, Buffer.from('junk')];
    await expectCode(model.encode(list, { batchSize: 2 }), 'ERR_IMAGE_INVALID', /image 5/);
    expect((await model.encode(good)).shape).toEqual([1, 32]);
  });
  it('the addon itself refuses junk without crashing', async () => {
    const cfg = {
      doResize: true,
      height: 4,
      width: 4,
      resample: 2,
      doRescale: true,
      rescaleFactor: 1 / 255,
      doNormalize: true,
      imageMean: [0, 0, 0],
      imageStd: [1, 1, 1],
    };
    const addon = native() as unknown as { preprocess: (...a: unknown[]) => Promise<unknown> };
    const call = async (...a: unknown[]) => addon.preprocess(...a);
    for (const [args, code] of [
      [[[{ data: 'x', width: 1, height: 1, channels: 3 }], cfg], 'ERR_INVALID_ARGUMENT'],
      [
        [[{ data: new Uint8Array(3), width: 1, height: 1, channels: 3 }], { ...cfg, resample: 0 }],
        'ERR_INVALID_ARGUMENT',
      ],
      [[[{ data: new Uint8Array(3), width: 2 ** 40, height: 1, channels: 3 }], cfg], 'ERR_IMAGE_INVALID'],
      [
        [[{ data: new Uint8Array(3), width: 1, height: 1, channels: 3 }], { ...cfg, imageMean: [1] }],
        'ERR_INVALID_ARGUMENT',
      ],
      [[[], cfg], 'ERR_INVALID_ARGUMENT'],
      [[null, null], 'ERR_INVALID_ARGUMENT'],
    ] as const) {
      let err: { code?: string } | undefined;
      try {
        await call(...args);
      } catch (e) {
        err = e as { code?: string };
      }
      expect(err?.code).toBe(code);
    }
  });
});
