/**
 * The only door to the native addon: loads it (prebuilt binary or local build, through
 * node-gyp-build) and declares its typed contract. Nothing else in lib/ touches the addon.
 */
import path from 'node:path';
import { VitMsnError } from './errors';
import type { LogRegFit } from './probe/logreg';
import type { DType } from './types';

/** The numeric config the engine needs (see native/engine/model/config.h). */
export interface NativeConfig {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  imageHeight: number;
  imageWidth: number;
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  qkvBias: boolean;
  numLabels: number; // -1 when config.json does not say
}

export interface NativeForwardOptions {
  outputHiddenStates: boolean;
  outputAttentions: boolean;
  interpolatePosEncoding: boolean;
  headMask?: Float32Array;
  boolMaskedPos?: Uint8Array;
  /** The pixels are the library's own array: the addon reads them in place instead of copying. */
  borrowPixels?: boolean;
}

export interface NativeForwardResult {
  B: number;
  T: number;
  D: number;
  H: number;
  lastHiddenState: Float32Array;
  hiddenStates: Float32Array[];
  attentions: Float32Array[];
  logits: Float32Array | null;
  numLabels: number;
}

/** A preprocessor config as the addon takes it (lib/encode.ts nativePreprocessConfig). */
export interface NativePreprocessConfig {
  doResize: boolean;
  height: number;
  width: number;
  resample: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: number[];
  imageStd: number[];
}

export interface NativeEmbedResult {
  B: number;
  D: number;
  numLabels: number;
  embeddings: Float32Array | null; // [B, D] when a pooling was asked
  probabilities: Float32Array | null; // [B, numLabels] softmax when asked
  /** With JPEG files: those the device decoder did not take; then nothing ran. */
  rejected?: Array<{ index: number; reason: string }>;
}

export interface NativeModel {
  forward(pixels: Float32Array, shape: number[], options: NativeForwardOptions): Promise<NativeForwardResult>;
  /**
   * The embed path: resized uint8 RGB levels [B, H, W, 3] (preprocess with { uint8: true }),
   * normalized inside the backend's patchify per `options.preprocess`; only the pooled rows and/or
   * softmax probabilities come back. The pixels are read in place until the promise settles.
   * With B JPEG files in place of the pixels (a CUDA model, decode: 'gpu'): decoded and resized to
   * H x W on the device, or, when the device decoder refuses some, the answer lists them in
   * `rejected` and nothing ran.
   */
  embed(
    pixels: Uint8Array | Uint8Array[],
    shape: number[],
    options: { interpolatePosEncoding: boolean; preprocess: NativePreprocessConfig },
    embed: { pooling?: string; normalize?: boolean; probabilities?: boolean },
  ): Promise<NativeEmbedResult>;
  /**
   * GPU decoding alone (a CUDA model), for measuring it against the CPU path: JPEG files decoded
   * and resized on the device to the preprocessor's size, [B, H, W, 3] levels; or the files the
   * device decoder did not take.
   */
  decodeJpegs(
    files: Uint8Array[],
    preprocess: NativePreprocessConfig,
  ): Promise<{ data: Uint8Array; shape: number[] } | { rejected: Array<{ index: number; reason: string }> }>;
  info(): { device: string; backend: string; hasMaskToken: boolean; numLabels: number };
  /**
   * Images of shape [C, H, W] (at most `wanted`) that one forward can take with the memory left now
   * (0: not even one); with options.embed, one embed() call (encode() and classify()).
   */
  maxBatch(
    shape: [number, number, number],
    options: NativeForwardOptions & { embed?: boolean },
    hostBytesPerImage: number,
    wanted: number,
  ): number;
  dispose(): void;
}

export interface NativeBackendInfo {
  name: string;
  compiled: boolean;
  available: boolean;
  detail: string;
  dtypes: DType[];
}

/** One VITMSN_* environment switch (native/common/knobs.cc is the table). */
export interface NativeKnob {
  name: string;
  values: string;
  default: string;
  read: string;
  meaning: string;
  /** Its value in this process's environment, '' when unset. */
  value: string;
}

export interface NativeLogRegTask {
  /** [N, D] row-major. */
  X: Float64Array;
  /** [N], class indices in [0, K). */
  y: Int32Array;
  N: number;
  D: number;
  K: number;
  Cs: readonly number[];
  /** Held-out rows [Ntest, D] and their labels, to count correct predictions per C. */
  Xtest?: Float64Array;
  ytest?: Int32Array;
}

/** A fit as lib/probe/logreg.ts defines it; with Xtest/ytest also the held-out rows predicted right. */
export type NativeLogRegFit = LogRegFit & { correct?: number };

export interface NativeAddon {
  loadModel(
    dir: string,
    config: NativeConfig,
    options: { device: string; dtype: string; threads: number },
  ): Promise<NativeModel>;
  backends(): NativeBackendInfo[];
  defaultThreads(): number;
  knobs(): NativeKnob[];
  /**
   * HF's PIL processor on decoded pixels → { data: Float32Array, shape: [N, 3, H, W] }; with
   * { uint8: true }, the resized RGB levels before rescale/normalize: { data: Uint8Array, shape: [N, H, W, 3] }.
   * { parallel: true } spreads the images over every core (a process-wide pool).
   */
  preprocess(
    images: Array<{
      data: Uint8Array | Uint16Array;
      width: number;
      height: number;
      channels: number;
      format?: 'CMYK' | 'I;16';
    }>,
    config: NativePreprocessConfig,
    options?: { uint8?: boolean; parallel?: boolean },
  ): Promise<{ data: Float32Array | Uint8Array; shape: number[] }>;
  /**
   * The linear probe's solver (native/engine/probe/logreg.h) on a worker thread: per task, one L-BFGS fit
   * per C (warm-started along Cs), optionally scored on held-out rows (`correct`: rows whose first
   * argmax equals ytest). Inputs are copied at call time. Tasks run on up to `threads` threads
   * (0/absent: all hardware threads); results do not depend on the thread count.
   */
  fitLogRegPaths(
    tasks: NativeLogRegTask[],
    options?: { tol?: number; maxIter?: number; threads?: number },
  ): Promise<NativeLogRegFit[][]>;
}

let addon: NativeAddon | undefined;

/** Loads the addon once; throws ERR_ADDON_LOAD with the reason when no usable binary exists. */
export function native(): NativeAddon {
  if (addon) return addon;
  const root = path.join(__dirname, '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = load(root);
  } catch (e) {
    throw new VitMsnError(
      'ERR_ADDON_LOAD',
      `vitmsn's native addon could not be loaded (${(e as Error).message}). ` +
        'Reinstall the package, or build it with `npm run build:native` (needs a C++17 compiler and cmake).',
      { cause: e },
    );
  }
  return addon;
}
