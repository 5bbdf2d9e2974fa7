// The tiny transformers goldens copied into test/fixtures/goldens (see test/fixtures/README.md).
import path from 'node:path';
import { readSafetensors, type StTensor } from './safetensors';

export const GOLDEN_DIR = path.join(__dirname, '..', 'fixtures', 'goldens');
export const GOLDEN_MODELS = ['tiny-s8', 'tiny-cls', 'tiny-mask'] as const;
export type GoldenModel = (typeof GOLDEN_MODELS)[number];

export function goldenDir(name: GoldenModel): string {
  return path.join(GOLDEN_DIR, name);
}

/** tiny-s8's config.json as the native loader takes it (for tests that call the addon directly). */
export const TINY_S8_NATIVE_CONFIG = Object.freeze({
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  intermediateSize: 64,
  imageHeight: 32,
  imageWidth: 32,
  patchSize: 8,
  numChannels: 3,
  layerNormEps: 1e-6,
  qkvBias: true,
  numLabels: -1,
});

export function golden(name: GoldenModel): Record<string, StTensor> {
  return readSafetensors(path.join(goldenDir(name), 'golden.safetensors'));
}
