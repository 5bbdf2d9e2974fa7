/**
 * A loaded model: owns the native handle's lifecycle and a FIFO queue of forward calls.
 */
import { native, type NativeEmbedResult, type NativeForwardOptions, type NativeModel } from './binding';
import { readConfig, type ViTMSNConfig } from './config';
import { fromNative, VitMsnError } from './errors';
import { formatValue } from './format-value';
import type { BackendInfo, DType, ForwardOptions, ForwardOutput, LoadOptions, Tensor } from './types';
import { checkForward, resolveLoadOptions, type ModelShape } from './validate';
import {
  batchSizeOf, checkOptions, checkPreprocessorFits, forEachBatch, POOLINGS, topK,
  type Classification, type ClassifyOptions, type EncodeOptions, type PreprocessOptions,
} from './encode';
import { DECODE_OPTION_KEYS, type ImageInput } from './images';
import { defaultPreprocessorConfig, readPreprocessorConfig, type PreprocessorConfig } from './preprocessor';
import { resolveModelDir } from './hub/index';
import { copyOf, snapshotImages } from './inputs';

/**
 * A ViT-MSN model on one device. Create it with {@link loadModel}; release it with
 * {@link Model.dispose} (or `await using`).
 *
 * @example
 * const model = await loadModel('./vit-msn-small');
 * const { lastHiddenState } = await model.forward(pixels, [1, 3, 224, 224]);
 * await model.dispose();
 */
export class Model {
  /** config.json, keys in camelCase, with transformers' defaults filled in. */
  readonly config: ViTMSNConfig;
  /** The device that was chosen ('cpu', or 'cuda:N'). */
  readonly device: string;
  readonly dtype: DType;
  /** Whether the checkpoint has embeddings.mask_token (needed by boolMaskedPos). */
  readonly hasMaskToken: boolean;
  /** Classifier outputs, or 0 when the checkpoint has no classifier. */
  readonly numLabels: number;
  /** How images become pixel_values: preprocessor_config.json, or the checkpoints' defaults. */
  readonly preprocessor: PreprocessorConfig;

  #native: NativeModel | undefined;
  #shape: ModelShape;
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0; // calls queued or running on this model
  #disposing: Promise<void> | undefined;

  /** @internal use {@link loadModel} */
  constructor(
    handle: NativeModel, config: ViTMSNConfig, shape: Omit<ModelShape, 'hasMaskToken'>, device: string, dtype: DType,
    preprocessor?: PreprocessorConfig,
  ) {
    const info = handle.info();
    this.#native = handle;
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    this.hasMaskToken = info.hasMaskToken;
    this.numLabels = info.numLabels;
    this.#shape = { ...shape, hasMaskToken: info.hasMaskToken };
    this.preprocessor = preprocessor ?? defaultPreprocessorConfig(shape.imageHeight, shape.imageWidth);
  }

