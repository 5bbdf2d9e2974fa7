// The CUDA backend against transformers' float64 goldens, in float32, float16 and bfloat16. These
// tests need a usable NVIDIA GPU and cuBLASLt; without one they are skipped, and the reason (from
// backends()) is printed. CI has no GPU: scripts/gpu-check.sh runs them on a GPU machine.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native, type NativeModel } from '../lib/binding';
import { readConfig } from '../lib/config';
import { nativePreprocessConfig } from '../lib/encode';
import { backends, loadModel, type DType, type Model } from '../lib/index';
import { defaultPreprocessorConfig } from '../lib/preprocessor';
import { realModel, relL2, syntheticPixels } from './support/real-models';
import { golden, goldenDir, GOLDEN_MODELS } from './support/goldens';
import { readSafetensors, writeSafetensors, type StTensor } from './support/safetensors';
import { hostPool, hostSoftmax } from './support/host-pooling';
import { TOL } from './tolerances';

const cuda = backends().find((b) => b.name === 'cuda');
const haveGpu = !!cuda?.available;
if (!haveGpu) console.log(`[gpu.test] skipped: no usable CUDA backend (${cuda?.detail ?? 'not compiled'})`);

// The dtypes CUDA runs ('int8' is CPU only).
type CudaDType = Exclude<DType, 'int8'>;
const BOUND: Record<CudaDType, number> = {
  float32: TOL.f32VsFloat64,
  float16: TOL.cudaF16VsFloat64,
  bfloat16: TOL.cudaBf16VsFloat64,
};
const f32 = (t: StTensor) => t.data as Float32Array;

describe.skipIf(!haveGpu).each(['float32', 'float16', 'bfloat16'] as CudaDType[])('CUDA %s', (dtype) => {
  describe.each(GOLDEN_MODELS)('%s', (name) => {
    const g = golden(name);
    let model: Model;
    beforeAll(async () => {
      model = await loadModel(goldenDir(name), { device: 'cuda', dtype });
    });
    afterAll(() => model?.dispose());
    const close = (a: { data: Float32Array; shape: number[] }, ref: StTensor, what: string) => {
      expect(a.shape, what).toEqual(ref.shape);
      const err = relL2(a.data, ref.data);
      expect(err, `${what} (${dtype}): relative L2 ${err.toExponential(2)}`).toBeLessThanOrEqual(BOUND[dtype]);
    };

    it('runs on the GPU', () => {
      expect(model.device).toBe('cuda:0');
      expect(model.dtype).toBe(dtype);
    });

    it('every output of the base case', async () => {
      const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape, {
        outputHiddenStates: true,
        outputAttentions: true,
      });
      close(out.lastHiddenState, g.last_hidden_state, 'last_hidden_state');
      out.hiddenStates!.forEach((h, i) => close(h, g[`hidden_states.${i}`], `hidden_states.${i}`));
      out.attentions!.forEach((a, i) => close(a, g[`attentions.${i}`], `attentions.${i}`));
      if (g.logits) close(out.logits!, g.logits, 'logits');
    });

    it('flash attention path (no attentions requested) gives the same last_hidden_state', async () => {
      const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape);
      close(out.lastHiddenState, g.last_hidden_state, 'last_hidden_state');
    });

    it('interpolate_pos_encoding, head_mask, bool_masked_pos', async () => {
      const ip = g['interp.pixel_values'];
      close(
        (await model.forward(f32(ip), ip.shape, { interpolatePosEncoding: true })).lastHiddenState,
        g['interp.last_hidden_state'],
        'interp',
      );
      close(
        (await model.forward(f32(g.pixel_values), g.pixel_values.shape, { headMask: f32(g.head_mask) }))
          .lastHiddenState,
        g['head_mask.last_hidden_state'],
        'head_mask',
      );
      if (g.bool_masked_pos) {
        const out = await model.forward(f32(g.pixel_values), g.pixel_values.shape, {
          boolMaskedPos: g.bool_masked_pos.data as Uint8Array,
        });
        close(out.lastHiddenState, g['masked.last_hidden_state'], 'masked');
      }
    });
  });
});

