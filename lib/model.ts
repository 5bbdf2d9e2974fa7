/**
 * A loaded model: owns the native handle's lifecycle and a FIFO queue of forward calls.
 */
import { native, type NativeModel } from './binding';
import { readConfig, type ViTMSNConfig } from './config';
import { fromNative, VitMsnError } from './errors';
import type { BackendInfo, DType, ForwardOptions, ForwardOutput, LoadOptions, Tensor } from './types';
import { checkForward, resolveLoadOptions, type ModelShape } from './validate';

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

  #native: NativeModel | undefined;
  #shape: ModelShape;
  #queue: Promise<unknown> = Promise.resolve();
  #disposing: Promise<void> | undefined;

  /** @internal use {@link loadModel} */
  constructor(handle: NativeModel, config: ViTMSNConfig, shape: Omit<ModelShape, 'hasMaskToken'>, device: string, dtype: DType) {
    const info = handle.info();
    this.#native = handle;
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    this.hasMaskToken = info.hasMaskToken;
    this.numLabels = info.numLabels;
    this.#shape = { ...shape, hasMaskToken: info.hasMaskToken };
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
      // The addon copies the inputs now, so the caller may reuse its buffers as soon as this returns.
      const run = this.#queue.then(
        () => handle.forward(pixelValues, [...shape], opts),
      );
      this.#queue = run.catch(() => undefined);
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
 * Loads a Hugging Face ViT-MSN model folder (config.json + model.safetensors, or sharded
 * safetensors with model.safetensors.index.json). Base (`ViTMSNModel`) and classification
 * (`ViTMSNForImageClassification`, keys under `vit.`) checkpoints both load.
 *
 * @example
 * import { loadModel } from 'vitmsn';
 * const model = await loadModel('./vit-msn-small', { device: 'cpu', threads: 2 });
 */
export async function loadModel(dir: string, options?: LoadOptions): Promise<Model> {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new VitMsnError('ERR_INVALID_ARGUMENT', 'dir must be a non-empty string (a model folder)');
  }
  const opts = resolveLoadOptions(options);
  const { config, native: nativeConfig } = await readConfig(dir);
  const addon = native();
  let device = opts.device;
  if (device === 'auto') device = addon.backends().some((b) => b.name === 'cuda' && b.available) ? 'cuda' : 'cpu';
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
  return new Model(handle, config, shape, device, opts.dtype);
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
