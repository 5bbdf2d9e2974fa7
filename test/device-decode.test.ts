// GPU decoding (encode / classify with decode: 'gpu'), the parts a machine without a GPU runs: which
// images go to the device decoder (plain 3-component JPEGs without EXIF rotation) and which stay on
// the CPU path, and the refusals — the option on a CPU model, a bad value, the native calls on a
// backend without a JPEG decoder. The device decoding itself is checked by test/gpu.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../lib/index';
import { native, type NativeModel } from '../lib/binding';
import { readConfig } from '../lib/config';
import { nativePreprocessConfig } from '../lib/encode';
import { deviceJpeg } from '../lib/images';
import { defaultPreprocessorConfig } from '../lib/preprocessor';
import type { Item } from '../lib/call-queue';
import { expectCode } from './support/expect-code';
import { tinyModelFolder } from './support/real-models';

const PIL = path.join(__dirname, 'fixtures', 'pil');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-device-decode-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

describe('which images go to the device decoder', () => {
  it('plain colour JPEGs (4:2:0 and 4:4:4, by path or bytes, an ICC profile ignored) do', async () => {
    for (const f of ['rgb420.jpg', 'rgb444.jpg', 'icc.jpg']) {
      const file = path.join(PIL, f);
      const bytes = readFileSync(file);
      expect(Buffer.from((await deviceJpeg(file, 0))!).equals(bytes), f).toBe(true);
      expect(await deviceJpeg(bytes, 0), f).toBe(bytes);
    }
  });

  it('grey, CMYK and EXIF-rotated JPEGs, other formats and raw pixels stay on the CPU path', async () => {
    for (const f of ['gray.jpg', 'cmyk.jpg', 'cmyk_noadobe.jpg', 'exif6.jpg', 'exif2.jpg', 'rgba.png', 'rgba.webp']) {
      expect(await deviceJpeg(path.join(PIL, f), 0), f).toBeUndefined();
    }
    expect(await deviceJpeg({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 }, 0)).toBeUndefined();
  });

  it('a JPEG over maxPixels, or one whose header does not parse, stays on the CPU path (which reports it)', async () => {
    const file = path.join(PIL, 'rgb420.jpg');
    const { width, height } = await sharp(file).metadata();
    expect(await deviceJpeg(file, 0, { maxPixels: width! * height! - 1 })).toBeUndefined();
    expect(await deviceJpeg(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]), 0)).toBeUndefined();
  });

  it('a missing file is an error of its own call, as on the CPU path', async () => {
    const r = await Promise.allSettled([deviceJpeg(path.join(tmpRoot, 'missing.jpg'), 3)]);
    expectCode(r[0], 'ERR_IMAGE_NOT_FOUND', /image 3/);
  });
});

describe('refusals without a GPU', () => {
  let model: Model;
  let classifier: Model;
  let handle: NativeModel;
  beforeAll(async () => {
    const d = tinyModelFolder(path.join(tmpRoot, 'tiny'), 'tiny-s8', 32);
    model = await loadModel(d, { device: 'cpu', threads: 1 });
    classifier = await loadModel(tinyModelFolder(path.join(tmpRoot, 'cls'), 'tiny-cls', 48), {
      device: 'cpu',
      threads: 1,
    });
    const { native: cfg } = await readConfig(d);
    handle = await native().loadModel(d, cfg, { device: 'cpu', dtype: 'float32', threads: 1 });
  });
  afterAll(() => {
    model?.dispose();
    classifier?.dispose();
    handle?.dispose();
  });

  it("decode: 'gpu' on a CPU model is ERR_INVALID_ARGUMENT, before any decoding", async () => {
    const jpeg = path.join(PIL, 'rgb420.jpg');
    expectCode((await Promise.allSettled([model.encode(jpeg, { decode: 'gpu' })]))[0], 'ERR_INVALID_ARGUMENT', /CUDA/);
    expectCode((await Promise.allSettled([classifier.classify(jpeg, { decode: 'gpu' })]))[0], 'ERR_INVALID_ARGUMENT');
    expectCode(
      (await Promise.allSettled([model.encode(jpeg, { decode: 'nvjpeg' as 'gpu' })]))[0],
      'ERR_INVALID_ARGUMENT',
      /decode/,
    );
  });

  it("decode: 'cpu' is the default path", async () => {
    const jpeg = path.join(PIL, 'rgb420.jpg');
    const a = await model.encode(jpeg);
    const b = await model.encode(jpeg, { decode: 'cpu' });
    expect(b.data).toEqual(a.data);
  });

  it('the native calls with JPEG files reject with ERR_DEVICE_UNAVAILABLE on the CPU backend', async () => {
    const files = [readFileSync(path.join(PIL, 'rgb420.jpg'))];
    const pre = nativePreprocessConfig(defaultPreprocessorConfig(32, 32));
    const opts = { interpolatePosEncoding: false, preprocess: pre };
    const r = await Promise.allSettled([
      handle.embed(files, [1, 32, 32, 3], opts, { pooling: 'cls' }),
      handle.decodeJpegs(files, pre),
    ]);
    for (const x of r) {
      expect(x.status).toBe('rejected');
      expect((x as PromiseRejectedResult).reason.code).toBe('ERR_DEVICE_UNAVAILABLE');
    }
  });

  it('the native embed refuses a file count or a size that does not match its shape', async () => {
    const files = [readFileSync(path.join(PIL, 'rgb420.jpg'))];
    const pre = nativePreprocessConfig(defaultPreprocessorConfig(32, 32));
    const opts = { interpolatePosEncoding: false, preprocess: pre };
    expect(() => handle.embed(files, [2, 32, 32, 3], opts, { pooling: 'cls' })).toThrow(/one JPEG file per image/);
    expect(() => handle.embed(files, [1, 48, 48, 3], opts, { pooling: 'cls' })).toThrow(/resizes to/);
    expect(() => handle.embed([new Float32Array(4) as never], [1, 32, 32, 3], opts, { pooling: 'cls' })).toThrow(
      /Uint8Array/,
    );
  });
});

