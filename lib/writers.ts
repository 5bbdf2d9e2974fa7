/**
 * Serialisation of float32 matrices for the CLI's --out (no math): NumPy's .npy (format 1.0) and
 * safetensors. Both are little-endian float32, row-major.
 */

/** A .npy file (format version 1.0) holding float32 `data` of the given shape. */
export function npyBytes(data: Float32Array, shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // magic (6) + version (2) + header length (2) + header, padded with spaces and ended by '\n' to 64 bytes.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), floatBytes(data)]);
}

/** A .safetensors file with float32 tensors and optional string metadata. */
export function safetensorsBytes(
  tensors: Record<string, { data: Float32Array; shape: readonly number[] }>,
  metadata?: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const blobs: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const b = floatBytes(t.data);
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [off, off + b.length] };
    off += b.length;
    blobs.push(b);
  }
  let json = JSON.stringify(header);
  // Pads to a multiple of 8 bytes (not characters: metadata may hold non-ASCII file names), which
  // keeps the data 8-byte aligned.
  const bytes = Buffer.byteLength(json);
  json += ' '.repeat(Math.ceil(bytes / 8) * 8 - bytes);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...blobs]);
}

/** Little-endian float32 bytes of `data` (a view when the host is little-endian). */
export function floatBytes(data: Float32Array): Buffer {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return b; // little-endian host: as is
  const out = Buffer.alloc(data.byteLength);
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], i * 4);
  return out;
}
