/**
 * The image pipeline behind Model.preprocess / encode / classify: batching and decode-ahead. Each
 * batch is decoded by sharp (in parallel on libuv's pool), preprocessed by one native call and run
 * by one native call; the next batch decodes while the current one runs. Only one or two batches
 * of decoded pixels are alive at a time, whatever the number of images. No math here.
 */
import type { NativeAddon } from './binding';
import { VitMsnError } from './errors';
import { integer } from './check';
import { decodeImage, toList, type DecodedImage, type DecodeOptions, type ImageInput } from './images';
import type { PreprocessorConfig } from './preprocessor';
import type { CallOptions, Tensor } from './types';

/** How encode() turns the token sequence into one vector per image. */
export type Pooling = 'cls' | 'cls-prenorm' | 'mean';
export const POOLINGS: readonly Pooling[] = ['cls', 'cls-prenorm', 'mean'];

/** Where encode() / classify() decode JPEG files. */
export const DECODERS = ['cpu', 'gpu'] as const;

/** Images per native call when the caller does not say: a good GEMM size, little memory. */
export const DEFAULT_BATCH_SIZE = 16;
/**
 * The same on a GPU, for encode() / classify() with batching off: a GPU needs large batches to be
 * busy (ViT-B/16 bf16 runs 14.8k img/s at batch 256 on an H200, bench/GPU-RESULTS.md). 128 is
 * a starting point, to be tuned on a GPU with bench/encode.mjs; memory still bounds it (maxBatch).
 */
export const DEFAULT_GPU_BATCH_SIZE = 128;

export interface PreprocessOptions extends DecodeOptions {
  /** Images decoded at a time (memory bound); default 16. */
  batchSize?: number;
}

export interface EncodeOptions extends DecodeOptions, CallOptions {
  /**
   * 'cls' (default): the CLS token of last_hidden_state, what HF users take.
   * 'cls-prenorm': the CLS token before the final LayerNorm (what MSN's own evaluation used).
   * 'mean': the mean of the patch tokens of last_hidden_state (CLS excluded).
   */
  pooling?: Pooling;
  /** L2-normalise each row (torch.nn.functional.normalize). Default false. */
  normalize?: boolean;
  /**
   * Most images of this call in one forward pass (batches may also hold other calls' images).
   * Default: the model's batching.maxBatch, or with batching off 16 on the CPU and 128 on a GPU;
   * fewer when memory is short.
   */
  batchSize?: number;
  /** Run at the preprocessor's size even when it differs from the model's image_size. */
  interpolatePosEncoding?: boolean;
  /**
   * 'cpu' (default): images are decoded by sharp on the CPU. 'gpu' (a model on a CUDA device):
   * JPEG files are decoded by nvJPEG and resized on the device (Pillow's resize, exact); other
   * formats, grey / CMYK / EXIF-rotated JPEGs and raw pixels still take the CPU path. nvJPEG's IDCT
   * is not libjpeg-turbo's, so pixels differ slightly from PIL's (docs/cuda.md gives the measured deviation).
   */
  decode?: 'cpu' | 'gpu';
}

export interface ClassifyOptions extends DecodeOptions, CallOptions {
  /** How many classes to return per image, best first; default 5. */
  topK?: number;
  /** As {@link EncodeOptions.batchSize}. */
  batchSize?: number;
  interpolatePosEncoding?: boolean;
  /** As {@link EncodeOptions.decode}. */
  decode?: 'cpu' | 'gpu';
}

/** One class of classify()'s answer. */
export interface Classification {
  /** config.json's id2label name (or LABEL_i when it has none, as transformers names them). */
  label: string;
  index: number;
  /** Softmax probability. */
  score: number;
}

/** `o.batchSize`, or the default for `device` (a 'cuda:N' device runs larger batches). */
export function batchSizeOf(o: Record<string, unknown>, device = 'cpu'): number {
  return integer(
    o.batchSize,
    'batchSize',
    1,
    4096,
    device.startsWith('cuda') ? DEFAULT_GPU_BATCH_SIZE : DEFAULT_BATCH_SIZE,
  );
}

/**
 * Refuses, before any decoding, a preprocessor that resizes to another size than the model's
 * image_size (forward() would refuse each batch anyway, with a less helpful message).
 */
export function checkPreprocessorFits(
  p: PreprocessorConfig,
  model: { imageHeight: number; imageWidth: number },
  interpolate: unknown,
) {
  if (interpolate === true || !p.doResize) return;
  if (p.size.height !== model.imageHeight || p.size.width !== model.imageWidth) {
    throw new VitMsnError(
      'ERR_SHAPE_MISMATCH',
      `${p.source} resizes images to ${p.size.height}x${p.size.width}, but the model takes ${model.imageHeight}x${model.imageWidth}; ` +
        'pass interpolatePosEncoding: true to run at that size',
    );
  }
}

/** The native form of a {@link PreprocessorConfig}. */
export function nativePreprocessConfig(p: PreprocessorConfig) {
  return {
    doResize: p.doResize,
    height: p.size.height,
    width: p.size.width,
    resample: p.resample,
    doRescale: p.doRescale,
    rescaleFactor: p.rescaleFactor,
    doNormalize: p.doNormalize,
    imageMean: [...p.imageMean],
    imageStd: [...p.imageStd],
  };
}

function decodeBatch(
  list: readonly ImageInput[],
  start: number,
  end: number,
  opts: DecodeOptions,
): Promise<DecodedImage[]> {
  const jobs: Promise<DecodedImage>[] = [];
  for (let i = start; i < end; i++) jobs.push(decodeImage(list[i], i, opts));
  return Promise.all(jobs);
}

/**
 * Runs `step` on each batch of preprocessed images, in order, decoding batch k+1 during step k.
 * `step` receives pixel_values [n, 3, H, W] and the index of the batch's first image.
 */
export async function forEachBatch(
  addon: NativeAddon,
  images: ImageInput | readonly ImageInput[],
  pre: PreprocessorConfig,
  batchSize: number,
  decodeOpts: DecodeOptions,
  step: (pixels: Tensor, start: number) => Promise<void>,
): Promise<number> {
  const list = toList(images);
  const cfg = nativePreprocessConfig(pre);
  const decode = (start: number) => {
    const p = decodeBatch(list, start, Math.min(start + batchSize, list.length), decodeOpts);
    p.catch(() => undefined); // awaited below; never an unhandled rejection if a step fails first
    return p;
  };
  let next = decode(0);
  for (let start = 0; start < list.length; start += batchSize) {
    const decoded = await next;
    const pixels = (await addon.preprocess(decoded, cfg)) as Tensor;
    if (start + batchSize < list.length) next = decode(start + batchSize);
    await step(pixels, start);
  }
  return list.length;
}

/** Top `k` classes of one image's probabilities, best first (ties: lower index first). */
export function topK(probs: Float32Array, k: number, id2label: Record<string, string> | undefined): Classification[] {
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return order
    .slice(0, k)
    .map((index) => ({ label: id2label?.[String(index)] ?? `LABEL_${index}`, index, score: probs[index] }));
}