// The batch logic of decode: 'gpu' (lib/device-decode.ts) behind the native interface: a stand-in
// handle whose embed answers as a device decoder would — refusing the files it is told to, giving
// each taken file a row that names it — and a stand-in CPU path that does the same for its images.
describe('a decode: gpu batch: device files, CPU images and refused files each reach their caller', () => {
  const D = 2;
  const rowOf = (tag: number) => [tag, -tag];
  const jpeg = (n: number) => path.join(PIL, n % 2 ? 'rgb420.jpg' : 'rgb444.jpg');

  async function runBatch(refuse: Set<string>, failDevice = false) {
    const { ImageCall } = await import('../lib/model-calls');
    const { deviceImageBatch } = await import('../lib/device-decode');
    const { BatchStats } = await import('../lib/batch-stats');
    const tags = new Map<string, number>();
    const tag = (bytes: Uint8Array) => {
      const k = Buffer.from(bytes).toString('base64');
      if (!tags.has(k)) tags.set(k, 100 + tags.size);
      return tags.get(k)!;
    };
    const deviceCalls: number[][] = [];
    const handle = {
      embed: async (files: Uint8Array[]) => {
        deviceCalls.push(files.map(tag));
        if (failDevice) throw Object.assign(new Error('device failed'), { code: 'ERR_INTERNAL' });
        const rejected = files.flatMap((f, index) =>
          refuse.has(String(tag(f))) ? [{ index, reason: 'refused' }] : [],
        );
        if (rejected.length) return { B: 0, D, numLabels: 0, embeddings: null, probabilities: null, rejected };
        return {
          B: files.length,
          D,
          numLabels: 0,
          embeddings: new Float32Array(files.flatMap((f) => rowOf(tag(f)))),
          probabilities: null,
        };
      },
    };
    const ctx = {
      handle,
      preprocessor: defaultPreprocessorConfig(32, 32),
      stats: new BatchStats(),
    } as unknown as Parameters<typeof deviceImageBatch>[0];
    const cpuImages: string[] = [];
    const cpuBatch: Parameters<typeof deviceImageBatch>[2] = async (_ctx, items) => ({
      run: async () => {
        const r = {
          B: items.length,
          D,
          numLabels: 0,
          embeddings: new Float32Array(items.length * D),
          probabilities: null,
        };
        items.forEach((it, b) => {
          cpuImages.push(String(it.call.images[it.index]));
          const input = it.call.images[it.index];
          const t = typeof input === 'string' ? -1 : tag(input as Uint8Array);
          r.embeddings.set(rowOf(t), b * D);
        });
        items.forEach((it, b) => it.call.deliver(it.index, r, b));
      },
    });
    const bytes = [0, 1, 2].map((n) => readFileSync(jpeg(n)));
    const png = path.join(PIL, 'rgba.png');
    const output = { kind: 'embed', pooling: 'cls', normalize: false } as const;
    const a = new ImageCall([bytes[0], png, bytes[1]], output, false, {}, 16, true);
    const b = new ImageCall([path.join(PIL, 'gray.jpg'), bytes[2]], output, false, {}, 16, true);
    const items = [...a.items('k'), ...b.items('k')] as Array<Item<InstanceType<typeof ImageCall>>>;
    const work = await deviceImageBatch(ctx, items, cpuBatch);
    await work!.run();
    const settle = await Promise.allSettled([a.promise, b.promise]);
    return { settle, deviceCalls, cpuImages, tagOf: (i: number) => tag(bytes[i]) };
  }

  it('device rows and CPU rows land at their images', async () => {
    const { settle, deviceCalls, cpuImages, tagOf } = await runBatch(new Set());
    expect(deviceCalls).toEqual([[tagOf(0), tagOf(1), tagOf(2)]]);
    expect(cpuImages.map((f) => path.basename(f))).toEqual(['rgba.png', 'gray.jpg']);
    const [ra, rb] = settle.map((s) => (s as PromiseFulfilledResult<{ data: Float32Array }>).value.data);
    expect([...ra]).toEqual([...rowOf(tagOf(0)), ...rowOf(-1), ...rowOf(tagOf(1))]);
    expect([...rb]).toEqual([...rowOf(-1), ...rowOf(tagOf(2))]);
  });

  it('a file the device refuses goes to the CPU path; the rest are asked again', async () => {
    const first = await runBatch(new Set());
    const refused = String(first.tagOf(1));
    const { settle, deviceCalls, cpuImages, tagOf } = await runBatch(new Set([refused]));
    expect(deviceCalls).toEqual([
      [tagOf(0), tagOf(1), tagOf(2)],
      [tagOf(0), tagOf(2)],
    ]);
    expect(cpuImages.length).toBe(3); // the refused file, then the PNG and the grey JPEG
    const [ra] = settle.map((s) => (s as PromiseFulfilledResult<{ data: Float32Array }>).value.data);
    expect([...ra]).toEqual([...rowOf(tagOf(0)), ...rowOf(-1), ...rowOf(tagOf(1))]);
  });

  it('a device failure fails the calls with device files, with its code', async () => {
    const { settle } = await runBatch(new Set(), true);
    for (const s of settle) {
      expect(s.status).toBe('rejected');
      expect((s as PromiseRejectedResult).reason.code).toBe('ERR_INTERNAL');
    }
  });
});