// The embed path on the device (uint8 pixels → fused patchify → layers → pooling on the GPU; only
// [B, D] comes back) against forward() + host pooling on the same device and dtype.
const EMBED_BOUND: Record<Exclude<DType, 'int8'>, number> = {
  float32: TOL.embedVsForwardCudaF32,
  float16: TOL.embedVsForwardCudaF16,
  bfloat16: TOL.embedVsForwardCudaBf16,
};
describe.skipIf(!haveGpu).each(['float32', 'float16', 'bfloat16'] as const)('CUDA embed path (%s)', (dtype) => {
  const FIX = path.join(__dirname, 'fixtures');
  const list = [
    path.join(FIX, 'images', 'chelsea.png'),
    path.join(FIX, 'pil', 'exif6.jpg'),
    path.join(FIX, 'pil', 'rgba.webp'),
  ];
  it.each(['tiny-s8', 'tiny-cls'] as const)('%s: encode() and classify() = forward() + host pooling', async (name) => {
    for (const interpolate of [false, true]) {
      let tmp: string | undefined;
      const model = await loadModel(goldenDir(name), { device: 'cuda', dtype });
      try {
        // interpolate: the images at an odd size (a folder with its own preprocessor config).
        const m = interpolate
          ? await (async () => {
              const dir = (tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-gpu-embed-')));
              for (const f of ['config.json', 'model.safetensors'])
                writeFileSync(path.join(dir, f), readFileSync(path.join(goldenDir(name), f)));
              writeFileSync(
                path.join(dir, 'preprocessor_config.json'),
                JSON.stringify({ do_resize: true, size: { height: 41, width: 57 }, resample: 2 }),
              );
              await model.dispose();
              return loadModel(dir, { device: 'cuda', dtype });
            })()
          : model;
        const px = await m.preprocess(list);
        const ref = await m.forward(px.data, px.shape, {
          outputHiddenStates: true,
          interpolatePosEncoding: interpolate,
        });
        const last = ref.hiddenStates![ref.hiddenStates!.length - 1];
        for (const pooling of ['cls', 'cls-prenorm', 'mean'] as const) {
          for (const normalize of [false, true]) {
            const got = await m.encode(list, { pooling, normalize, interpolatePosEncoding: interpolate });
            const src = pooling === 'cls-prenorm' ? last : ref.lastHiddenState;
            const err = relL2(got.data, hostPool(src.data, src.shape, pooling === 'mean', normalize));
            expect(err, `${pooling} normalize=${normalize} interpolate=${interpolate}`).toBeLessThanOrEqual(
              EMBED_BOUND[dtype],
            );
          }
        }
        if (m.numLabels > 0) {
          const n = m.numLabels;
          const got = await m.classify(list, { topK: n, interpolatePosEncoding: interpolate });
          const flat = new Float32Array(list.length * n);
          got.forEach((row, b) => row.forEach((c) => (flat[b * n + c.index] = c.score)));
          expect(relL2(flat, hostSoftmax(ref.logits!.data, list.length, n))).toBeLessThanOrEqual(EMBED_BOUND[dtype]);
        }
        await m.dispose();
      } finally {
        await model.dispose();
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      }
    }
  });
});

describe.skipIf(!haveGpu)('CUDA lifecycle', () => {
  it('concurrent models and calls give the sequential results; dispose frees', async () => {
    const a = await loadModel(goldenDir('tiny-s8'), { device: 'cuda', dtype: 'float32' });
    const b = await loadModel(goldenDir('tiny-s8'), { device: 'cuda', dtype: 'float32' });
    const x = new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.07));
    const ref = await a.forward(x, [2, 3, 32, 32]);
    const outs = await Promise.all([
      a.forward(x, [2, 3, 32, 32]),
      b.forward(x, [2, 3, 32, 32]),
      a.forward(x, [2, 3, 32, 32]),
    ]);
    for (const o of outs) expect(relL2(o.lastHiddenState.data, ref.lastHiddenState.data)).toBe(0);
    await Promise.all([a.dispose(), b.dispose()]);
  });
});

