/**
 * Reads a model folder's config.json: the user-facing camelCase copy (`model.config`) and the
 * numbers the engine needs, with a precise ERR_CONFIG_* error for anything unusable.
 */
import path from 'node:path';
import type { NativeConfig } from './binding';
import { VitMsnError } from './errors';
import { parseJsonObject } from './json-object';
import { MAX_CONFIG_JSON_BYTES, readBoundedText } from './read-file';
import { configInvalid } from './check';

/**
 * config.json with its keys in camelCase (`hidden_size` → `hiddenSize`). The fields the engine
 * uses are typed; everything else the file holds is kept as is.
 */
export interface ViTMSNConfig {
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  imageSize: number | [number, number];
  patchSize: number;
  numChannels: number;
  layerNormEps: number;
  qkvBias: boolean;
  hiddenAct: string;
  modelType?: string;
  architectures?: string[];
  /** Class index → label name, when the checkpoint has a classifier (keys are decimal strings). */
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  [key: string]: unknown;
}

const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function positiveInt(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (v === undefined) configInvalid('config.json', `missing "${key}"`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    configInvalid('config.json', `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** An int, or a [h, w] pair of ints (transformers accepts both for image_size and patch_size). */
function pair(raw: Record<string, unknown>, key: string): [number, number] {
  const v = raw[key];
  if (Array.isArray(v) && v.length === 2) {
    return [positiveInt({ [`${key}[0]`]: v[0] }, `${key}[0]`), positiveInt({ [`${key}[1]`]: v[1] }, `${key}[1]`)];
  }
  const n = positiveInt(raw, key);
  return [n, n];
}

/** Parses config.json's text. Exported for tests; use {@link readConfig}. */
export function parseConfig(text: string): { config: ViTMSNConfig; native: NativeConfig } {
  const r = parseJsonObject(text, (m) => configInvalid('config.json', m));

  const hidden = positiveInt(r, 'hidden_size');
  const heads = positiveInt(r, 'num_attention_heads');
  if (hidden % heads !== 0)
    configInvalid('config.json', `hidden_size (${hidden}) must be a multiple of num_attention_heads (${heads})`);
  const [imageHeight, imageWidth] = pair(r, 'image_size');
  const [patch, patchW] = pair(r, 'patch_size');
  if (patch !== patchW) configInvalid('config.json', 'non-square patch_size is not supported');
  if (imageHeight < patch || imageWidth < patch) configInvalid('config.json', 'image_size must be at least patch_size');
  const eps = r.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1))
    configInvalid('config.json', '"layer_norm_eps" must be a number in (0, 1)');
  const act = r.hidden_act ?? 'gelu';
  if (act !== 'gelu')
    configInvalid(
      'config.json',
      `hidden_act ${JSON.stringify(act)} is not supported (ViT-MSN uses "gelu", the exact erf form)`,
    );
  const qkvBias = r.qkv_bias ?? true;
  if (typeof qkvBias !== 'boolean') configInvalid('config.json', '"qkv_bias" must be a boolean');

  let numLabels = -1;
  if (r.id2label !== undefined) {
    if (r.id2label === null || typeof r.id2label !== 'object' || Array.isArray(r.id2label))
      configInvalid('config.json', '"id2label" must be an object');
    numLabels = Object.keys(r.id2label).length;
  } else if (r.num_labels !== undefined) {
    numLabels = positiveInt(r, 'num_labels');
  }

  const native: NativeConfig = {
    hiddenSize: hidden,
    numHiddenLayers: positiveInt(r, 'num_hidden_layers'),
    numAttentionHeads: heads,
    intermediateSize: positiveInt(r, 'intermediate_size'),
    imageHeight,
    imageWidth,
    patchSize: patch,
    numChannels: positiveInt(r, 'num_channels', 3),
    layerNormEps: eps,
    qkvBias,
    numLabels,
  };
  const config = Object.fromEntries(Object.entries(r).map(([k, v]) => [camel(k), v])) as ViTMSNConfig;
  // Fill the defaults transformers would apply, so model.config states what the engine runs.
  config.numChannels = native.numChannels;
  config.layerNormEps = native.layerNormEps;
  config.qkvBias = qkvBias;
  config.hiddenAct = act;
  return { config, native };
}

/** Reads and parses `dir/config.json`. */
export async function readConfig(dir: string): Promise<{ config: ViTMSNConfig; native: NativeConfig }> {
  const file = path.join(dir, 'config.json');
  const text = await readBoundedText(file, MAX_CONFIG_JSON_BYTES, (problem, message, cause) => {
    if (problem === 'missing') throw new VitMsnError('ERR_CONFIG_NOT_FOUND', `no config.json in ${dir}`, { cause });
    throw new VitMsnError('ERR_CONFIG_INVALID', `${file} ${message}`, { cause });
  });
  return parseConfig(text);
}
