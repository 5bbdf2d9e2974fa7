/**
 * Inputs are read when a call is made, never later: the caller may reuse or change its arrays and
 * buffers as soon as forward() / encode() / classify() / preprocess() return their promise. A call
 * that runs at once hands its arrays to the addon, which copies them during that call; one that has
 * to wait for earlier calls on the model keeps a private copy from here. A view over a detached
 * (transferred) ArrayBuffer is refused with a clear error instead of reading as empty.
 */
import type { ImageInput, RawImage } from './images';
import { notDetached } from './check';

/** Throws ERR_INVALID_ARGUMENT when `view` is backed by a detached buffer. */
export function checkNotDetached(view: unknown, what: string): void {
  if (ArrayBuffer.isView(view)) notDetached(view, what);
}

/** A private copy of a typed array, of the same type (also for views over a SharedArrayBuffer). */
export function copyOf<T extends Float32Array | Uint8Array | Uint8ClampedArray>(a: T): T {
  const Ctor = (a instanceof Float32Array
    ? Float32Array
    : a instanceof Uint8ClampedArray
      ? Uint8ClampedArray
      : Uint8Array) as unknown as new (src: ArrayLike<number>) => T;
  return new Ctor(a);
}

function isRawLike(input: unknown): input is RawImage {
  return typeof input === 'object' && input !== null && !ArrayBuffer.isView(input) && 'data' in input;
}

/**
 * The images of a call as they are now: the list itself and every buffer in it copied (paths are
 * strings, already immutable). Anything of the wrong type is passed through for decodeImage() to
 * refuse with its own message.
 */
export function snapshotImages(images: ImageInput | readonly ImageInput[]): ImageInput | readonly ImageInput[] {
  const one = (input: ImageInput, index: number): ImageInput => {
    if (input instanceof Uint8Array) {
      checkNotDetached(input, `image ${index}`);
      return copyOf(input);
    }
    if (isRawLike(input)) {
      const { data, width, height, channels } = input;
      if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) return { data, width, height, channels };
      checkNotDetached(data, `image ${index}: raw pixels`);
      return { data: copyOf(data), width, height, channels };
    }
    return input;
  };
  return Array.isArray(images) ? (images as readonly ImageInput[]).map(one) : one(images as ImageInput, 0);
}