// One CUDA backend (stream, cuBLASLt, recorded graphs) serves every model on a GPU and dtype, so the
// graphs it records must be keyed by model: checkpoints with the same input shape [B, 3, 32, 32] —
// two with D = 32, one with D = 48 and a classifier (more outputs per image) — loaded together and
// called in turn from several async callers must each give their own single-model results, also
// after one of them is disposed mid-stream and another is loaded in its place.
describe.skipIf(!haveGpu).each(['float32', 'bfloat16'] as CudaDType[])(
  'CUDA graphs with several models (%s)',
  (dtype) => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'vitmsn-gpu-models-'));
      // tiny-cls (D = 48, patch 16, classifier) at a 32×32 input: its first 1 + 2·2 position rows.
      const w = readSafetensors(path.join(goldenDir('tiny-cls'), 'model.safetensors'));
      const pos = w['vit.embeddings.position_embeddings'];
      w['vit.embeddings.position_embeddings'] = {
        dtype: 'F32',
        shape: [1, 5, 48],
        data: (pos.data as Float32Array).slice(0, 5 * 48),
      };
      const cfg = JSON.parse(readFileSync(path.join(goldenDir('tiny-cls'), 'config.json'), 'utf8'));
      mkdirSync(path.join(dir, 'cls32'));
      writeFileSync(path.join(dir, 'cls32', 'config.json'), JSON.stringify({ ...cfg, image_size: 32 }));
      writeSafetensors(path.join(dir, 'cls32', 'model.safetensors'), w);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const dirs = () => [goldenDir('tiny-s8'), goldenDir('tiny-mask'), path.join(dir, 'cls32')];
    const input = (i: number, B: number) => new Float32Array(B * 3 * 32 * 32).map((_, k) => Math.sin(k * 0.05 + i));
    type Out = { hidden: Float32Array; logits?: Float32Array };
    const call = async (m: Model, i: number, B: number): Promise<Out> => {
      const o = await m.forward(input(i, B), [B, 3, 32, 32]);
      return { hidden: o.lastHiddenState.data, logits: o.logits?.data };
    };
    const expectSame = (got: Out, want: Out, what: string) => {
      expect(got.hidden.length, what).toBe(want.hidden.length);
      expect(relL2(got.hidden, want.hidden), what).toBeLessThanOrEqual(BOUND[dtype]);
      expect(!!got.logits, what).toBe(!!want.logits);
      if (want.logits) expect(relL2(got.logits!, want.logits), `${what} logits`).toBeLessThanOrEqual(BOUND[dtype]);
    };

    it('each model gets its own results; dispose one mid-stream, the others stay right', async () => {
      // Single-model results: each loaded alone; the second call of a shape is a graph replay.
      const single = new Map<string, Out>();
      for (const [i, d] of dirs().entries()) {
        const m = await loadModel(d, { device: 'cuda', dtype });
        try {
          for (const B of [1, 2]) {
            await call(m, i, B);
            single.set(`${i}/${B}`, await call(m, i, B));
          }
        } finally {
          await m.dispose();
        }
      }
      const models = await Promise.all(dirs().map((d) => loadModel(d, { device: 'cuda', dtype })));
      const round = (live: number[]) =>
        Promise.all(
          live.flatMap((i) =>
            [1, 2, 1, 2].map(async (B) => {
              expectSame(await call(models[i], i, B), single.get(`${i}/${B}`)!, `model ${i} B=${B}`);
            }),
          ),
        );
      for (let r = 0; r < 3; r++) await round([0, 1, 2]);
      // Dispose model 0 while calls on all three are in flight.
      const inFlight = round([1, 2]);
      const disposed = models[0].dispose();
      await Promise.all([inFlight, disposed, round([1, 2])]);
      // A model loaded after it (possibly into the same device memory) records its own graphs.
      models[0] = await loadModel(dirs()[0], { device: 'cuda', dtype });
      for (let r = 0; r < 2; r++) await round([0, 1, 2]);
      await Promise.all(models.map((m) => m.dispose()));
    }, 300_000);
  },
);

