// Types for fixtures.mjs (plain JS so bench/cpu-vs-ort.mjs can share it).
import type { InferenceSession } from 'onnxruntime-node';

export type RealArch = 'vit-s16' | 'vit-b16';

/** test/fixtures/anchors in this repository. */
export declare const ANCHORS_DIR: string;
/** Architectures the anchors have ONNX graphs for. */
export declare const REAL_ARCHS: readonly RealArch[];

/**
 * A ViT-MSN model folder (HF layout, for loadModel) and transformers' ONNX export of the very same
 * weights (for onnxruntime). Generated on first use (a few seconds), then cached in os.tmpdir().
 */
export declare function realModel(arch: RealArch): Promise<{ modelDir: string; onnxPath: string }>;

/** A cached onnxruntime-node session: CPU, fp32, `threads` intra-op threads, all graph optimizations. */
export declare function ortSession(onnxPath: string, threads?: number): Promise<InferenceSession>;

/** Runs the ONNX model on pixel values [B, 3, H, W]; returns last_hidden_state [B, T, D] (flat). */
export declare function ortRun(
  onnxPath: string,
  input: Float32Array,
  shape: number[],
  threads?: number,
): Promise<Float32Array>;

/** Releases every cached onnxruntime session. */
export declare function closeOrt(): Promise<void>;

/** ||a − b|| / ||b|| in double precision (b is the reference). */
export declare function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number;

/** Deterministic [B, 3, H, W] input in [-1.5, 1.5]; every batch item differs. */
export declare function syntheticPixels(B: number, H?: number, W?: number): Float32Array;

/** facebook/vit-msn-*'s preprocessor_config.json. */
export declare const FACEBOOK_PREPROCESSOR: Readonly<{
  do_normalize: boolean;
  do_resize: boolean;
  feature_extractor_type: string;
  image_mean: readonly number[];
  image_std: readonly number[];
  resample: number;
  size: number;
}>;

/**
 * A copy of the tiny golden model `name` in `dir` with the facebook preprocessor config resizing to
 * `size` (created if missing). Returns `dir`.
 */
export declare function tinyModelFolder(dir: string, name: 'tiny-s8' | 'tiny-cls' | 'tiny-mask', size: number): string;
