/**
 * Image inputs → decoded pixels (8-bit, or 16-bit grey for PIL's mode I). Encoded files are decoded
 * by sharp (libvips) the way PIL opens them for HF: no colour management (an embedded ICC profile is
 * ignored, as PIL ignores it), EXIF orientation applied (HF's load_image does), first frame only.
 * The conversion to RGB, the resize and the normalisation happen in native code (see
 * native/engine/image/preprocess.h).
 */
import './threadpool-size'; // first: before anything can start libuv's pool
import { VitMsnError, type ErrorCode } from './errors';
import { checkPngIccp } from './png-iccp';
import { BoundedFile, type ReadFail } from './read-file';
import { integer, invalid, notDetached, oneOf } from './check';

/** Raw 8-bit pixels, interleaved row-major [height, width, channels]. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  /** 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA (alpha is dropped, as PIL's convert('RGB') does). */
  channels: 1 | 2 | 3 | 4;
}

/**
 * One image: a file path, the bytes of an encoded JPEG / PNG / WebP / GIF / TIFF / AVIF file
 * (Buffer or Uint8Array), or raw pixels.
 */
export type ImageInput = string | Uint8Array | RawImage;

/** Options for decoding. */
export interface DecodeOptions {
  /** Refuse images with more pixels than this (checked from the header, before decoding). Default 100 million. */
  maxPixels?: number;
  /**
   * Refuse image files (paths) larger than this many bytes, before reading them. Default: 8 bytes
   * for each pixel `maxPixels` allows, plus 64 MiB for metadata (864 MiB at the default maxPixels).
   * Bytes passed in memory are not limited by it.
   */
  maxBytes?: number;
}

/** File name extensions of the formats decoded (the CLI's folder expansion picks files by them). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg',
  '.jpeg',
  '.jpe',
  '.jfif',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
  '.heic',
  '.heif',
]);

/** The option names of {@link DecodeOptions}, for the option checks of preprocess / encode / classify. */
export const DECODE_OPTION_KEYS = ['maxPixels', 'maxBytes'] as const;

export const DEFAULT_MAX_PIXELS = 100_000_000;

// The default byte limit: 8 bytes a pixel covers the largest common uncompressed form (16-bit
// RGBA, e.g. a TIFF) — compressed files are smaller — and 64 MiB leaves room for metadata (EXIF,
// ICC profiles, text chunks). It exists to refuse what cannot be an image within maxPixels before
// reading it; a float TIFF near the pixel limit needs an explicit maxBytes.
const BYTES_PER_PIXEL = 8;
const METADATA_BYTES = 64 * 2 ** 20;

// Files larger than this are read in two steps: this much first, whose header must pass the format
// sniff and the pixel limit, then the rest — so a forged header never costs a read of the whole file.
const HEADER_PROBE_BYTES = 2 ** 20;

/**
 * Decoded pixels in the native layer's form. `format` absent: 8-bit L / LA / RGB / RGBA in a plain
 * Uint8Array. Two modes whose convert('RGB') PIL does with its own arithmetic (done natively too):
 * 'CMYK' (8-bit, 4 channels) and 'I;16' (a 16-bit greyscale PNG or TIFF, PIL's mode I / I;16;
 * Uint16Array).
 */
export interface DecodedImage {
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
  channels: number;
  format?: 'CMYK' | 'I;16';
}

