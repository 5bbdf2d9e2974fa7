/**
 * The probe's inputs: labelled embeddings, from images (encoded by a model), an ImageFolder tree,
 * or a cache file.
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { VitMsnError } from '../errors';
import type { Pooling } from '../encode';
import { IMAGE_EXTENSIONS, type ImageInput } from '../images';
import type { Model } from '../model';
import { safetensorsBytes } from '../writers';
import { asFloat64, readSafetensorsFile } from './safetensors-read';
import { invalid } from '../check';

/** Embeddings with one label per row. */
export interface LabelledEmbeddings {
  /** [N, D] row-major. */
  data: Float32Array | Float64Array;
  shape: [number, number];
  /** One per row. */
  labels: string[];
  /** How they were made (kept in caches and heads). */
  pooling?: Pooling;
  /** The image of each row, when known. */
  images?: string[];
}

export interface ImageFolder {
  /** Class names: the sub-folder names, sorted (code-point order, as torchvision's ImageFolder). */
  classes: string[];
  images: string[];
  labels: string[];
  /** Files that were not images (only with skipNonImages). */
  skipped: string[];
}

/**
 * Reads an ImageFolder tree: `root/<class>/<image>`, one sub-folder per class, not recursive.
 * Hidden entries (names starting with '.') are ignored. A file that is not an image (by extension),
 * or a folder inside a class folder, is an error (ERR_INVALID_ARGUMENT) naming it, unless
 * `skipNonImages` is set: then it is listed in `skipped` (the CLI prints a warning per file).
 * Files directly under the root are ignored. An empty tree, or a class folder without images, is
 * ERR_INVALID_ARGUMENT.
 */