// Real head size (Dh = 64) exercises the tensor-core attention kernel (fp16/bf16 on sm_80+), which
// the tiny goldens (Dh = 8) never reach; VITMSN_CUDA_ATTENTION=simt forces the CUDA-core kernel.
// Backends are made per (device, dtype) while a model holds them, so each load below re-reads the
// environment. T = 197 (224²) and 1025 (512², interpolated) cover a ragged last key tile.
describe.skipIf(!haveGpu)('CUDA at real size (ViT-S/16)', () => {
  const withEnv = async <R>(name: string, value: string | undefined, fn: () => Promise<R>): Promise<R> => {
    const old = process.env[name];
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
    try {
      return await fn();
    } finally {
      if (old === undefined) delete process.env[name];
      else process.env[name] = old;
    }
  };
  const run = async (
    dir: string,
    device: 'cpu' | 'cuda',
    dtype: DType,
    x: Float32Array,
    shape: number[],
    interp: boolean,
  ) => {
    const m = await loadModel(dir, { device, dtype });
    try {
      return (await m.forward(x, shape, { interpolatePosEncoding: interp })).lastHiddenState.data;
    } finally {
      await m.dispose();
    }
  };

  for (const [size, T] of [
    [224, 197],
    [512, 1025],
  ] as const) {
    it(`tensor-core and CUDA-core attention agree with the CPU in fp16 and bf16 (T = ${T})`, async () => {
      const { modelDir } = await realModel('vit-s16');
      const x = syntheticPixels(2, size, size),
        shape = [2, 3, size, size];
      const cpu = await run(modelDir, 'cpu', 'float32', x, shape, size !== 224);
      for (const dtype of ['float16', 'bfloat16'] as CudaDType[]) {
        const tc = await run(modelDir, 'cuda', dtype, x, shape, size !== 224);
        const simt = await withEnv('VITMSN_CUDA_ATTENTION', 'simt', () =>
          run(modelDir, 'cuda', dtype, x, shape, size !== 224),
        );
        const eTc = relL2(tc, cpu),
          eSimt = relL2(simt, cpu),
          eBoth = relL2(tc, simt);
        console.log(
          `[gpu.test] ViT-S T=${T} ${dtype}: tensor-core ${eTc.toExponential(2)}, cuda-core ${eSimt.toExponential(2)} vs CPU fp32; between ${eBoth.toExponential(2)}`,
        );
        expect(eTc, `${dtype} tensor-core vs CPU`).toBeLessThanOrEqual(BOUND[dtype]);
        expect(eSimt, `${dtype} cuda-core vs CPU`).toBeLessThanOrEqual(BOUND[dtype]);
        expect(eBoth, `${dtype} tensor-core vs cuda-core`).toBeLessThanOrEqual(BOUND[dtype]);
      }
    }, 300_000);
  }

  it('recorded (CUDA graph) forwards equal eager ones, across batch sizes in turn and concurrent calls', async () => {
    const { modelDir } = await realModel('vit-s16');
    for (const dtype of ['float32', 'bfloat16'] as CudaDType[]) {
      const m = await loadModel(modelDir, { device: 'cuda', dtype });
      try {
        for (const B of [1, 2, 1, 3, 2]) {
          const x = syntheticPixels(B),
            shape = [B, 3, 224, 224];
          const replayed = (await m.forward(x, shape)).lastHiddenState.data; // plain: recorded + replayed
          const eager = (await m.forward(x, shape, { outputHiddenStates: true })).lastHiddenState.data;
          expect(relL2(replayed, eager), `${dtype} B=${B} graph vs eager`).toBeLessThanOrEqual(1e-6);
        }
        const x = syntheticPixels(1),
          shape = [1, 3, 224, 224];
        const ref = (await m.forward(x, shape)).lastHiddenState.data;
        const outs = await Promise.all([0, 1, 2, 3].map(() => m.forward(x, shape)));
        for (const o of outs) expect(relL2(o.lastHiddenState.data, ref)).toBe(TOL.deterministic);
      } finally {
        await m.dispose();
      }
    }
  }, 300_000);

  it('a forward of 128+ images in parts with overlapped transfers equals it run whole', async () => {
    const { modelDir } = await realModel('vit-s16');
    const B = 150; // parts of 64, 64 and 22
    const x = syntheticPixels(B),
      shape = [B, 3, 224, 224];
    for (const dtype of ['float32', 'bfloat16'] as CudaDType[]) {
      const whole = await withEnv('VITMSN_CUDA_PIPELINE', '0', () => run(modelDir, 'cuda', dtype, x, shape, false));
      const parts = await run(modelDir, 'cuda', dtype, x, shape, false);
      const perImage = 197 * 384; // T · D of ViT-S/16 at 224²
      let worst = 0;
      for (let b = 0; b < B; b++) {
        const lo = b * perImage,
          hi = lo + perImage;
        worst = Math.max(worst, relL2(parts.subarray(lo, hi), whole.subarray(lo, hi)));
      }
      console.log(`[gpu.test] ViT-S B=${B} ${dtype}: parts vs whole, worst image ${worst.toExponential(2)}`);
      // cuBLASLt may pick other algorithms for 64 rows than for 150: within the dtype's bound, per image.
      expect(worst, `${dtype} parts vs whole`).toBeLessThanOrEqual(BOUND[dtype]);
    }
  }, 300_000);

  it('eager embed batches (> 16 images), two in flight, equal forward() + host pooling image by image', async () => {
    // 60 images in batches of 20: above the recorded size, so the pixels cross on the copy stream
    // into the alternating landing buffers, and the runner starts the second full batch beside the first.
    const { modelDir } = await realModel('vit-s16');
    const FIX = path.join(__dirname, 'fixtures');
    const three = [
      path.join(FIX, 'images', 'chelsea.png'),
      path.join(FIX, 'pil', 'exif6.jpg'),
      path.join(FIX, 'pil', 'rgba.webp'),
    ];
    const list = Array.from({ length: 60 }, (_, i) => three[i % 3]);
    for (const dtype of ['float32', 'bfloat16'] as CudaDType[]) {
      const m = await loadModel(modelDir, { device: 'cuda', dtype });
      try {
        const px = await m.preprocess(three);
        const ref = await m.forward(px.data, px.shape);
        const want = hostPool(ref.lastHiddenState.data, ref.lastHiddenState.shape, false, false);
        const D = want.length / 3;
        const [a, b] = await Promise.all([m.encode(list, { batchSize: 20 }), m.encode(list, { batchSize: 20 })]);
        for (const got of [a, b]) {
          for (let i = 0; i < list.length; i++) {
            const err = relL2(got.data.subarray(i * D, (i + 1) * D), want.subarray((i % 3) * D, ((i % 3) + 1) * D));
            expect(err, `${dtype} image ${i}`).toBeLessThanOrEqual(BOUND[dtype]);
          }
        }
      } finally {
        await m.dispose();
      }
    }
  }, 300_000);

  it('recorded (CUDA graph) embed path equals eager, per pooling and normalisation', async () => {
    const { modelDir } = await realModel('vit-s16');
    const FIX = path.join(__dirname, 'fixtures');
    const list = [path.join(FIX, 'images', 'chelsea.png'), path.join(FIX, 'pil', 'exif6.jpg')];
    for (const dtype of ['float32', 'bfloat16'] as CudaDType[]) {
      const eagerModel = await withEnv('VITMSN_CUDA_GRAPHS', '0', () => loadModel(modelDir, { device: 'cuda', dtype }));
      const m = await loadModel(modelDir, { device: 'cuda', dtype });
      try {
        for (const [pooling, normalize] of [
          ['cls', false],
          ['mean', true],
        ] as const) {
          const want = (await eagerModel.encode(list, { pooling, normalize })).data;
          // The first call measures, the second records and replays, the third replays.
          for (let call = 1; call <= 3; call++) {
            const got = (await m.encode(list, { pooling, normalize })).data;
            expect(relL2(got, want), `${dtype} ${pooling} call ${call}`).toBeLessThanOrEqual(1e-6);
          }
        }
      } finally {
        await m.dispose();
        await eagerModel.dispose();
      }
    }
  }, 300_000);

  it('the whole-head attention kernel (auto at large grids) agrees with the 16-row one and the CPU', async () => {
    const { modelDir } = await realModel('vit-s16');
    const B = 48; // 48 images × 6 heads: enough blocks for auto to pick the whole-head kernel on any GPU ≤ 144 SMs
    const x = syntheticPixels(B),
      shape = [B, 3, 224, 224];
    const cpu = await run(modelDir, 'cpu', 'float32', x, shape, false);
    for (const dtype of ['float16', 'bfloat16'] as CudaDType[]) {
      const head = await withEnv('VITMSN_CUDA_ATTENTION', 'head', () => run(modelDir, 'cuda', dtype, x, shape, false));
      const tile = await withEnv('VITMSN_CUDA_ATTENTION', 'tile', () => run(modelDir, 'cuda', dtype, x, shape, false));
      const auto = await run(modelDir, 'cuda', dtype, x, shape, false);
      console.log(
        `[gpu.test] ViT-S B=${B} ${dtype}: whole-head ${relL2(head, cpu).toExponential(2)}, 16-row ${relL2(tile, cpu).toExponential(2)} vs CPU fp32`,
      );
      expect(relL2(head, cpu), `${dtype} whole-head vs CPU`).toBeLessThanOrEqual(BOUND[dtype]);
      expect(relL2(tile, cpu), `${dtype} 16-row vs CPU`).toBeLessThanOrEqual(BOUND[dtype]);
      expect(relL2(head, tile), `${dtype} whole-head vs 16-row`).toBeLessThanOrEqual(BOUND[dtype]);
      expect(relL2(auto, head), `${dtype} auto picks the whole-head kernel here`).toBe(TOL.deterministic);
    }
  }, 300_000);

  it('the tanh GELU epilogue of cuBLASLt stays inside the bf16/fp16 bounds (exact GELU as reference)', async () => {
    const { modelDir } = await realModel('vit-s16');
    const x = syntheticPixels(2),
      shape = [2, 3, 224, 224];
    const cpu = await run(modelDir, 'cpu', 'float32', x, shape, false);
    for (const dtype of ['float16', 'bfloat16'] as CudaDType[]) {
      const fused = await withEnv('VITMSN_CUDA_GELU', 'epilogue', () => run(modelDir, 'cuda', dtype, x, shape, false));
      const exact = await withEnv('VITMSN_CUDA_GELU', 'exact', () => run(modelDir, 'cuda', dtype, x, shape, false));
      console.log(
        `[gpu.test] ViT-S ${dtype} vs CPU fp32: GELU epilogue ${relL2(fused, cpu).toExponential(2)}, exact GELU ${relL2(exact, cpu).toExponential(2)}`,
      );
      expect(relL2(fused, cpu)).toBeLessThanOrEqual(BOUND[dtype]);
      expect(relL2(exact, cpu)).toBeLessThanOrEqual(BOUND[dtype]);
    }
  }, 300_000);
});

