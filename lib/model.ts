/**
 * A loaded model: owns the native handle's lifecycle and the queue its calls share (dynamic
 * batching: call-queue.ts, batch-runner.ts, model-calls.ts).
 */
import { native, type NativeModel } from './binding';
import { BatchRunner } from './batch-runner';
import { BatchStats, type ModelStats } from './batch-stats';
import { CallQueue, type Call, type Item, type QueueStats, type ResolvedBatching } from './call-queue';
import { callSignal } from './cancel';
import { readConfig, type ViTMSNConfig } from './config';
import { fromNative, VitMsnError } from './errors';
import { alternatives, boolean, checkOptions, integer, invalid, nonEmptyString, oneOf } from './check';
import type { BackendInfo, DType, ForwardOptions, ForwardOutput, LoadOptions, Tensor } from './types';
import { checkForward, resolveBatching, resolveLoadOptions, type ModelShape } from './validate';
import {
  batchSizeOf,
  checkPreprocessorFits,
  DECODERS,
  forEachBatch,
  POOLINGS,
  type Classification,
  type ClassifyOptions,
  type EncodeOptions,
  type PreprocessOptions,
} from './encode';
import { DECODE_OPTION_KEYS, toList, type ImageInput } from './images';
import { defaultPreprocessorConfig, readPreprocessorConfig, type PreprocessorConfig } from './preprocessor';
import { resolveModelDir } from './hub/index';
import { copyOf, snapshotImages } from './inputs';
import { ForwardCall, ImageCall, prepareBatch, type BatchContext, type ImageOutput } from './model-calls';