export function readImageFolder(root: string, options: { skipNonImages?: boolean } = {}): ImageFolder {
  let entries: string[];
  try {
    if (!statSync(root).isDirectory()) throw new Error('not a directory');
    entries = readdirSync(root);
  } catch (e) {
    invalid(`${root}: not a readable folder (${(e as Error).message})`);
  }
  const classes = entries.filter((n) => !n.startsWith('.') && statSync(path.join(root, n)).isDirectory()).sort();
  if (classes.length === 0) invalid(`${root} has no class sub-folders (expected root/<class>/<image files>)`);
  const out: ImageFolder = { classes, images: [], labels: [], skipped: [] };
  const bad: string[] = [];
  for (const c of classes) {
    const dir = path.join(root, c);
    let n = 0;
    for (const f of readdirSync(dir)
      .filter((x) => !x.startsWith('.'))
      .sort()) {
      const p = path.join(dir, f);
      if (IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase()) && statSync(p).isFile()) {
        out.images.push(p);
        out.labels.push(c);
        n++;
      } else if (options.skipNonImages) out.skipped.push(p);
      else bad.push(p);
    }
    if (n === 0 && bad.length === 0) invalid(`class folder ${dir} holds no images`);
  }
  if (bad.length) {
    invalid(
      `not image files in class folders (skip them with skipNonImages / --skip-non-images): ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
    );
  }
  return out;
}

export interface EmbedProgress {
  done: number;
  total: number;
}

/**
 * Encodes labelled images with `model.encode()`, `chunk` images per call (default 64), reporting
 * progress after each.
 */
export async function embedImages(
  model: Model,
  images: readonly ImageInput[],
  labels: readonly (string | number)[],
  options: { pooling?: Pooling; batchSize?: number; chunk?: number; onProgress?: (p: EmbedProgress) => void } = {},
): Promise<LabelledEmbeddings> {
  if (!Array.isArray(images) || !Array.isArray(labels)) invalid('images and labels must be arrays');
  if (images.length !== labels.length) {
    throw new VitMsnError(
      'ERR_SHAPE_MISMATCH',
      `${images.length} images but ${labels.length} labels: give one label per image`,
    );
  }
  if (images.length === 0) invalid('no images given');
  const pooling = options.pooling ?? 'cls';
  const chunk = options.chunk ?? 64;
  const D = model.config.hiddenSize;
  const data = new Float32Array(images.length * D);
  for (let i = 0; i < images.length; i += chunk) {
    const part = images.slice(i, i + chunk);
    const t = await model.encode(part, { pooling, ...(options.batchSize ? { batchSize: options.batchSize } : {}) });
    data.set(t.data, i * D);
    options.onProgress?.({ done: i + part.length, total: images.length });
  }
  return {
    data,
    shape: [images.length, D],
    labels: labels.map(String),
    pooling,
    images: images.every((x) => typeof x === 'string') ? (images as string[]).slice() : undefined,
  };
}

/** Writes embeddings to a .safetensors file: `embeddings` [N, D] F32, labels/images/pooling in metadata. */
export function saveEmbeddings(file: string, e: LabelledEmbeddings, extra: Record<string, string> = {}): void {
  const f32 = e.data instanceof Float32Array ? e.data : Float32Array.from(e.data);
  const meta: Record<string, string> = { ...extra, format: 'vitmsn-embeddings', labels: JSON.stringify(e.labels) };
  if (e.pooling) meta.pooling = e.pooling;
  if (e.images) meta.images = JSON.stringify(e.images);
  writeFileSync(file, safetensorsBytes({ embeddings: { data: f32, shape: e.shape } }, meta));
}

export function loadEmbeddings(file: string): LabelledEmbeddings & { metadata: Record<string, string> } {
  const { tensors, metadata } = readSafetensorsFile(file);
  const t = tensors.embeddings;
  if (!t || t.shape.length !== 2 || metadata.labels === undefined) {
    invalid(`${file}: not an embeddings cache (needs an "embeddings" [N, D] tensor and "labels" metadata)`);
  }
  const labels = JSON.parse(metadata.labels) as string[];
  return {
    data: Float32Array.from(asFloat64(t)),
    shape: [t.shape[0], t.shape[1]],
    labels,
    pooling: metadata.pooling as Pooling | undefined,
    images: metadata.images ? (JSON.parse(metadata.images) as string[]) : undefined,
    metadata,
  };
}

/** Checks a labelled set; returns its class names (sorted) and each row's class index. */
export function checkLabelled(
  e: LabelledEmbeddings,
  minClasses = 2,
): { classes: string[]; y: Int32Array; N: number; D: number } {
  if (!e || typeof e !== 'object' || !(e.data instanceof Float32Array || e.data instanceof Float64Array)) {
    invalid('embeddings must be { data: Float32Array | Float64Array, shape: [N, D], labels }');
  }
  const [N, D] = e.shape ?? [];
  if (!Number.isSafeInteger(N) || !Number.isSafeInteger(D) || N < 1 || D < 1 || e.data.length !== N * D) {
    throw new VitMsnError(
      'ERR_SHAPE_MISMATCH',
      `embeddings hold ${e.data.length} values, which does not fit shape ${JSON.stringify(e.shape)}`,
    );
  }
  if (!Array.isArray(e.labels) || e.labels.length !== N) {
    throw new VitMsnError(
      'ERR_SHAPE_MISMATCH',
      `${N} embeddings but ${Array.isArray(e.labels) ? e.labels.length : 'no'} labels: give one label per row`,
    );
  }
  for (let i = 0; i < e.data.length; i++) {
    if (!Number.isFinite(e.data[i])) {
      invalid(`embedding row ${Math.floor(i / D)} has a non-finite value (${e.data[i]})`);
    }
  }
  const labels = e.labels.map(String);
  const classes = [...new Set(labels)].sort();
  if (classes.length < minClasses) {
    invalid(`need at least ${minClasses} classes to fit a classifier, got ${classes.length} (${classes.join(', ')})`);
  }
  const index = new Map(classes.map((c, i) => [c, i]));
  return { classes, y: Int32Array.from(labels, (l) => index.get(l)!), N, D };
}
