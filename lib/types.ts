/** Public types of vitmsn's API. */

/** A dense float32 tensor, row-major. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** Where a model runs. 'auto' picks CUDA when usable, else the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

import type { BatchingOptions } from './call-queue';

/** Precision of weights and activations. The CPU runs 'float32' (exact), 'bfloat16' (bf16 weights and
 * GEMM inputs, float32 accumulation: ~1e-2 relative error, much faster where the CPU has AMX or avx512_bf16)
 * and 'int8' (encoder Linears with int8 per-channel weights and per-token uint8 activations, int32
 * accumulation; AMX or AVX512-VNNI where the CPU has them; patch embedding bf16, classifier float32).
 * CUDA runs float32, float16 and bfloat16: weights and activations are stored in the dtype, arithmetic is float32
 * (float16 ≈ 1.2e-3, bfloat16 ≈ 1e-2 relative error against float64; see bench/GPU-RESULTS.md). */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int8';

export interface LoadOptions {
  /** Default 'auto'. */
  device?: Device;
  /** Default 'float32'. */
  dtype?: DType;
  /** CPU threads, 1 to 1024; 0 or unset: one per physical core this process may use. */
  threads?: number;
  // ---- when loadModel is given a hub id (`owner/name`) rather than an existing folder ----
  /** Branch, tag or commit hash to download. Default 'main'. */
  revision?: string;
  /**
   * Called as each file downloads: `file` is its path in the repository, `loaded` the bytes
   * received so far, `total` its size when the server said. Not called for files already cached.
   */
  onProgress?: (progress: DownloadProgress) => void;
  /** Hub cache folder. Default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Access token for private or gated models. Default: $HF_TOKEN, else the `huggingface-cli login` token file. */
  token?: string;
  /** Use only the cache, never the network. Default: whether $HF_HUB_OFFLINE is set to 1/true/yes/on. */
  offline?: boolean;
  /**
   * Dynamic batching of concurrent calls (on by default): concurrent encode()/classify() calls, and
   * forward() calls of one shape, share native batches of up to `maxBatch` images, a batch that is
   * not full waiting up to `maxDelayMs` for more while the model is idle; past `maxQueue` waiting
   * images a call rejects with ERR_OVERLOADED. `false`: each call runs alone, in call order.
   */
  batching?: false | BatchingOptions;
}

/** Cancellation, for forward(), encode() and classify(). */
export interface CallOptions {
  /** Aborting it removes the call from the queue (or drops its results) and rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Rejects with a DOMException named 'TimeoutError' after this many ms (the call leaves the queue). */
  timeoutMs?: number;
}

/** Progress of one file's download (see {@link LoadOptions.onProgress}). */
export interface DownloadProgress {
  file: string;
  loaded: number;
  total: number | undefined;
}

export interface ForwardOptions extends CallOptions {
  /** Also return the L + 1 hidden states (embeddings, then each layer's output before the final LayerNorm). */
  outputHiddenStates?: boolean;
  /** Also return the L attention-probability tensors [B, heads, T, T] (after headMask). */
  outputAttentions?: boolean;
  /** Run at a resolution other than the trained one, resizing the position table (PyTorch bicubic). */
  interpolatePosEncoding?: boolean;
  /** Multiplies each head's attention probabilities: [heads] (every layer) or [layers · heads]. */
  headMask?: Float32Array;
  /** [B · N] of 0/1: patches replaced by embeddings.mask_token (N = patches per image). */
  boolMaskedPos?: Uint8Array;
}

export interface ForwardOutput {
  /** [B, T, D]: the final LayerNorm's output; T = 1 + patches (CLS first). */
  lastHiddenState: Tensor;
  /** L + 1 tensors [B, T, D] when `outputHiddenStates`. */
  hiddenStates?: Tensor[];
  /** L tensors [B, heads, T, T] when `outputAttentions`. */
  attentions?: Tensor[];
  /** [B, numLabels] when the checkpoint has a classifier (`classifier.*`). */
  logits?: Tensor;
}

/** One backend of this build, whether it can run here, and why (not). */
export interface BackendInfo {
  name: string;
  compiled: boolean;
  available: boolean;
  detail: string;
  /** The dtypes this backend runs (loadModel refuses others with ERR_UNSUPPORTED_DTYPE). */
  dtypes: DType[];
}
