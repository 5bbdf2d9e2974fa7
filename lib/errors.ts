/**
 * Every error vitmsn throws is a {@link VitMsnError} with a stable `code`; messages may change
 * between versions, codes do not.
 *
 * @example
 * try { await loadModel('/nope'); } catch (e) { if (isVitMsnError(e) && e.code === 'ERR_CONFIG_NOT_FOUND') … }
 */
export const ERROR_CODES = {
  ERR_INVALID_ARGUMENT: 'an argument has the wrong type, or an unknown option was given',
  ERR_SHAPE_MISMATCH: "a tensor's shape or length does not fit the model or the other arguments",
  ERR_CONFIG_NOT_FOUND: 'the model folder has no config.json',
  ERR_CONFIG_INVALID: 'config.json is not JSON, or a field is missing or unusable',
  ERR_WEIGHTS_NOT_FOUND: 'no model.safetensors(.index.json) / pytorch_model.bin(.index.json) in the folder',
  ERR_CHECKPOINT_INVALID:
    'a weights file is truncated or malformed, or its pickle was refused (code, not a state dict)',
  ERR_WEIGHT_MISSING: 'a tensor the config needs is not in the checkpoint',
  ERR_WEIGHT_SHAPE: "a tensor's shape does not match the config",
  ERR_NO_MASK_TOKEN: 'boolMaskedPos given, but the checkpoint has no embeddings.mask_token',
  ERR_DEVICE_UNAVAILABLE: 'the requested device cannot be used here (the message says why)',
  ERR_UNSUPPORTED_DTYPE: 'the dtype is not available on the chosen device',
  ERR_DISPOSED: 'the model was disposed',
  ERR_OUT_OF_MEMORY: 'an allocation failed, or the input would need an absurd amount of memory',
  ERR_ADDON_LOAD: 'the native addon could not be loaded',
  ERR_IMAGE_NOT_FOUND: 'an image path that does not exist or cannot be opened',
  ERR_IMAGE_INVALID:
    'not an image, or a broken one: empty, truncated, corrupt, 0×0, pixels not matching the size; a path that is not a regular file (directory, FIFO, device)',
  ERR_IMAGE_UNSUPPORTED: 'an image format vitmsn does not decode (e.g. BMP, SVG)',
  ERR_IMAGE_TOO_LARGE: 'the image has more pixels than the maxPixels limit, or its file more bytes than maxBytes',
  ERR_NO_CLASSIFIER: 'classify() on a checkpoint without classifier.* weights',
  ERR_HUB_NOT_FOUND: 'the hub has no such model or revision, or denies access to it',
  ERR_DOWNLOAD_FAILED: 'a download failed (network, HTTP error, truncated or corrupt transfer)',
  ERR_OFFLINE: 'offline mode is on and the model is not in the Hugging Face cache',
  ERR_OVERLOADED: "the model's queue is full (batching.maxQueue images waiting): retry later",
  ERR_REDIS_UNAVAILABLE: 'vitmsn/distributed: the Redis server could not be reached in time',
  ERR_WRITE_FAILED:
    'vitmsn/distributed: a result shard or manifest could not be written (folder missing or not writable, disk full)',
  ERR_JOB_FAILED: "vitmsn/distributed: a job ended in the queue's failed set (its reason says why)",
  ERR_INTERNAL: 'a bug: please report it',
} as const;

/** A stable error code: the keys of {@link ERROR_CODES} (the one list; the engine's are checked against it by a test). */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `code` is one of vitmsn's {@link ErrorCode}s (e.g. a code read back from a queue or a file). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** An error from vitmsn, with a stable {@link ErrorCode} in `code`. */
export class VitMsnError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VitMsnError';
    this.code = code;
  }
}

/** True when `e` is a {@link VitMsnError} (optionally with the given code). */
export function isVitMsnError(e: unknown, code?: ErrorCode): e is VitMsnError {
  return e instanceof VitMsnError && (code === undefined || e.code === code);
}

/**
 * Re-throws an error from the addon as a VitMsnError created here, so that its stack shows the
 * caller's `await` site rather than native internals.
 */
export function fromNative(e: unknown): VitMsnError {
  if (e instanceof VitMsnError) return e;
  const err = e as { code?: unknown; message?: unknown };
  const code = isErrorCode(err?.code) ? err.code : 'ERR_INTERNAL';
  return new VitMsnError(code, String(err?.message ?? e), { cause: e });
}
