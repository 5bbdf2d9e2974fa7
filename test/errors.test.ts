// Bad input never crashes or hangs: each case gives a VitMsnError with a stable code.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, loadModel, VitMsnError, type ErrorCode, type Model } from '../lib/index';
import { native } from '../lib/binding';
import { goldenDir, TINY_S8_NATIVE_CONFIG } from './support/goldens';
import { encodeSafetensors, readSafetensors } from './support/safetensors';

const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-errors-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, message?: RegExp) {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(VitMsnError);
  expect((err as VitMsnError).code, (err as Error).message).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}

let dirCount = 0;
/** A model folder: tiny-s8's config (optionally edited) and a weights file given as bytes. */
function folder(opts: { config?: string | object | null; weights?: Buffer | null } = {}): string {
  const dir = path.join(tmpRoot, `m${dirCount++}`);
  mkdirSync(dir);
  const src = goldenDir('tiny-s8');
  if (opts.config !== null) {
    const cfg = opts.config ?? JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
  }
  if (opts.weights !== null) {
    if (opts.weights) writeFileSync(path.join(dir, 'model.safetensors'), opts.weights);
    else copyFileSync(path.join(src, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  }
  return dir;
}

/**
 * `file` with its header padded by 8 more spaces and its header length changed by `delta`: -1 cuts
 * only a padding space, so the JSON still parses and the data section starts one byte early.
 */
function withHeaderLength(file: Buffer, delta: number): Buffer {
  const n = Number(file.readBigUInt64LE(0));
  const header = Buffer.concat([file.subarray(8, 8 + n), Buffer.alloc(8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length + delta));
  return Buffer.concat([len, header, file.subarray(8 + n)]);
}

const tinyConfig = () => JSON.parse(readFileSync(path.join(goldenDir('tiny-s8'), 'config.json'), 'utf8'));
const tinyTensors = () => readSafetensors(path.join(goldenDir('tiny-s8'), 'model.safetensors'));
const encode = (edit?: (h: Record<string, any>) => Record<string, any>, drop?: string) => {
  const t = tinyTensors();
  if (drop) delete t[drop];
  return encodeSafetensors(t, edit);
};

describe('loadModel rejects bad folders', () => {
  it('dir argument and options', async () => {
    await expectCode(loadModel(42 as any), 'ERR_INVALID_ARGUMENT');
    await expectCode(loadModel(folder(), { device: 'tpu' as any }), 'ERR_INVALID_ARGUMENT', /device/);
    await expectCode(loadModel(folder(), { dtype: 'int4' as any }), 'ERR_INVALID_ARGUMENT', /dtype/);
    await expectCode(loadModel(folder(), { threads: -1 }), 'ERR_INVALID_ARGUMENT', /threads/);
    await expectCode(loadModel(folder(), { threads: 1.5 }), 'ERR_INVALID_ARGUMENT', /threads/);
    await expectCode(loadModel(folder(), { thread: 2 } as any), 'ERR_INVALID_ARGUMENT', /unknown.*thread/);
    await expectCode(loadModel(folder(), { device: 'cpu', dtype: 'float16' }), 'ERR_UNSUPPORTED_DTYPE');
  });

  // Only meaningful where no GPU is usable (CI); on a GPU machine test/gpu.test.ts covers 'cuda'.
  it.skipIf(backends().some((b) => b.name === 'cuda' && b.available))(
    'a CUDA device without a usable GPU says why',
    async () => {
      await expectCode(loadModel(folder(), { device: 'cuda' }), 'ERR_DEVICE_UNAVAILABLE', /cuda/i);
    },
  );

  it('missing or malformed config.json', async () => {
    await expectCode(loadModel(path.join(tmpRoot, 'does-not-exist')), 'ERR_CONFIG_NOT_FOUND');
    await expectCode(loadModel(folder({ config: null })), 'ERR_CONFIG_NOT_FOUND');
    await expectCode(loadModel(folder({ config: '{"hidden_size": 32,' })), 'ERR_CONFIG_INVALID', /JSON/);
    await expectCode(loadModel(folder({ config: '[1, 2]' })), 'ERR_CONFIG_INVALID', /object/);
    const noLayers = tinyConfig();
    delete noLayers.num_hidden_layers;
    await expectCode(loadModel(folder({ config: noLayers })), 'ERR_CONFIG_INVALID', /num_hidden_layers/);
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), hidden_size: 30 } })),
      'ERR_CONFIG_INVALID',
      /multiple/,
    );
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), patch_size: 0 } })),
      'ERR_CONFIG_INVALID',
      /patch_size/,
    );
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), hidden_act: 'relu' } })),
      'ERR_CONFIG_INVALID',
      /hidden_act/,
    );
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), image_size: 4 } })),
      'ERR_CONFIG_INVALID',
      /image_size/,
    );
  });

  it('no weights file', async () => {
    await expectCode(loadModel(folder({ weights: null })), 'ERR_WEIGHTS_NOT_FOUND', /model\.safetensors/);
  });

  it('truncated or malformed safetensors', async () => {
    const good = encode();
    const cases: Array<[string, Buffer]> = [
      ['empty file', Buffer.alloc(0)],
      ['shorter than the length prefix', Buffer.from([1, 2, 3])],
      [
        'header length past the end',
        (() => {
          const b = Buffer.from(good);
          b.writeBigUInt64LE(BigInt(good.length));
          return b;
        })(),
      ],
      [
        'bad JSON header',
        (() => {
          const b = Buffer.from(good);
          b.write('}', 8);
          return b;
        })(),
      ],
      ['truncated data', good.subarray(0, good.length - 100)],
      [
        'offsets outside the data',
        encode((h) => {
          h['embeddings.cls_token'].data_offsets = [0, 1 << 30];
          return h;
        }),
      ],
      [
        'overlapping tensors',
        encode((h) => {
          const [s] = h['embeddings.cls_token'].data_offsets;
          const other = h['layernorm.bias'];
          const len = other.data_offsets[1] - other.data_offsets[0];
          other.data_offsets = [s, s + len];
          return h;
        }),
      ],
      [
        'size not dtype×shape',
        encode((h) => {
          h['layernorm.bias'].shape = [31];
          return h;
        }),
      ],
      // The tensors must cover the data section exactly (as the Rust safetensors reader requires).
      ['header length one too small', withHeaderLength(good, -1)],
      [
        'a gap between tensors',
        Buffer.concat([
          encode((h) => {
            // every tensor after the first 4 bytes later, in a data section 4 bytes longer
            const first = Object.values(h)[0].data_offsets[1];
            for (const e of Object.values(h))
              e.data_offsets = e.data_offsets.map((o: number) =>
                o >= first && e.data_offsets[0] >= first ? o + 4 : o,
              );
            return h;
          }),
          Buffer.alloc(4),
        ]),
      ],
      ['bytes after the last tensor', Buffer.concat([good, Buffer.alloc(4)])],
      [
        'unknown dtype',
        encode((h) => {
          h['layernorm.bias'].dtype = 'Q4';
          return h;
        }),
      ],
      [
        'header not an object',
        (() => {
          const h = Buffer.from('[1,2,3] ');
          const len = Buffer.alloc(8);
          len.writeBigUInt64LE(BigInt(h.length));
          return Buffer.concat([len, h]);
        })(),
      ],
    ];
    // The reframing itself is sound: with the right length, the padded file loads.
    await (await loadModel(folder({ weights: withHeaderLength(good, 0) }), { device: 'cpu' })).dispose();
    for (const [what, bytes] of cases) {
      await expectCode(loadModel(folder({ weights: bytes })), 'ERR_CHECKPOINT_INVALID').catch((e) => {
        throw new Error(`${what}: ${e.message}`);
      });
    }
  });

  it('tensors missing or shaped wrong for the config', async () => {
    await expectCode(
      loadModel(folder({ weights: encode(undefined, 'encoder.layer.1.output.dense.weight') })),
      'ERR_WEIGHT_MISSING',
      /encoder\.layer\.1\.output\.dense\.weight/,
    );
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), num_hidden_layers: 3 } })),
      'ERR_WEIGHT_MISSING',
      /layer\.2/,
    );
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), intermediate_size: 32 } })),
      'ERR_WEIGHT_SHAPE',
      /intermediate/,
    );
    await expectCode(
      loadModel(folder({ config: { ...tinyConfig(), image_size: 48 } })),
      'ERR_WEIGHT_SHAPE',
      /position_embeddings/,
    );
    // a classifier whose size disagrees with id2label
    const t = tinyTensors();
    t['classifier.weight'] = { dtype: 'F32', shape: [3, 32], data: new Float32Array(96) };
    t['classifier.bias'] = { dtype: 'F32', shape: [3], data: new Float32Array(3) };
    const cfg = { ...tinyConfig(), id2label: { 0: 'a', 1: 'b' } };
    await expectCode(
      loadModel(folder({ config: cfg, weights: encodeSafetensors(t) })),
      'ERR_WEIGHT_SHAPE',
      /classifier/,
    );
  });
});

