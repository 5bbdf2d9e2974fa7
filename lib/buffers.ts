/**
 * Typed-array inputs may be views over an ArrayBuffer or a SharedArrayBuffer: the addon copies
 * either at call time. One case must be caught first: a view whose ArrayBuffer was transferred
 * away (postMessage / structuredClone with `transfer`) reads as empty, which would otherwise be
 * reported as a size mismatch.
 */
export function isDetached(view: ArrayBufferView): boolean {
  const buffer = view.buffer;
  if (view.byteLength !== 0 || buffer.byteLength !== 0) return false;
  if (typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer) return false; // never detached
  const flag = (buffer as { detached?: unknown }).detached; // Node ≥ 22
  if (typeof flag === 'boolean') return flag;
  try {
    new Uint8Array(buffer); // throws a TypeError on a detached buffer only
    return false;
  } catch {
    return true;
  }
}
