// The tiny transformers goldens copied into test/fixtures/goldens (see test/fixtures/README.md).
import path from 'node:path';
import { readSafetensors, type StTensor } from './safetensors';

export const GOLDEN_DIR = path.join(__dirname, '..', 'fixtures', 'goldens');
export const GOLDEN_MODELS = ['tiny-s8', 'tiny-cls', 'tiny-mask'] as const;
export type GoldenModel = (typeof GOLDEN_MODELS)[number];

export function goldenDir(name: GoldenModel): string {
  return path.join(GOLDEN_DIR, name);
}

export function golden(name: GoldenModel): Record<string, StTensor> {
  return readSafetensors(path.join(goldenDir(name), 'golden.safetensors'));
}
