/**
 * Argument checks for the public API. They reject what the engine would reject, but here, with
 * the caller's stack and a precise message. No tensor math happens here.
 */
import { isDetached } from './buffers';
import { VitMsnError } from './errors';
import { formatValue } from './format-value';
import type { BatchingOptions, ResolvedBatching } from './call-queue';
import type { DType, ForwardOptions, LoadOptions } from './types';
import { HUB_OPTION_KEYS } from './hub/index';

function invalid(message: string): never {
  throw new VitMsnError('ERR_INVALID_ARGUMENT', message);
}

function shapeError(message: string): never {
  throw new VitMsnError('ERR_SHAPE_MISMATCH', message);
}

function checkKeys(what: string, obj: object, allowed: readonly string[]) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) invalid(`unknown ${what} option "${k}" (known: ${allowed.join(', ')})`);
  }
}

function optionalBool(o: Record<string, unknown>, key: string): boolean {
  const v = o[key];
  if (v === undefined) return false;
  if (typeof v !== 'boolean') invalid(`option "${key}" must be a boolean`);
  return v;
}

export interface ResolvedLoadOptions {
  device: string;
  dtype: DType;
  threads: number; // 0 = default
}

export function resolveLoadOptions(options: LoadOptions | undefined): ResolvedLoadOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') invalid('options must be an object');
  checkKeys('loadModel', options, ['device', 'dtype', 'threads', 'batching', ...HUB_OPTION_KEYS]);
  resolveBatching(options.batching, 'cpu'); // checked now; resolved for the device once it is known
  const device = options.device ?? 'auto';
  if (typeof device !== 'string' || !/^(auto|cpu|cuda|cuda:\d+)$/.test(device)) {
    invalid(`device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got ${formatValue(device)}`);
  }
  const dtype = options.dtype ?? 'float32';
  if (!['float32', 'float16', 'bfloat16'].includes(dtype)) {
    invalid(`dtype must be 'float32', 'float16' or 'bfloat16', got ${formatValue(dtype)}`);
  }
  const threads = options.threads ?? 0;
  if (!Number.isSafeInteger(threads) || threads < 0 || threads > 1024) {
    invalid(`threads must be an integer from 1 to 1024, got ${formatValue(options.threads)}`);
  }
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
  if (batching === null || typeof batching !== 'object') invalid(`batching must be false or an object, got ${formatValue(batching)}`);
  checkKeys('batching', batching as object, ['maxBatch', 'maxDelayMs', 'maxQueue']);
  const b = batching as BatchingOptions;
  const int = (v: unknown, name: string, min: number, max: number, dflt: number) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      invalid(`batching.${name} must be an integer from ${min} to ${max}, got ${formatValue(v)}`);
    }
    return v;
  };
  return {
    enabled: true,
    maxBatch: int(b.maxBatch, 'maxBatch', 1, 4096, defaults.maxBatch),
    maxDelayMs: int(b.maxDelayMs, 'maxDelayMs', 0, 60_000, defaults.maxDelayMs),
    maxQueue: int(b.maxQueue, 'maxQueue', 1, 100_000_000, defaults.maxQueue),
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
export function checkForward(
  model: ModelShape,
  pixelValues: unknown,
  shape: unknown,
  options: ForwardOptions | undefined,
) {
  if (!(pixelValues instanceof Float32Array)) {
    invalid(`pixelValues must be a Float32Array, got ${describe(pixelValues)}`);
  }
  if (isDetached(pixelValues)) invalid(DETACHED('pixelValues'));
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    invalid(`shape must be [B, C, H, W] of positive integers, got ${formatValue(shape)}`);
  }
  const [B, C, H, W] = shape as number[];
  if (B * C * H * W !== pixelValues.length) {
    shapeError(`pixelValues has ${pixelValues.length} values but shape [${shape.join(', ')}] needs ${B * C * H * W}`);
  }
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') invalid('options must be an object');
  checkKeys('forward', options, ['outputHiddenStates', 'outputAttentions', 'interpolatePosEncoding', 'headMask', 'boolMaskedPos', 'signal', 'timeoutMs']);
  const o = options as Record<string, unknown>;
  const resolved = {
    outputHiddenStates: optionalBool(o, 'outputHiddenStates'),
    outputAttentions: optionalBool(o, 'outputAttentions'),
    interpolatePosEncoding: optionalBool(o, 'interpolatePosEncoding'),
    headMask: options.headMask,
    boolMaskedPos: options.boolMaskedPos,
  };

  if (C !== model.numChannels) shapeError(`pixelValues has ${C} channels, the model expects ${model.numChannels}`);
  if (!resolved.interpolatePosEncoding && (H !== model.imageHeight || W !== model.imageWidth)) {
    shapeError(
      `input image size (${H}x${W}) doesn't match the model (${model.imageHeight}x${model.imageWidth}); ` +
        'pass interpolatePosEncoding: true to run at another resolution',
    );
  }
  if (H < model.patchSize || W < model.patchSize) {
    shapeError(`input image size (${H}x${W}) is smaller than one patch (${model.patchSize})`);
  }
  const heads = model.numAttentionHeads;
  if (resolved.headMask !== undefined) {
    if (!(resolved.headMask instanceof Float32Array)) invalid(`headMask must be a Float32Array, got ${describe(resolved.headMask)}`);
    if (isDetached(resolved.headMask)) invalid(DETACHED('headMask'));
    const n = resolved.headMask.length;
    if (n !== heads && n !== heads * model.numHiddenLayers) {
      shapeError(`headMask has ${n} values; expected ${heads} (heads) or ${heads * model.numHiddenLayers} (layers × heads)`);
    }
  }
  if (resolved.boolMaskedPos !== undefined) {
    if (!(resolved.boolMaskedPos instanceof Uint8Array)) {
      invalid(`boolMaskedPos must be a Uint8Array, got ${describe(resolved.boolMaskedPos)}`);
    }
    if (isDetached(resolved.boolMaskedPos)) invalid(DETACHED('boolMaskedPos'));
    if (!model.hasMaskToken) {
      throw new VitMsnError('ERR_NO_MASK_TOKEN', 'boolMaskedPos needs embeddings.mask_token, which this checkpoint lacks');
    }
    const N = Math.floor(H / model.patchSize) * Math.floor(W / model.patchSize);
    if (resolved.boolMaskedPos.length !== B * N) {
      shapeError(`boolMaskedPos has ${resolved.boolMaskedPos.length} values, expected B·N = ${B}·${N} = ${B * N}`);
    }
    if (resolved.boolMaskedPos.some((v) => v > 1)) invalid('boolMaskedPos values must be 0 or 1');
  }
  return { B, C, H, W, options: resolved };
}

const DETACHED = (what: string) => `${what}'s ArrayBuffer has been detached (transferred); pass a live copy`;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'object';
}
