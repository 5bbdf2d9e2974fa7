// Test-side safetensors reading and writing (goldens in, crafted good and broken checkpoints out).
import { readFileSync, writeFileSync } from 'node:fs';

export type Array_ = Float64Array | Float32Array | Uint8Array;
export interface StTensor {
  dtype: 'F64' | 'F32' | 'U8';
  shape: number[];
  data: Array_;
}

export function readSafetensors(file: string): Record<string, StTensor> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  const base = 8 + n;
  const out: Record<string, StTensor> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [s, e] = info.data_offsets as [number, number];
    const bytes = new Uint8Array(buf.subarray(base + s, base + e)); // copy: aligned
    const ctor = { F64: Float64Array, F32: Float32Array, U8: Uint8Array }[info.dtype as 'F64' | 'F32' | 'U8'];
    if (!ctor) throw new Error(`test reader: unsupported dtype ${info.dtype}`);
    out[name] = {
      dtype: info.dtype,
      shape: info.shape,
      data: new ctor(bytes.buffer, 0, bytes.byteLength / ctor.BYTES_PER_ELEMENT),
    };
  }
  return out;
}

/** Serialises tensors; `headerOverride` lets a test corrupt the header JSON on purpose. */
export function encodeSafetensors(
  tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array | Float32Array | Float64Array }>,
  headerOverride?: (h: Record<string, any>) => Record<string, any>,
): Buffer {
  let header: Record<string, any> = {};
  const blobs: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const b = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + b.length] };
    off += b.length;
    blobs.push(b);
  }
  if (headerOverride) header = headerOverride(header);
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, ...blobs]);
}

export function writeSafetensors(file: string, tensors: Record<string, StTensor>) {
  writeFileSync(file, encodeSafetensors(tensors));
}