// GPU JPEG decoding (decode: 'gpu'): nvJPEG's decode is not libjpeg-turbo's, so its pixels are
// measured against PIL's (printed; bounded loosely: a channel-order or layout bug is tens of levels),
// while the device resize must equal the CPU resize bit for bit on the same decoded pixels. encode()
// with decode: 'gpu' is compared with decode: 'cpu' (CPU-path images to the fp32 bound, device-decoded
// ones printed and bounded by the decoder's deviation).
describe.skipIf(!haveGpu)('CUDA JPEG decoding (decode: gpu)', () => {
  const PIL = path.join(__dirname, 'fixtures', 'pil');
  const pil = readSafetensors(path.join(PIL, 'pil_goldens.safetensors'));
  const cases = [
    { file: 'rgb420.jpg', w: 180, h: 180 },
    { file: 'rgb420.jpg', w: 50, h: 50 },
    { file: 'rgb444.jpg', w: 150, h: 100 },
    { file: 'icc.jpg', w: 64, h: 64 },
  ];
  let handle: NativeModel;
  let nvjpeg = '';
  beforeAll(async () => {
    const { native: cfg } = await readConfig(goldenDir('tiny-s8'));
    handle = await native().loadModel(goldenDir('tiny-s8'), cfg, { device: 'cuda:0', dtype: 'float32', threads: 1 });
    await handle
      .decodeJpegs(
        [readFileSync(path.join(PIL, 'rgb420.jpg'))],
        nativePreprocessConfig(defaultPreprocessorConfig(8, 8)),
      )
      .catch((e: { code?: string; message: string }) => {
        if (e.code !== 'ERR_DEVICE_UNAVAILABLE') throw e;
        nvjpeg = e.message;
      });
    if (nvjpeg) console.log(`[gpu.test] JPEG decoding skipped: ${nvjpeg}`);
  });
  afterAll(() => handle?.dispose());

  it('device-decoded pixels against PIL (deviation printed), deterministic', async (ctx) => {
    if (nvjpeg) return ctx.skip();
    for (const c of cases) {
      const pre = nativePreprocessConfig({ ...defaultPreprocessorConfig(c.h, c.w), resample: 2 });
      const file = readFileSync(path.join(PIL, c.file));
      const a = await handle.decodeJpegs([file], pre);
      const b = await handle.decodeJpegs([file], pre);
      expect('data' in a && 'data' in b, JSON.stringify(a)).toBe(true);
      const got = (a as { data: Uint8Array }).data;
      expect([...(b as { data: Uint8Array }).data]).toEqual([...got]);
      const want = pil[`${c.file}.${c.w}x${c.h}.r2`].data as Uint8Array;
      let max = 0,
        sum = 0,
        differ = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i] - want[i]);
        ((max = Math.max(max, d)), (sum += d), (differ += d ? 1 : 0));
      }
      console.log(
        `[gpu.test] nvJPEG vs PIL ${c.file} -> ${c.w}x${c.h}: mean |diff| ${(sum / want.length).toFixed(3)} levels, max ${max}, ${((100 * differ) / want.length).toFixed(1)}% of samples differ`,
      );
      expect(sum / want.length).toBeLessThanOrEqual(3);
    }
  });

  it("the device resize equals the CPU resize of the device's own decoded pixels, bit for bit", async (ctx) => {
    if (nvjpeg) return ctx.skip();
    for (const f of ['rgb420.jpg', 'rgb444.jpg']) {
      const file = readFileSync(path.join(PIL, f));
      const { width, height } = await sharp(file).metadata();
      for (const [w, h, r] of [
        [224, 224, 2],
        [97, 131, 3],
        [width!, 61, 1],
      ] as const) {
        const same = await handle.decodeJpegs(
          [file],
          nativePreprocessConfig(defaultPreprocessorConfig(height!, width!)),
        );
        const decoded = (same as { data: Uint8Array }).data; // no resize: nvJPEG's pixels as they are
        const pre = nativePreprocessConfig({ ...defaultPreprocessorConfig(h, w), resample: r });
        const onDevice = (await handle.decodeJpegs([file], pre)) as { data: Uint8Array };
        const onCpu = await native().preprocess([{ data: decoded, width: width!, height: height!, channels: 3 }], pre, {
          uint8: true,
        });
        const i = onDevice.data.findIndex((v, k) => v !== (onCpu.data as Uint8Array)[k]);
        expect(i, `${f} -> ${w}x${h} filter ${r}: first differing sample`).toBe(-1);
      }
    }
  });

  it("encode() with decode: 'gpu' agrees with decode: 'cpu' (mixed batch: device and CPU-path images)", async (ctx) => {
    if (nvjpeg) return ctx.skip();
    const { modelDir } = await realModel('vit-s16');
    const m = await loadModel(modelDir, { device: 'cuda', dtype: 'float32' });
    try {
      const tmp = mkdtempSync(path.join(tmpdir(), 'vitmsn-gpu-jpeg-'));
      const made = await Promise.all(
        ['chelsea.png', 'coffee.png', 'camera.png'].map(async (f, i) => {
          const out = path.join(tmp, `${i}.jpg`);
          await sharp(path.join(__dirname, 'fixtures', 'images', f))
            .resize(640, 480, { fit: 'fill' })
            .jpeg({ quality: 90 })
            .toFile(out);
          return out;
        }),
      );
      const device = [...made, path.join(PIL, 'rgb420.jpg'), path.join(PIL, 'rgb444.jpg')];
      const cpuPath = [
        path.join(PIL, 'gray.jpg'),
        path.join(PIL, 'cmyk.jpg'),
        path.join(PIL, 'exif6.jpg'),
        path.join(PIL, 'rgba.png'),
      ];
      const all = [...device, ...cpuPath];
      const gpu = await m.encode(all, { decode: 'gpu', batchSize: 16 });
      const cpu = await m.encode(all, { decode: 'cpu', batchSize: 16 });
      const D = gpu.shape[1];
      all.forEach((f, i) => {
        const e = relL2(gpu.data.subarray(i * D, (i + 1) * D), cpu.data.subarray(i * D, (i + 1) * D));
        if (i < device.length) {
          console.log(
            `[gpu.test] ViT-S/16 fp32 CLS, nvJPEG vs CPU decoding, ${path.basename(f)}: relative L2 ${e.toExponential(2)}`,
          );
          expect(e, f).toBeLessThanOrEqual(5e-2);
        } else {
          expect(e, f).toBeLessThanOrEqual(TOL.f32VsFloat64);
        }
      });
      rmSync(tmp, { recursive: true, force: true });
    } finally {
      await m.dispose();
    }
  }, 300_000);
});
