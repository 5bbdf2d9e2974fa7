// Every checkpoint spelling loads to the same model: sharded safetensors, `vit.`-prefixed keys,
// transformers 5 module names, float64 storage.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { goldenDir, type GoldenModel } from './support/goldens';
import { encodeSafetensors, readSafetensors, type StTensor } from './support/safetensors';

const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-formats-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

const TF5_RENAMES: Array<[RegExp, string]> = [
  [/^encoder\.layer\.(\d+)\.attention\.attention\.query\./, 'layers.$1.attention.q_proj.'],
  [/^encoder\.layer\.(\d+)\.attention\.attention\.key\./, 'layers.$1.attention.k_proj.'],
  [/^encoder\.layer\.(\d+)\.attention\.attention\.value\./, 'layers.$1.attention.v_proj.'],
  [/^encoder\.layer\.(\d+)\.attention\.output\.dense\./, 'layers.$1.attention.o_proj.'],
  [/^encoder\.layer\.(\d+)\.intermediate\.dense\./, 'layers.$1.mlp.fc1.'],
  [/^encoder\.layer\.(\d+)\.output\.dense\./, 'layers.$1.mlp.fc2.'],
  [/^encoder\.layer\.(\d+)\./, 'layers.$1.'],
];

function variant(
  name: GoldenModel,
  label: string,
  rename: (k: string) => string,
  shards = 1,
  convert?: (t: StTensor) => StTensor,
): string {
  const dir = path.join(tmpRoot, `${name}-${label}`);
  mkdirSync(dir);
  copyFileSync(path.join(goldenDir(name), 'config.json'), path.join(dir, 'config.json'));
  const tensors = readSafetensors(path.join(goldenDir(name), 'model.safetensors'));
  const entries = Object.entries(tensors).map(
    ([k, t]) => [rename(k.replace(/^vit\./, '')), convert ? convert(t) : t] as const,
  );
  if (shards === 1) {
    writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(Object.fromEntries(entries)));
    return dir;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = entries.filter((_, i) => i % shards === s);
    for (const [k] of part) weightMap[k] = file;
    writeFileSync(path.join(dir, file), encodeSafetensors(Object.fromEntries(part)));
  }
  writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
  );
  return dir;
}

const x = new Float32Array(2 * 3 * 48 * 48).map((_, i) => Math.sin(i * 0.01) * 1.3);
const shape = [2, 3, 48, 48];

describe('checkpoint spellings give identical outputs', () => {
  let reference: Float32Array;
  let referenceLogits: Float32Array;
  beforeAll(async () => {
    const m = await loadModel(goldenDir('tiny-cls'), { device: 'cpu', threads: 2 });
    const out = await m.forward(x, shape);
    reference = out.lastHiddenState.data;
    referenceLogits = out.logits!.data;
    await m.dispose();
  });

  const cases: Array<[string, () => string]> = [
    ['unprefixed legacy names', () => variant('tiny-cls', 'legacy', (k) => k)],
    [
      'every backbone key under vit.',
      () => variant('tiny-cls', 'vit', (k) => (k.startsWith('classifier.') ? k : `vit.${k}`)),
    ],
    [
      'transformers 5 module names',
      () => variant('tiny-cls', 'tf5', (k) => TF5_RENAMES.reduce((s, [re, to]) => s.replace(re, to), k)),
    ],
    ['sharded in 3 files with an index', () => variant('tiny-cls', 'sharded', (k) => k, 3)],
    [
      'stored as float64',
      () =>
        variant(
          'tiny-cls',
          'f64',
          (k) => k,
          1,
          (t) => ({ dtype: 'F64', shape: t.shape, data: Float64Array.from(t.data as Float32Array) }),
        ),
    ],
  ];
  it.each(cases)('%s', async (_, make) => {
    const m = await loadModel(make(), { device: 'cpu', threads: 2 });
    const out = await m.forward(x, shape);
    expect(Buffer.from(out.lastHiddenState.data.buffer).equals(Buffer.from(reference.buffer))).toBe(true);
    expect(Array.from(out.logits!.data)).toEqual(Array.from(referenceLogits));
    await m.dispose();
  });

  it('a sharded index naming a missing shard is an error', async () => {
    const dir = variant('tiny-cls', 'sharded-broken', (k) => k, 2);
    rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadModel(dir)).rejects.toMatchObject({
      code: expect.stringMatching(/ERR_(WEIGHTS_NOT_FOUND|CHECKPOINT_INVALID)/),
    });
  });
});