const CALL_OPTION_KEYS = ['signal', 'timeoutMs'] as const;

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
  #batching: ResolvedBatching;
  #calls: CallQueue;
  #runner: BatchRunner;
  #stats = new BatchStats();
  #disposing: Promise<void> | undefined;

  /** @internal use {@link loadModel} */
  constructor(
    handle: NativeModel,
    config: ViTMSNConfig,
    shape: Omit<ModelShape, 'hasMaskToken'>,
    device: string,
    dtype: DType,
    preprocessor?: PreprocessorConfig,
    batching?: ResolvedBatching,
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
    this.#batching = batching ?? resolveBatching(undefined, device);
    this.#calls = new CallQueue(this.#batching);
    const ctx: BatchContext = {
      handle,
      addon: native(),
      preprocessor: this.preprocessor,
      shape: this.#shape,
      stats: this.#stats,
      parallelPreprocess: device.startsWith('cuda'),
    };
    this.#runner = new BatchRunner(
      this.#calls,
      (head) => this.#limitFor(head),
      (items) => prepareBatch(ctx, items),
      // On a GPU the next full batch runs beside the current one (its upload and launches overlap
      // the device's work); on the CPU the cores are the forward's own.
      device.startsWith('cuda') ? 2 : 1,
    );
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
   * and run in batches, so any number of images fits in memory; concurrent calls share batches
   * (see {@link LoadOptions.batching}). `signal` / `timeoutMs` cancel the call.
   *
   * @example
   * const { data, shape } = await model.encode(['a.jpg', 'b.png'], { pooling: 'cls', normalize: true });
   */
  encode(images: ImageInput | readonly ImageInput[], options?: EncodeOptions): Promise<Tensor> {
    try {
      this.#live();
      const o = checkOptions(
        options,
        [
          'pooling',
          'normalize',
          'batchSize',
          ...DECODE_OPTION_KEYS,
          'interpolatePosEncoding',
          'decode',
          ...CALL_OPTION_KEYS,
        ],
        'encode',
      );
      const pooling = oneOf(o.pooling, 'pooling', POOLINGS, 'cls');
      const normalize = boolean(o.normalize, 'normalize');
      return this.#images(images, o, { kind: 'embed', pooling, normalize }) as Promise<Tensor>;
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
      this.#live();
      const o = checkOptions(
        options,
        ['topK', 'batchSize', ...DECODE_OPTION_KEYS, 'interpolatePosEncoding', 'decode', ...CALL_OPTION_KEYS],
        'classify',
      );
      if (this.numLabels <= 0) {
        throw new VitMsnError(
          'ERR_NO_CLASSIFIER',
          'classify() needs a classification checkpoint (ViTMSNForImageClassification, with classifier.* weights); this one is a backbone: use encode()',
        );
      }
      const k = integer(o.topK, 'topK', 1, Number.MAX_SAFE_INTEGER, 5);
      return this.#images(images, o, { kind: 'probs', topK: k, id2label: this.config.id2label }) as Promise<
        Classification[][]
      >;
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
  }

  /** encode() and classify(): the images (read now) become items of the model's queue. */
  #images(
    images: ImageInput | readonly ImageInput[],
    o: Record<string, unknown>,
    output: ImageOutput,
  ): Promise<unknown> {
    const cap =
      o.batchSize === undefined && this.#batching.enabled ? Number.POSITIVE_INFINITY : batchSizeOf(o, this.device);
    checkPreprocessorFits(this.preprocessor, this.#shape, o.interpolatePosEncoding);
    boolean(o.interpolatePosEncoding, 'interpolatePosEncoding');
    const list = toList(snapshotImages(images));
    const decode = { maxPixels: o.maxPixels as number | undefined, maxBytes: o.maxBytes as number | undefined };
    const onDevice = oneOf(o.decode, 'decode', DECODERS, 'cpu') === 'gpu';
    if (onDevice && !this.device.startsWith('cuda'))
      invalid(`decode: 'gpu' needs a model on a CUDA device; this one runs on ${this.device}`);
    if (onDevice && !this.preprocessor.doResize)
      invalid(`decode: 'gpu' needs a preprocessor that resizes (${this.preprocessor.source} has do_resize false)`);
    const call = new ImageCall(list, output, o.interpolatePosEncoding === true, decode, cap, onDevice);
    // Images that keep their own sizes (no resize) cannot share a batch with other calls' images.
    const shared = this.#batching.enabled && this.preprocessor.doResize;
    return this.#submit(call, call.items(shared ? 'shared' : `call ${call.id}`), o);
  }

  /**
   * Queues a call, with its cancellation: an aborted or timed-out call leaves the queue at once
   * and rejects with the signal's reason; a full queue rejects it with ERR_OVERLOADED.
   */
  #submit(call: Call, items: Item[], o: { signal?: unknown; timeoutMs?: unknown }): Promise<unknown> {
    const cancel = callSignal(o.signal, o.timeoutMs);
    if (cancel.signal?.aborted) {
      cancel.dispose();
      return Promise.reject(cancel.signal.reason);
    }
    try {
      this.#calls.admit(call, items);
    } catch (e) {
      cancel.dispose();
      this.#stats.call(0, e);
      throw e;
    }
    if (cancel.signal) {
      const signal = cancel.signal;
      const abort = () => call.fail(signal.reason);
      signal.addEventListener('abort', abort, { once: true });
      call.onSettle(() => signal.removeEventListener('abort', abort));
    }
    call.onSettle(() => cancel.dispose());
    call.promise.then(
      () => this.#stats.call(performance.now() - call.enqueued),
      (e) => this.#stats.call(performance.now() - call.enqueued, e),
    );
    this.#runner.kick();
    return call.promise;
  }

  /**
   * The most images a batch starting with `head` may hold: maxBatch (with batching on), and for
   * images also what fits in the memory this process has left (results do not depend on it).
   * Counts per image the embed path's buffers (Model::embed: patches, the layers' activations, the
   * pooled rows and logits; no float32 pixels and no hidden states, whatever the pooling) plus three
   * copies of its resized uint8 pixels (the batch, the next batch prepared ahead, garbage not yet
   * collected).
   */
  #limitFor(head: Item): number {
    const limit = this.#batching.enabled ? this.#batching.maxBatch : Number.POSITIVE_INFINITY;
    const handle = this.#native;
    const { doResize, size } = this.preprocessor;
    if (!(head.call instanceof ImageCall) || !doResize || !handle) return limit;
    const C = this.#shape.numChannels;
    const wanted = Math.max(1, Math.min(limit, head.call.cap, 1e9));
    let fit: number;
    try {
      fit = handle.maxBatch(
        [C, size.height, size.width],
        {
          interpolatePosEncoding: head.call.interpolate,
          outputHiddenStates: false,
          outputAttentions: false,
          embed: true,
        },
        3 * 3 * size.height * size.width,
        wanted,
      );
    } catch {
      fit = wanted; // (a disposed handle, say): the forward's own checks still apply
    }
    return Math.max(1, fit); // one image that does not fit is refused by the forward's own check
  }

  /**
   * What the queue and its batches have done: waiting images and calls, batches and their sizes,
   * images per second, call latency percentiles, failures by code. It sorts the last 1024
   * latencies (~0.1 ms): for a check on every request, use {@link Model.queue}.
   */
  stats(): ModelStats {
    return this.#stats.snapshot(this.#calls.stats());
  }

  /** The queue alone (waiting images and calls, its limit): cheap enough for every request. */
  queue(): QueueStats {
    return this.#calls.stats();
  }

  /**
   * Runs the model on a batch of preprocessed images (`pixel_values` as transformers takes them).
   * Calls run in call order; concurrent calls of the same shape without hidden states, attentions
   * or masks may share one native batch (results are each caller's own). The event loop is never
   * blocked; the inputs are copied before this returns.
   *
   * @param pixelValues float32 [B, C, H, W], row-major.
   * @param shape `[B, C, H, W]`.
   * @example
   * const out = await model.forward(pixels, [2, 3, 224, 224], { outputHiddenStates: true });
   * const cls = out.lastHiddenState.data.subarray(0, model.config.hiddenSize);
   */
  forward(pixelValues: Float32Array, shape: readonly number[], options?: ForwardOptions): Promise<ForwardOutput> {
    try {
      this.#live();
      const { options: opts } = checkForward(this.#shape, pixelValues, shape, options);
      // Inputs are read now (inputs.ts): the queue keeps private copies, which the addon then
      // reads in place.
      if (opts.headMask) opts.headMask = copyOf(opts.headMask);
      if (opts.boolMaskedPos) opts.boolMaskedPos = copyOf(opts.boolMaskedPos);
      const call = new ForwardCall(copyOf(pixelValues), [...shape], opts);
      return this.#submit(call, [call.item(this.#batching.enabled)], options ?? {}) as Promise<ForwardOutput>;
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
      this.#disposing = this.#runner.whenIdle().then(() => handle?.dispose());
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
  nonEmptyString(source, 'source (a model folder or a hub id owner/name)');
  const opts = resolveLoadOptions(options);
  const dir = await resolveModelDir(source, options);
  const { config, native: nativeConfig } = await readConfig(dir);
  const preprocessor = await readPreprocessorConfig(dir, nativeConfig.imageHeight, nativeConfig.imageWidth);
  const addon = native();
  let device = opts.device;
  if (device === 'auto') device = addon.backends().some((b) => b.name === 'cuda' && b.available) ? 'cuda' : 'cpu';
  if (device === 'cuda') device = 'cuda:0';
  // Which dtypes a backend runs is the engine's fact (the CPU: float32, int8, and bfloat16 weights with
  // float32 accumulation); the message is ours.
  const backend = addon.backends().find((b) => b.name === (device === 'cpu' ? 'cpu' : 'cuda'));
  if (backend && !backend.dtypes.includes(opts.dtype)) {
    throw new VitMsnError(
      'ERR_UNSUPPORTED_DTYPE',
      `dtype '${opts.dtype}' is not supported on ${device}; use ${alternatives(backend.dtypes)}`,
    );
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
  return new Model(handle, config, shape, device, opts.dtype, preprocessor, resolveBatching(options?.batching, device));
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
