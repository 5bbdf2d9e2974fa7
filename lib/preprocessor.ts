/**
 * Reads a model folder's preprocessor_config.json the way transformers' ViTImageProcessor does
 * (legacy `size: 224`, `{height, width}` sizes, image_mean/std, do_resize/do_rescale/do_normalize,
 * rescale_factor, resample). The numbers are applied in native code (native/engine/image/preprocess.cc).
 */
import path from 'node:path';
import { VitMsnError } from './errors';
import { parseJsonObject } from './json-object';
import { MAX_CONFIG_JSON_BYTES, readOptionalText } from './read-file';
import { configInvalid } from './check';

/** How images become `pixel_values` (preprocessor_config.json with transformers' defaults filled in). */
export interface PreprocessorConfig {
  doResize: boolean;
  /** Output size when `doResize` (the aspect ratio is not kept, as in HF). */
  size: { height: number; width: number };
  /** PIL filter: 1 LANCZOS, 2 BILINEAR (the checkpoints' choice), 3 BICUBIC, 4 BOX, 5 HAMMING. */
  resample: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** Where this came from: the file, or 'defaults' when the folder has none. */
  source: string;
}

const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/**
 * The facebook/vit-msn-* checkpoints' preprocessor_config.json (legacy form), with `size` taken from
 * the model's `image_size` so that a folder without the file still feeds the model its own size.
 */
export function defaultPreprocessorConfig(imageHeight: number, imageWidth: number): PreprocessorConfig {
  return {
    doResize: true,
    size: { height: imageHeight, width: imageWidth },
    resample: 2,
    doRescale: true,
    rescaleFactor: 1 / 255,
    doNormalize: true,
    imageMean: [...IMAGENET_MEAN],
    imageStd: [...IMAGENET_STD],
    source: 'defaults',
  };
}

function bool(r: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = r[key] ?? fallback;
  if (typeof v !== 'boolean') configInvalid('preprocessor_config.json', `"${key}" must be a boolean`);
  return v;
}

function dim(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > 65536)
    configInvalid('preprocessor_config.json', `${what} must be an integer from 1 to 65536`);
  return v;
}

function triple(v: unknown, key: string, fallback: [number, number, number]): [number, number, number] {
  if (v === undefined || v === null) return [...fallback];
  // transformers broadcasts a single number to every channel.
  const arr = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    configInvalid('preprocessor_config.json', `"${key}" must be a number or 3 numbers (RGB)`);
  }
  if (key === 'image_std' && arr.some((x) => x === 0))
    configInvalid('preprocessor_config.json', '"image_std" must not contain 0');
  return arr as [number, number, number];
}

/** Parses preprocessor_config.json's text. Exported for tests; use {@link readPreprocessorConfig}. */
export function parsePreprocessorConfig(
  text: string,
  imageHeight: number,
  imageWidth: number,
  source = 'preprocessor_config.json',
): PreprocessorConfig {
  const r = parseJsonObject(text, (m) => configInvalid('preprocessor_config.json', m));
  const d = defaultPreprocessorConfig(imageHeight, imageWidth);

  let size = d.size;
  const s = r.size;
  if (typeof s === 'number') {
    size = { height: dim(s, '"size"'), width: dim(s, '"size"') }; // legacy: square
  } else if (s !== undefined && s !== null) {
    if (typeof s !== 'object' || Array.isArray(s))
      configInvalid('preprocessor_config.json', '"size" must be a number or {"height", "width"}');
    const o = s as Record<string, unknown>;
    if (o.height === undefined || o.width === undefined) {
      // ViTImageProcessor.resize raises on anything but height/width (e.g. shortest_edge) too.
      configInvalid(
        'preprocessor_config.json',
        `"size" must have "height" and "width" (ViTImageProcessor squashes to a fixed size), got ${JSON.stringify(s)}`,
      );
    }
    size = { height: dim(o.height, '"size.height"'), width: dim(o.width, '"size.width"') };
  }
  const resample = r.resample ?? 2;
  if (resample === 0)
    configInvalid(
      'preprocessor_config.json',
      '"resample": 0 (NEAREST) is not supported; use 1–5 (BILINEAR = 2 is the checkpoints\' choice)',
    );
  if (typeof resample !== 'number' || !Number.isInteger(resample) || resample < 1 || resample > 5) {
    configInvalid(
      'preprocessor_config.json',
      `"resample" must be a PIL filter number from 1 to 5, got ${JSON.stringify(resample)}`,
    );
  }
  const rescaleFactor = r.rescale_factor ?? d.rescaleFactor;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor))
    configInvalid('preprocessor_config.json', '"rescale_factor" must be a number');
  return {
    doResize: bool(r, 'do_resize', true),
    size,
    resample,
    doRescale: bool(r, 'do_rescale', true),
    rescaleFactor,
    doNormalize: bool(r, 'do_normalize', true),
    imageMean: triple(r.image_mean, 'image_mean', IMAGENET_MEAN),
    imageStd: triple(r.image_std, 'image_std', IMAGENET_STD),
    source,
  };
}

/**
 * `dir/preprocessor_config.json`, or {@link defaultPreprocessorConfig} when the folder has none
 * (the tiny test checkpoints, hand-made folders).
 */
export async function readPreprocessorConfig(
  dir: string,
  imageHeight: number,
  imageWidth: number,
): Promise<PreprocessorConfig> {
  const file = path.join(dir, 'preprocessor_config.json');
  const text = await readOptionalText(file, MAX_CONFIG_JSON_BYTES, (_, message, cause) => {
    throw new VitMsnError('ERR_CONFIG_INVALID', `${file} ${message}`, { cause });
  });
  if (text === undefined) return defaultPreprocessorConfig(imageHeight, imageWidth);
  return parsePreprocessorConfig(text, imageHeight, imageWidth, file);
}
