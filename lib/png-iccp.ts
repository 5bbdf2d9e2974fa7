/**
 * The iCCP (colour profile) checks Pillow's PngImagePlugin makes when it opens a PNG, which libvips
 * does not make (it drops a bad profile silently). HF opens images with PIL, so a file PIL refuses
 * is refused here too; one PIL opens is left alone. PngStream.chunk_iCCP:
 *   - the compression method byte (after the name's NUL) must be 0, else SyntaxError — and a chunk
 *     too short to have that byte raises IndexError: either way Image.open fails;
 *   - the profile is inflated with a 1 MiB output limit (ImageFile.SAFEBLOCK); more raises
 *     ValueError("Decompressed Data Too Large");
 *   - corrupt zlib data is NOT an error: zlib.error is caught and the profile set to None.
 * vitmsn ignores profiles anyway (PIL does no colour management), so only the refusals matter.
 */
import { inflateSync } from 'node:zlib';
import { VitMsnError } from './errors';

const PIL_MAX_PROFILE_BYTES = 2 ** 20;

function ascii(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');
}

/** Throws ERR_IMAGE_INVALID for a PNG whose iCCP chunks PIL refuses. */
export function checkPngIccp(png: Uint8Array, what: string): void {
  // The chunks before the pixel data; a truncated chunk ends the walk (the decoder reports it).
  for (let p = 8; p + 8 <= png.length; ) {
    const length = ((png[p] << 24) | (png[p + 1] << 16) | (png[p + 2] << 8) | png[p + 3]) >>> 0;
    const type = ascii(png, p + 4, p + 8);
    if (type === 'IDAT' || type === 'IEND' || p + 12 + length > png.length) return;
    if (type === 'iCCP') checkIccp(png.subarray(p + 8, p + 8 + length), what);
    p += 12 + length;
  }
}

function checkIccp(s: Uint8Array, what: string): void {
  const refuse = (why: string): never => {
    throw new VitMsnError(
      'ERR_IMAGE_INVALID',
      `${what}: its iCCP (colour profile) chunk ${why}, so PIL refuses the file`,
    );
  };
  // As PIL indexes it: s.find(b"\0") is -1 without a NUL, which makes the method byte s[0].
  const i = s.indexOf(0);
  const method = s[i + 1];
  if (method === undefined) refuse('has no compression method byte');
  if (method !== 0) refuse(`has compression method ${method} (only 0, zlib, exists)`);
  try {
    inflateSync(s.subarray(i + 2), { maxOutputLength: PIL_MAX_PROFILE_BYTES });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      refuse(`holds a profile over ${PIL_MAX_PROFILE_BYTES} bytes once decompressed`);
    }
    // Corrupt or truncated zlib data: PIL drops the profile and opens the image.
  }
}
