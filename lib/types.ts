/** Public types of vitmsn's API. */

/** A dense float32 tensor, row-major. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** Where a model runs. 'auto' picks CUDA when usable, else the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

/** Precision of weights and activations. The CPU runs 'float32' (exact) and 'bfloat16' (bf16 weights and
 * GEMM inputs, float32 accumulation: ~1e-2 relative error, much faster where the CPU has AMX or avx512_bf16). */
export type DType = 'float32' | 'float16' | 'bfloat16';

export interface LoadOptions {
  /** Default 'auto'. */
  device?: Device;
  /** Default 'float32'. */
  dtype?: DType;
  /** CPU threads; default: the physical cores this process may use. */
  threads?: number;
}

export interface ForwardOptions {
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
}