  /**
   * Images → `pixel_values` exactly as HF's PIL image processor makes them (EXIF orientation,
   * convert('RGB'), Pillow's resize, rescale, normalize), per {@link Model.preprocessor}.
   *
   * @example
   * const { data, shape } = await model.preprocess(['cat.jpg', pngBuffer]); // shape [2, 3, 224, 224]
   */
  async preprocess(images: ImageInput | readonly ImageInput[], options?: PreprocessOptions): Promise<Tensor> {
    try {
      this.#live();
      const o = checkOptions(options, ['batchSize', ...DECODE_OPTION_KEYS], 'preprocess');
      const parts: Tensor[] = [];
      const list = snapshotImages(images);
      await forEachBatch(native(), list, this.preprocessor, batchSizeOf(o), o, async (t) => void parts.push(t));
      if (parts.length === 1) return parts[0];
      const [, C, H, W] = parts[0].shape;
      const N = parts.reduce((n, t) => n + t.shape[0], 0);
      const data = new Float32Array(N * C * H * W);
      let off = 0;
      for (const t of parts) {
        data.set(t.data, off);
        off += t.data.length;
      }
      return { data, shape: [N, C, H, W] };
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * One embedding per image: `{ data, shape: [N, hiddenSize] }`. Images are decoded, preprocessed
   * and run in batches (`batchSize`, default 16), so any number of images fits in memory.
   *
   * @example
   * const { data, shape } = await model.encode(['a.jpg', 'b.png'], { pooling: 'cls', normalize: true });
   */
  encode(images: ImageInput | readonly ImageInput[], options?: EncodeOptions): Promise<Tensor> {
    try {
      const handle = this.#live();
      const o = checkOptions(options, ['pooling', 'normalize', 'batchSize', ...DECODE_OPTION_KEYS, 'interpolatePosEncoding'], 'encode');
      const pooling = o.pooling ?? 'cls';
      if (!POOLINGS.includes(pooling as never)) {
        throw new VitMsnError('ERR_INVALID_ARGUMENT', `pooling must be one of ${POOLINGS.map((p) => `'${p}'`).join(', ')}, got ${formatValue(o.pooling)}`);
      }
      const normalize = o.normalize ?? false;
      if (typeof normalize !== 'boolean') throw new VitMsnError('ERR_INVALID_ARGUMENT', 'normalize must be a boolean');
      const asked = batchSizeOf(o);
      checkPreprocessorFits(this.preprocessor, this.#shape, o.interpolatePosEncoding);
      const list = snapshotImages(images);
      return this.#enqueue(async () => {
        const D = this.config.hiddenSize;
        const chunks: Float32Array[] = [];
        const batchSize = this.#fittingBatch(handle, asked, o.interpolatePosEncoding === true, pooling === 'cls-prenorm');
        const n = await forEachBatch(native(), list, this.preprocessor, batchSize, o, async (px, start) => {
          const { options: fwd } = checkForward(this.#shape, px.data, px.shape, { interpolatePosEncoding: o.interpolatePosEncoding as boolean | undefined });
          const r = await embedFitting(handle, px, fwd, { pooling: pooling as string, normalize });
          chunks[start / batchSize] = r.embeddings!;
        });
        const data = new Float32Array(n * D);
        chunks.forEach((c, i) => data.set(c, i * batchSize * D));
        return { data, shape: [n, D] };
      });
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /**
   * The `topK` most probable classes of each image (softmax of the classifier's logits), labels
   * from config.json's id2label. Needs a classification checkpoint (ERR_NO_CLASSIFIER otherwise).
   *
   * @example
   * const [[best]] = await model.classify('cat.jpg', { topK: 1 }); // { label: 'tabby, tabby cat', index: 281, score: 0.93 }
   */
  classify(images: ImageInput | readonly ImageInput[], options?: ClassifyOptions): Promise<Classification[][]> {
    try {
      const handle = this.#live();
      const o = checkOptions(options, ['topK', 'batchSize', ...DECODE_OPTION_KEYS, 'interpolatePosEncoding'], 'classify');
      if (this.numLabels <= 0) {
        throw new VitMsnError('ERR_NO_CLASSIFIER', 'classify() needs a classification checkpoint (ViTMSNForImageClassification, with classifier.* weights); this one is a backbone: use encode()');
      }
      const k = o.topK ?? 5;
      if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1) throw new VitMsnError('ERR_INVALID_ARGUMENT', `topK must be a positive integer, got ${formatValue(o.topK)}`);
      const asked = batchSizeOf(o);
      checkPreprocessorFits(this.preprocessor, this.#shape, o.interpolatePosEncoding);
      const id2label = this.config.id2label;
      const list = snapshotImages(images);
      return this.#enqueue(async () => {
        const out: Classification[][] = [];
        const batchSize = this.#fittingBatch(handle, asked, o.interpolatePosEncoding === true, false);
        await forEachBatch(native(), list, this.preprocessor, batchSize, o, async (px) => {
          const { options: fwd } = checkForward(this.#shape, px.data, px.shape, { interpolatePosEncoding: o.interpolatePosEncoding as boolean | undefined });
          const r = await embedFitting(handle, px, fwd, { probabilities: true });
          for (let b = 0; b < r.B; b++) {
            out.push(topK(r.probabilities!.subarray(b * r.numLabels, (b + 1) * r.numLabels), Math.min(k, r.numLabels), id2label));
          }
        });
        return out;
      });
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /** Runs `job` after the calls already queued on this model; errors come out as VitMsnErrors. */
  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    return this.#schedule(job).catch((e) => {
      throw fromNative(e);
    });
  }

  /** Whether a call made now would start at once (nothing queued or running on this model). */
  #idle(): boolean {
    return this.#pending === 0;
  }

  /**
   * Runs `job` after the calls already queued; when there are none it starts synchronously, so a
   * native call inside it reads its inputs before this returns.
   */
  #schedule<T>(job: () => Promise<T>): Promise<T> {
    let started: Promise<T>;
    if (this.#idle()) {
      try {
        started = job();
      } catch (e) {
        started = Promise.reject(e);
      }
    } else {
      started = this.#queue.then(job);
    }
    this.#pending++;
    const run = started.finally(() => void this.#pending--);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * encode()/classify()'s batch: the one asked for, or fewer images when a batch that large would
   * not fit in the memory this process has left (the results do not depend on the batch size).
   * Counts per image the forward's buffers plus three float32 copies of its pixels (preprocessed
   * batch, the addon's copy, the next batch decoded ahead).
   */
  #fittingBatch(handle: NativeModel, asked: number, interpolate: boolean, hiddenStates: boolean): number {
    const { doResize, size } = this.preprocessor;
    if (!doResize) return asked; // images keep their own sizes: each batch is checked when it runs
    const C = this.#shape.numChannels;
    const fit = handle.maxBatch([C, size.height, size.width], { interpolatePosEncoding: interpolate, outputHiddenStates: hiddenStates, outputAttentions: false },
      3 * 4 * C * size.height * size.width, asked);
    if (fit < 1) {
      throw new VitMsnError('ERR_OUT_OF_MEMORY', `one ${size.height}x${size.width} image does not fit in the memory this process has left`);
    }
    return fit;
  }

  /**
   * Runs the model on a batch of preprocessed images (`pixel_values` as transformers takes them).
   * Calls on one model run one after another in call order; the event loop is never blocked.
   *
   * @param pixelValues float32 [B, C, H, W], row-major.
   * @param shape `[B, C, H, W]`.
   * @example
   * const out = await model.forward(pixels, [2, 3, 224, 224], { outputHiddenStates: true });
   * const cls = out.lastHiddenState.data.subarray(0, model.config.hiddenSize);
   */
  forward(pixelValues: Float32Array, shape: readonly number[], options?: ForwardOptions): Promise<ForwardOutput> {
    try {
      const handle = this.#live();
      const { options: opts } = checkForward(this.#shape, pixelValues, shape, options);
      // Inputs are read now: an idle model's native call copies them before this returns; a call
      // that waits gets private copies (see inputs.ts).
      let pixels = pixelValues;
      const dims = [...shape];
      if (!this.#idle()) {
        pixels = copyOf(pixelValues);
        if (opts.headMask) opts.headMask = copyOf(opts.headMask);
        if (opts.boolMaskedPos) opts.boolMaskedPos = copyOf(opts.boolMaskedPos);
      }
      const run = this.#schedule(() => handle.forward(pixels, dims, opts));
      return run.then(
        (r) => {
          const tensor = (data: Float32Array, s: number[]): Tensor => ({ data, shape: s });
          const out: ForwardOutput = { lastHiddenState: tensor(r.lastHiddenState, [r.B, r.T, r.D]) };
          if (opts.outputHiddenStates) out.hiddenStates = r.hiddenStates.map((d) => tensor(d, [r.B, r.T, r.D]));
          if (opts.outputAttentions) out.attentions = r.attentions.map((d) => tensor(d, [r.B, r.H, r.T, r.T]));
          if (r.logits) out.logits = tensor(r.logits, [r.B, r.numLabels]);
          return out;
        },
        (e) => {
          throw fromNative(e);
        },
      );
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /**
   * Releases the model's memory once the calls already queued have finished. Later calls throw
   * ERR_DISPOSED. Safe to call more than once.
   */
  dispose(): Promise<void> {
    if (!this.#disposing) {
      const handle = this.#native;
      this.#native = undefined;
      this.#disposing = this.#queue.then(() => handle?.dispose());
    }
    return this.#disposing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  #live(): NativeModel {
    if (!this.#native) throw new VitMsnError('ERR_DISPOSED', 'the model has been disposed');
    return this.#native;
  }
}

/**
 * handle.embed() on one batch; a batch of several images that the addon refuses for memory
 * (ERR_OUT_OF_MEMORY: garbage not yet collected, other work in the process) runs in halves. The
 * results do not depend on how images are batched.
 */
async function embedFitting(
  handle: NativeModel, px: Tensor, fwd: NativeForwardOptions, how: Parameters<NativeModel['embed']>[3],
): Promise<NativeEmbedResult> {
  try {
    return await handle.embed(px.data, px.shape, fwd, how);
  } catch (e) {
    const B = px.shape[0];
    if ((e as { code?: string }).code !== 'ERR_OUT_OF_MEMORY' || B < 2) throw e;
    const per = px.data.length / B, half = Math.floor(B / 2);
    const part = (from: number, to: number) =>
      embedFitting(handle, { data: px.data.subarray(from * per, to * per), shape: [to - from, ...px.shape.slice(1)] }, fwd, how);
    const a = await part(0, half);
    const b = await part(half, B);
    const join = (x: Float32Array | null, y: Float32Array | null) => {
      if (!x || !y) return null;
      const out = new Float32Array(x.length + y.length);
      out.set(x);
      out.set(y, x.length);
      return out;
    };
    return { ...a, B, embeddings: join(a.embeddings, b.embeddings), probabilities: join(a.probabilities, b.probabilities) };
  }
}

/**
 * Loads a Hugging Face ViT-MSN model: a local folder (config.json + model.safetensors or
 * pytorch_model.bin, either possibly sharded with its .index.json), or — when no such path
 * exists — a hub id `owner/name`, downloaded into the Hugging Face cache (see
 * {@link LoadOptions.revision}, {@link LoadOptions.onProgress}; HF_HUB_OFFLINE, HF_TOKEN and
 * HF_ENDPOINT are honoured). Base (`ViTMSNModel`) and classification
 * (`ViTMSNForImageClassification`, keys under `vit.`) checkpoints both load.
 *
 * @example
 * import { loadModel } from 'vitmsn';
 * const model = await loadModel('./vit-msn-small', { device: 'cpu', threads: 2 });
 * const hub = await loadModel('facebook/vit-msn-small', { onProgress: (p) => console.log(p.file, p.loaded) });
 */
export async function loadModel(source: string, options?: LoadOptions): Promise<Model> {
  if (typeof source !== 'string' || source.length === 0) {
    throw new VitMsnError('ERR_INVALID_ARGUMENT', 'source must be a non-empty string (a model folder or a hub id owner/name)');
  }
  const opts = resolveLoadOptions(options);
  const dir = await resolveModelDir(source, options);
  const { config, native: nativeConfig } = await readConfig(dir);
  const preprocessor = await readPreprocessorConfig(dir, nativeConfig.imageHeight, nativeConfig.imageWidth);
  const addon = native();
  let device = opts.device;
  if (device === 'auto') device = addon.backends().some((b) => b.name === 'cuda' && b.available) ? 'cuda' : 'cpu';
  if (device === 'cuda') device = 'cuda:0';
  // The CPU runs float32, and bfloat16 weights with float32 accumulation (~1e-2 relative error).
  if (device === 'cpu' && opts.dtype !== 'float32' && opts.dtype !== 'bfloat16') {
    throw new VitMsnError('ERR_UNSUPPORTED_DTYPE', `dtype '${opts.dtype}' is not supported on the CPU; use 'float32' or 'bfloat16'`);
  }
  let handle: NativeModel;
  try {
    handle = await addon.loadModel(dir, nativeConfig, { device, dtype: opts.dtype, threads: opts.threads });
  } catch (e) {
    throw fromNative(e);
  }
  const shape = {
    numChannels: nativeConfig.numChannels,
    imageHeight: nativeConfig.imageHeight,
    imageWidth: nativeConfig.imageWidth,
    patchSize: nativeConfig.patchSize,
    numHiddenLayers: nativeConfig.numHiddenLayers,
    numAttentionHeads: nativeConfig.numAttentionHeads,
  };
  return new Model(handle, config, shape, device, opts.dtype, preprocessor);
}

/**
 * Every backend this build knows, whether it can run here, and why (not).
 *
 * @example
 * for (const b of backends()) console.log(b.name, b.available, b.detail);
 */
export function backends(): BackendInfo[] {
  return native().backends();
}
