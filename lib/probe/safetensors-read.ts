/**
 * A small safetensors reader for the probe's own files (heads, embedding caches) and for copying a
 * backbone's tensors into a classification checkpoint. Tensors stay as raw little-endian bytes;
 * F32 and F64 can be viewed as arrays.
 */
import { readFileSync } from 'node:fs';
import { VitMsnError } from '../errors';

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

export function readSafetensorsFile(file: string): {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
} {
  return parseSafetensors(readFileSync(file), file);
}

/** {@link readSafetensorsFile} of bytes already read (`file` names them in errors). */
export function parseSafetensors(
  buf: Buffer,
  file: string,
): { tensors: Record<string, RawTensor>; metadata: Record<string, string> } {
  const bad = (why: string): never => {
    throw new VitMsnError('ERR_CHECKPOINT_INVALID', `${file}: not a valid safetensors file (${why})`);
  };
  if (buf.length < 8) bad('shorter than its header length');
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) bad('header runs past the end');
  let header: Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>
  >;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch {
    return bad('header is not JSON');
  }
  const tensors: Record<string, RawTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = info as Record<string, string>;
      continue;
    }
    const t = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [s, e] = t.data_offsets;
    if (!(s >= 0 && e >= s && 8 + n + e <= buf.length)) bad(`tensor ${name} lies outside the file`);
    tensors[name] = { dtype: t.dtype, shape: t.shape, bytes: Buffer.from(buf.subarray(8 + n + s, 8 + n + e)) };
  }
  return { tensors, metadata };
}

export function asFloat64(t: RawTensor): Float64Array {
  const b = new Uint8Array(t.bytes); // copy: aligned
  if (t.dtype === 'F64') return new Float64Array(b.buffer, 0, b.byteLength / 8);
  if (t.dtype === 'F32') return Float64Array.from(new Float32Array(b.buffer, 0, b.byteLength / 4));
  throw new VitMsnError('ERR_CHECKPOINT_INVALID', `expected an F32 or F64 tensor, got ${t.dtype}`);
}

/** Writes raw tensors (any dtype) with string metadata. */
export function rawSafetensorsBytes(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  const blobs: Buffer[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
    blobs.push(t.bytes);
  }
  let json = JSON.stringify(header);
  json = json.padEnd(Math.ceil(Buffer.byteLength(json) / 8) * 8 + json.length - Buffer.byteLength(json), ' ');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...blobs]);
}

export function f64Tensor(data: Float64Array, shape: number[]): RawTensor {
  return { dtype: 'F64', shape, bytes: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
}

export function f32Tensor(data: Float64Array | Float32Array, shape: number[]): RawTensor {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  return { dtype: 'F32', shape, bytes: Buffer.from(f.buffer, f.byteOffset, f.byteLength) };
}
