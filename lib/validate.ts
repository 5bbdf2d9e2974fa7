/**
 * Argument checks for the public API. They reject what the engine would reject, but here, with
 * the caller's stack and a precise message. No tensor math happens here.
 */
import { VitMsnError } from './errors';
import { formatValue } from './format-value';
import { boolean, checkOptions, describe, integer, invalid, notDetached, oneOf, shapeMismatch } from './check';
import type { BatchingOptions, ResolvedBatching } from './call-queue';
import type { DType, ForwardOptions, LoadOptions } from './types';

const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int8'];
import { HUB_OPTION_KEYS } from './hub/index';

export interface ResolvedLoadOptions {
  device: string;
  dtype: DType;
  threads: number; // 0 = default
}

export function resolveLoadOptions(options: LoadOptions | undefined): ResolvedLoadOptions {
  const o = checkOptions(
    options,
    ['device', 'dtype', 'threads', 'batching', ...HUB_OPTION_KEYS],
    'loadModel',
  ) as LoadOptions;
  resolveBatching(o.batching, 'cpu'); // checked now; resolved for the device once it is known
  const device = o.device ?? 'auto';
  if (typeof device !== 'string' || !/^(auto|cpu|cuda|cuda:\d+)$/.test(device)) {
    invalid(`device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got ${formatValue(device)}`);
  }
  const dtype = oneOf<DType>(o.dtype, 'dtype', DTYPES, 'float32');
  // 0 (also when unset): the backend's default, one thread per physical core.
  const threads = integer(o.threads, 'threads (0: one per physical core)', 0, 1024, 0);
  return { device, dtype, threads };
}

/**
 * `batching` of loadModel: false (off), or the limits of dynamic batching with per-device
 * defaults (measured on the CPU: see bench/RESULTS.md, serve section).
 */
export function resolveBatching(batching: unknown, device: string): ResolvedBatching {
  const gpu = device.startsWith('cuda');
  // CPU: 8 measured best for ViT-S/16 fp32 (= 16) and bf16 (8: 72.7 img/s, 16: 69.5, off: 49.8);
  // GPU: not measured yet.
  const defaults = { maxBatch: gpu ? 128 : 8, maxDelayMs: gpu ? 1 : 2, maxQueue: 16384 };
  if (batching === false) return { enabled: false, ...defaults, maxDelayMs: 0 };
  if (batching === undefined || batching === true) return { enabled: true, ...defaults };
  if (batching === null || typeof batching !== 'object')
    invalid(`batching must be false or an object, got ${formatValue(batching)}`);
  const b = checkOptions(batching, ['maxBatch', 'maxDelayMs', 'maxQueue'], 'batching') as BatchingOptions;
  return {
    enabled: true,
    maxBatch: integer(b.maxBatch, 'batching.maxBatch', 1, 4096, defaults.maxBatch),
    maxDelayMs: integer(b.maxDelayMs, 'batching.maxDelayMs', 0, 60_000, defaults.maxDelayMs),
    maxQueue: integer(b.maxQueue, 'batching.maxQueue', 1, 100_000_000, defaults.maxQueue),
  };
}

export interface ModelShape {
  numChannels: number;
  imageHeight: number;
  imageWidth: number;
  patchSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  hasMaskToken: boolean;
}

/** Checks forward()'s arguments against the model; returns the normalised options. */
/** Whether images of C×H×W can go through the model (forward() and the embed path alike). */
export function checkImageShape(model: ModelShape, C: number, H: number, W: number, interpolate: boolean) {
  if (C !== model.numChannels) shapeMismatch(`pixelValues has ${C} channels, the model expects ${model.numChannels}`);
  if (!interpolate && (H !== model.imageHeight || W !== model.imageWidth)) {
    shapeMismatch(
      `input image size (${H}x${W}) doesn't match the model (${model.imageHeight}x${model.imageWidth}); ` +
        'pass interpolatePosEncoding: true to run at another resolution',
    );
  }
  if (H < model.patchSize || W < model.patchSize) {
    shapeMismatch(`input image size (${H}x${W}) is smaller than one patch (${model.patchSize})`);
  }
}

export function checkForward(
  model: ModelShape,
  pixelValues: unknown,
  shape: unknown,
  options: ForwardOptions | undefined,
) {
  if (!(pixelValues instanceof Float32Array)) {
    invalid(`pixelValues must be a Float32Array, got ${describe(pixelValues)}`);
  }
  notDetached(pixelValues, 'pixelValues');
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    invalid(`shape must be [B, C, H, W] of positive integers, got ${formatValue(shape)}`);
  }
  const [B, C, H, W] = shape as number[];
  if (B * C * H * W !== pixelValues.length) {
    shapeMismatch(
      `pixelValues has ${pixelValues.length} values but shape [${shape.join(', ')}] needs ${B * C * H * W}`,
    );
  }
  const o = checkOptions(
    options,
    [
      'outputHiddenStates',
      'outputAttentions',
      'interpolatePosEncoding',
      'headMask',
      'boolMaskedPos',
      'signal',
      'timeoutMs',
    ],
    'forward',
  );
  const resolved = {
    outputHiddenStates: boolean(o.outputHiddenStates, 'outputHiddenStates'),
    outputAttentions: boolean(o.outputAttentions, 'outputAttentions'),
    interpolatePosEncoding: boolean(o.interpolatePosEncoding, 'interpolatePosEncoding'),
    headMask: o.headMask as Float32Array | undefined,
    boolMaskedPos: o.boolMaskedPos as Uint8Array | undefined,
  };

  checkImageShape(model, C, H, W, resolved.interpolatePosEncoding);
  const heads = model.numAttentionHeads;
  if (resolved.headMask !== undefined) {
    if (!(resolved.headMask instanceof Float32Array))
      invalid(`headMask must be a Float32Array, got ${describe(resolved.headMask)}`);
    notDetached(resolved.headMask, 'headMask');
    const n = resolved.headMask.length;
    if (n !== heads && n !== heads * model.numHiddenLayers) {
      shapeMismatch(
        `headMask has ${n} values; expected ${heads} (heads) or ${heads * model.numHiddenLayers} (layers × heads)`,
      );
    }
  }
  if (resolved.boolMaskedPos !== undefined) {
    if (!(resolved.boolMaskedPos instanceof Uint8Array)) {
      invalid(`boolMaskedPos must be a Uint8Array, got ${describe(resolved.boolMaskedPos)}`);
    }
    notDetached(resolved.boolMaskedPos, 'boolMaskedPos');
    if (!model.hasMaskToken) {
      throw new VitMsnError(
        'ERR_NO_MASK_TOKEN',
        'boolMaskedPos needs embeddings.mask_token, which this checkpoint lacks',
      );
    }
    const N = Math.floor(H / model.patchSize) * Math.floor(W / model.patchSize);
    if (resolved.boolMaskedPos.length !== B * N) {
      shapeMismatch(`boolMaskedPos has ${resolved.boolMaskedPos.length} values, expected B·N = ${B}·${N} = ${B * N}`);
    }
    if (resolved.boolMaskedPos.some((v) => v > 1)) invalid('boolMaskedPos values must be 0 or 1');
  }
  return { B, C, H, W, options: resolved };
}