type Sharp = typeof import('sharp').default; // the CommonJS export is the function itself
let sharpModule: Sharp | undefined;
function sharp(): Sharp {
  if (!sharpModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      sharpModule = require('sharp') as Sharp;
    } catch (e) {
      throw new VitMsnError(
        'ERR_ADDON_LOAD',
        `sharp (the image decoder) could not be loaded: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return sharpModule;
}

function describe(input: unknown, index: number): string {
  if (typeof input === 'string') return `image ${index} (${input})`;
  return `image ${index}`;
}

// Signatures of formats sharp's prebuilt libvips cannot (or should not) decode, for a precise error.
const UNSUPPORTED: Array<[string, (b: Uint8Array) => boolean]> = [
  ['BMP', (b) => b[0] === 0x42 && b[1] === 0x4d],
  ['ICO', (b) => b[0] === 0 && b[1] === 0 && b[2] === 1 && b[3] === 0],
  ['PSD', (b) => ascii(b, 0, 4) === '8BPS'],
  ['JPEG XL', (b) => (b[0] === 0xff && b[1] === 0x0a) || ascii(b, 4, 8) === 'JXL '],
  ['JPEG 2000', (b) => ascii(b, 4, 8) === 'jP  ' || (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51)],
  ['SVG', (b) => /^\s*(<\?xml|<svg)/.test(ascii(b, 0, 64)) && /<svg/i.test(ascii(b, 0, 4096))],
  ['PDF', (b) => ascii(b, 0, 5) === '%PDF-'],
  ['PNM', (b) => b[0] === 0x50 && b[1] >= 0x31 && b[1] <= 0x37 && (b[2] === 0x0a || b[2] === 0x20 || b[2] === 0x0d)],
  ['QOI', (b) => ascii(b, 0, 4) === 'qoif'],
];

const isJpeg = (b: Uint8Array) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

const SUPPORTED: Array<[string, (b: Uint8Array) => boolean]> = [
  ['JPEG', isJpeg],
  ['PNG', (b) => b[0] === 0x89 && ascii(b, 1, 4) === 'PNG'],
  ['GIF', (b) => ascii(b, 0, 4) === 'GIF8'],
  ['WebP', (b) => ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP'],
  ['TIFF', (b) => ascii(b, 0, 4) === 'II*\0' || ascii(b, 0, 4) === 'MM\0*'],
  ['AVIF/HEIF', (b) => ascii(b, 4, 8) === 'ftyp'],
];

function ascii(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < Math.min(end, b.length); i++) s += String.fromCharCode(b[i]);
  return s;
}

/** The container format of encoded bytes, or an error saying why they will not decode. */
export function sniffFormat(bytes: Uint8Array, what: string): string {
  if (bytes.length === 0) throw new VitMsnError('ERR_IMAGE_INVALID', `${what} is empty (0 bytes)`);
  for (const [name, test] of SUPPORTED) if (test(bytes)) return name;
  for (const [name, test] of UNSUPPORTED) {
    if (test(bytes)) {
      throw new VitMsnError(
        'ERR_IMAGE_UNSUPPORTED',
        `${what} is ${name}, which vitmsn does not decode (JPEG, PNG, WebP, GIF, TIFF and AVIF are supported)`,
      );
    }
  }
  throw new VitMsnError(
    'ERR_IMAGE_INVALID',
    `${what} is not an image (no JPEG, PNG, WebP, GIF, TIFF or AVIF signature)`,
  );
}

function isRaw(input: unknown): input is RawImage {
  return typeof input === 'object' && input !== null && !(input instanceof Uint8Array) && 'data' in input;
}

function checkMaxPixels(maxPixels: unknown): number {
  return maxPixels === undefined ? DEFAULT_MAX_PIXELS : integer(maxPixels, 'maxPixels', 1);
}

/** The byte limit for image files, and whether the caller chose it (for the message). */
function checkMaxBytes(maxBytes: unknown, maxPixels: number): { limit: number; explicit: boolean } {
  if (maxBytes !== undefined) return { limit: integer(maxBytes, 'maxBytes', 1), explicit: true };
  return { limit: maxPixels * BYTES_PER_PIXEL + METADATA_BYTES, explicit: false };
}

/** Checks raw pixels (no copy: the native call copies them). */
export function checkRaw(input: RawImage, what: string, maxPixels: number): DecodedImage {
  const { data, width, height, channels } = input;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    invalid(`${what}: raw pixels must be a Uint8Array, Uint8ClampedArray or Buffer of 8-bit values`);
  }
  notDetached(data, `${what}: the pixels`);
  integer(width, `${what}: width`, 0);
  integer(height, `${what}: height`, 0);
  if (width === 0 || height === 0) throw new VitMsnError('ERR_IMAGE_INVALID', `${what} is empty (${width}x${height})`);
  oneOf(channels, `${what}: channels`, [1, 2, 3, 4]);
  if (width * height > maxPixels) {
    throw new VitMsnError(
      'ERR_IMAGE_TOO_LARGE',
      `${what} has ${width}x${height} pixels, more than maxPixels (${maxPixels})`,
    );
  }
  if (data.length !== width * height * channels) {
    throw new VitMsnError(
      'ERR_IMAGE_INVALID',
      `${what}: ${data.length} bytes do not hold ${width}x${height}x${channels} pixels (${width * height * channels} bytes)`,
    );
  }
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length);
  return { data: bytes, width, height, channels };
}

/**
 * Which PIL mode needs its own conversion: a 16-bit greyscale PNG (TIFF) opens in PIL as mode I
 * (I;16), whose convert('RGB') clamps at 255 (libvips would keep the high byte), and a CMYK image, which PIL
 * converts with its naive formula (libvips would go through a CMYK profile). Everything else
 * (16-bit colour and grey+alpha PNGs included: PIL keeps their high byte, as libvips does) is
 * decoded to 8-bit sRGB-interpreted samples.
 */
function pilMode(meta: import('sharp').Metadata): DecodedImage['format'] {
  if ((meta.format === 'png' || meta.format === 'tiff') && meta.depth === 'ushort' && meta.channels === 1)
    return 'I;16';
  if (meta.space === 'cmyk' && meta.channels === 4) return 'CMYK';
  return undefined;
}

function sharpOptions(maxPixels: number): import('sharp').SharpOptions {
  return {
    failOn: 'error', // truncated or corrupt pixel data is an error (PIL raises on a truncated file too)
    limitInputPixels: maxPixels, // from the header: a forged 100000×100000 PNG never allocates
    autoOrient: true,
    ignoreIcc: true, // PIL does no colour management; sharp would convert through the profile
    page: 0,
    pages: 1,
  };
}

/** Decodes encoded bytes with sharp into raw pixels (1–4 channels; see {@link DecodedImage}). */
export async function decodeBytes(bytes: Uint8Array, what: string, maxPixels: number): Promise<DecodedImage> {
  if (sniffFormat(bytes, what) === 'PNG') checkPngIccp(bytes, what);
  const open = () => sharp()(bytes, sharpOptions(maxPixels));
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  let format: DecodedImage['format'];
  try {
    format = pilMode(await open().metadata());
    if (format === 'I;16') {
      out = await open().toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    } else if (format === 'CMYK') {
      // The CMYK samples as PIL holds them: a CMYK pipeline, so sharp does not convert through its
      // default CMYK profile (JPEG: libvips inverts the stored samples, as PIL's decoder does, with or
      // without an Adobe marker).
      out = await open()
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
    } else {
      out = await open()
        .toColourspace('srgb') // 8-bit output for 16-bit inputs; grey is kept replicated to RGB
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
    }
  } catch (e) {
    throw fromSharp(e, what);
  }
  const { data, info } = out;
  const sample = format === 'I;16' ? 2 : 1;
  const okChannels =
    format === 'I;16' ? info.channels <= 2 : format === 'CMYK' ? info.channels === 4 : info.channels <= 4;
  if (info.width * info.height * info.channels * sample !== data.length || info.channels < 1 || !okChannels) {
    throw new VitMsnError(
      'ERR_IMAGE_UNSUPPORTED',
      `${what}: decoded to ${info.channels} channels of ${data.length / (info.width * info.height)} bytes, which vitmsn cannot convert to RGB`,
    );
  }
  const { width, height, channels } = info;
  if (format === 'I;16') {
    // Host-endian uint16 samples; copied only if the Buffer is not 2-byte aligned.
    const aligned = data.byteOffset % 2 === 0 ? data : Buffer.from(data);
    return {
      data: new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2),
      width,
      height,
      channels,
      format,
    };
  }
  const px = new Uint8Array(data.buffer, data.byteOffset, data.length);
  return format ? { data: px, width, height, channels, format } : { data: px, width, height, channels };
}

function fromSharp(e: unknown, what: string): VitMsnError {
  const msg = String((e as Error)?.message ?? e);
  if (/pixel limit/i.test(msg))
    return new VitMsnError('ERR_IMAGE_TOO_LARGE', `${what}: ${msg} (raise maxPixels to allow it)`, { cause: e });
  if (
    /unsupported image format|not a known file format|no known saver|heif: .*(unsupported|not supported)|Support for this compression format has not been built/i.test(
      msg,
    )
  ) {
    return new VitMsnError('ERR_IMAGE_UNSUPPORTED', `${what}: ${msg}`, { cause: e });
  }
  return new VitMsnError('ERR_IMAGE_INVALID', `${what} could not be decoded: ${msg}`, { cause: e });
}

/**
 * Throws ERR_IMAGE_TOO_LARGE when the first bytes of a file already show more pixels than allowed.
 * Any other failure is left to the full decode (a header may not fit in the first bytes: a TIFF's
 * directory can sit at the end of the file).
 */
async function checkHeaderPixels(head: Buffer, what: string, maxPixels: number): Promise<void> {
  try {
    await sharp()(head, sharpOptions(maxPixels)).metadata();
  } catch (e) {
    const err = fromSharp(e, what);
    if (err.code === 'ERR_IMAGE_TOO_LARGE') throw err;
  }
}

/** An image file's bytes, read with the limits of {@link DecodeOptions} (see lib/read-file.ts). */
async function readImageFile(
  file: string,
  what: string,
  maxPixels: number,
  maxBytes: { limit: number; explicit: boolean },
): Promise<Buffer> {
  const fail: ReadFail = (problem, message, cause) => {
    const codes: Record<typeof problem, ErrorCode> = {
      missing: 'ERR_IMAGE_NOT_FOUND',
      unreadable: 'ERR_IMAGE_NOT_FOUND',
      'not-a-file': 'ERR_IMAGE_INVALID',
      'too-large': 'ERR_IMAGE_TOO_LARGE',
    };
    const hint =
      problem !== 'too-large'
        ? ''
        : maxBytes.explicit
          ? ' (maxBytes)'
          : ` (maxBytes, by default ${BYTES_PER_PIXEL} bytes a pixel of maxPixels + 64 MiB; pass maxBytes to allow it)`;
    throw new VitMsnError(codes[problem], `${what} ${message}${hint}`, { cause });
  };
  const f = await BoundedFile.open(file, maxBytes.limit, fail);
  try {
    if (f.size <= HEADER_PROBE_BYTES) return await f.readAll(fail);
    const head = await f.readHead(HEADER_PROBE_BYTES, fail);
    sniffFormat(head, what);
    await checkHeaderPixels(head, what, maxPixels);
    return await f.readAll(fail, head);
  } finally {
    await f.close();
  }
}

/** Any {@link ImageInput} → decoded pixels. */
export async function decodeImage(input: ImageInput, index: number, options?: DecodeOptions): Promise<DecodedImage> {
  const maxPixels = checkMaxPixels(options?.maxPixels);
  const maxBytes = checkMaxBytes(options?.maxBytes, maxPixels);
  const what = describe(input, index);
  if (typeof input === 'string') {
    if (input.length === 0) invalid(`${what}: an empty path`);
    return decodeBytes(await readImageFile(input, what, maxPixels, maxBytes), what, maxPixels);
  }
  if (input instanceof Uint8Array) return decodeBytes(input, what, maxPixels);
  if (isRaw(input)) return checkRaw(input, what, maxPixels);
  invalid(`${what} must be a file path, a Buffer/Uint8Array of an encoded image, or { data, width, height, channels }`);
}

/**
 * For GPU decoding: the bytes of `input` when it is a JPEG file the device decodes as the CPU path
 * would — three components (not grey, not CMYK), no EXIF rotation, within maxPixels — else
 * undefined (decode it on the CPU: that path also reports whatever is wrong with it). Reads the
 * header only (sharp's metadata); a path is read with the limits of {@link DecodeOptions}.
 */
export async function deviceJpeg(
  input: ImageInput,
  index: number,
  options?: DecodeOptions,
): Promise<Uint8Array | undefined> {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) return undefined;
  const maxPixels = checkMaxPixels(options?.maxPixels);
  const what = describe(input, index);
  if (typeof input === 'string' && input.length === 0) return undefined;
  const bytes =
    typeof input === 'string'
      ? await readImageFile(input, what, maxPixels, checkMaxBytes(options?.maxBytes, maxPixels))
      : input;
  if (bytes.length < 3 || !isJpeg(bytes)) return undefined;
  let meta: import('sharp').Metadata;
  try {
    meta = await sharp()(bytes, sharpOptions(maxPixels)).metadata();
  } catch {
    return undefined;
  }
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  const plain = meta.format === 'jpeg' && meta.channels === 3 && meta.space === 'srgb' && (meta.orientation ?? 1) === 1;
  return plain && pixels > 0 && pixels <= maxPixels ? bytes : undefined;
}

/** A single input or an array of them → an array (a RawImage or Buffer alone is one image). */
export function toList(images: ImageInput | readonly ImageInput[]): readonly ImageInput[] {
  const list = Array.isArray(images) ? (images as readonly ImageInput[]) : [images as ImageInput];
  if (list.length === 0) invalid('images must not be empty');
  return list;
}