describe('forward rejects bad input', () => {
  let model: Model;
  let masked: Model;
  const shape = [1, 3, 32, 32];
  const pixels = () => new Float32Array(3 * 32 * 32).fill(0.5);
  beforeAll(async () => {
    model = await loadModel(goldenDir('tiny-s8'), { device: 'cpu', threads: 2 });
    masked = await loadModel(goldenDir('tiny-mask'), { device: 'cpu', threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
    await masked?.dispose();
  });

  it('non-Float32Array input', async () => {
    await expectCode(
      model.forward(new Float64Array(3072) as any, shape),
      'ERR_INVALID_ARGUMENT',
      /Float32Array.*Float64Array/,
    );
    await expectCode(model.forward(Array.from(pixels()) as any, shape), 'ERR_INVALID_ARGUMENT');
    await expectCode(model.forward(undefined as any, shape), 'ERR_INVALID_ARGUMENT');
  });

  it('wrong shape or length', async () => {
    await expectCode(model.forward(pixels(), [3, 32, 32]), 'ERR_INVALID_ARGUMENT', /\[B, C, H, W\]/);
    await expectCode(model.forward(pixels(), [1, 3, 32, 0]), 'ERR_INVALID_ARGUMENT');
    await expectCode(model.forward(pixels(), [1, 3, 32, 31.5]), 'ERR_INVALID_ARGUMENT');
    await expectCode(model.forward(pixels(), [2, 3, 32, 32]), 'ERR_SHAPE_MISMATCH', /3072/);
    await expectCode(model.forward(new Float32Array(4 * 32 * 32), [1, 4, 32, 32]), 'ERR_SHAPE_MISMATCH', /channels/);
    await expectCode(
      model.forward(new Float32Array(3 * 40 * 32), [1, 3, 40, 32]),
      'ERR_SHAPE_MISMATCH',
      /interpolatePosEncoding/,
    );
    await expectCode(
      model.forward(new Float32Array(3 * 4 * 40), [1, 3, 4, 40], { interpolatePosEncoding: true }),
      'ERR_SHAPE_MISMATCH',
      /patch/,
    );
  });

  it('bad options', async () => {
    await expectCode(
      model.forward(pixels(), shape, { outputAttention: true } as any),
      'ERR_INVALID_ARGUMENT',
      /outputAttention/,
    );
    await expectCode(model.forward(pixels(), shape, { outputAttentions: 1 } as any), 'ERR_INVALID_ARGUMENT', /boolean/);
    await expectCode(
      model.forward(pixels(), shape, { headMask: new Float32Array(3) }),
      'ERR_SHAPE_MISMATCH',
      /headMask/,
    );
    await expectCode(
      model.forward(pixels(), shape, { headMask: [1, 1, 1, 1] as any }),
      'ERR_INVALID_ARGUMENT',
      /headMask/,
    );
    await expectCode(model.forward(pixels(), shape, { boolMaskedPos: new Uint8Array(16) }), 'ERR_NO_MASK_TOKEN');
    await expectCode(
      masked.forward(pixels(), shape, { boolMaskedPos: new Uint8Array(15) }),
      'ERR_SHAPE_MISMATCH',
      /boolMaskedPos/,
    );
    await expectCode(
      masked.forward(pixels(), shape, { boolMaskedPos: new Uint8Array(16).fill(2) }),
      'ERR_INVALID_ARGUMENT',
      /0 or 1/,
    );
  });

  it('an absurd input fails cleanly instead of exhausting memory', async () => {
    // 40 000 tokens → the attentions alone would need 4·T² floats (26 GB); the engine refuses up front.
    const H = 8 * 40_000;
    await expectCode(
      model.forward(new Float32Array(3 * H * 8), [1, 3, H, 8], {
        interpolatePosEncoding: true,
        outputAttentions: true,
      }),
      'ERR_OUT_OF_MEMORY',
    );
  });

  it('the model still works after every rejection', async () => {
    const out = await model.forward(pixels(), shape);
    expect(out.lastHiddenState.shape).toEqual([1, 17, 32]);
  });
});

describe('the addon itself survives junk (no crash when called directly)', () => {
  it('loadModel and forward with wrong types reject or throw with a code', async () => {
    const addon = native();
    const junk: unknown[] = [undefined, null, 1, 'x', {}, [], new Float32Array(1)];
    for (const j of junk) {
      await expectNativeCode(() => addon.loadModel(j as any, j as any, j as any));
    }
    // A native handle loaded directly, to pass junk straight to it.
    const cfg = TINY_S8_NATIVE_CONFIG;
    const raw = await addon.loadModel(goldenDir('tiny-s8'), cfg, { device: 'cpu', dtype: 'float32', threads: 1 });
    for (const j of junk) {
      await expectNativeCode(() => raw.forward(j as any, j as any, j as any));
    }
    await expectNativeCode(() => raw.forward(new Float32Array(10), [1, 3, 32, 32], {} as any));
    await expectNativeCode(() =>
      raw.forward(new Float32Array(3072), [1, 3, 32, 32], { headMask: new Uint8Array(4) } as any),
    );
    await expectNativeCode(() =>
      addon.loadModel(
        goldenDir('tiny-s8'),
        { ...cfg, hiddenSize: 33 },
        { device: 'cpu', dtype: 'float32', threads: 1 },
      ),
    );
    raw.dispose();
    await expectNativeCode(() => raw.forward(new Float32Array(3072), [1, 3, 32, 32], {} as any));
  });
});

async function expectNativeCode(fn: () => unknown) {
  let err: any;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Error);
  expect(typeof err.code).toBe('string');
  expect(err.code).toMatch(/^ERR_/);
}
