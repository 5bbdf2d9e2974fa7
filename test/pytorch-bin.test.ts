// pytorch_model.bin (torch.save's zip format, single and sharded) loads to exactly the model its
// safetensors twin gives, and malicious pickles are refused without running anything.
// Fixtures: test/fixtures/bin, written by make_bin_fixtures.py with the real torch.save.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { goldenDir, type GoldenModel } from './support/goldens';

const BIN_DIR = path.join(__dirname, 'fixtures', 'bin');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-bin-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

async function run(dir: string, size: number, masked: boolean) {
  const m = await loadModel(dir, { device: 'cpu', threads: 2 });
  const shape = [2, 3, size, size];
  const x = new Float32Array(shape.reduce((a, b) => a * b)).map((_, i) => Math.cos(i * 0.013) * 1.1);
  const n = (size / m.config.patchSize) ** 2;
  const boolMaskedPos = masked ? new Uint8Array(2 * n).map((_, i) => (i % 3 === 0 ? 1 : 0)) : undefined;
  const out = await m.forward(x, shape, { outputHiddenStates: true, boolMaskedPos });
  await m.dispose();
  return out;
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

describe('pytorch_model.bin gives the same outputs as its safetensors twin', () => {
  const cases: Array<[string, string, GoldenModel, boolean]> = [
    ['classifier, shared storages, offsets, a transposed view', 'tiny-cls', 'tiny-cls', false],
    ['sharded with pytorch_model.bin.index.json', 'tiny-s8-sharded', 'tiny-s8', false],
    ['float64 storage with mask token and _metadata', 'tiny-mask-f64', 'tiny-mask', true],
  ];
  it.each(cases)('%s', async (_, binName, twin, masked) => {
    const size = JSON.parse(readFileSync(path.join(goldenDir(twin), 'config.json'), 'utf8')).image_size as number;
    const want = await run(goldenDir(twin), size, masked);
    const got = await run(path.join(BIN_DIR, binName), size, masked);
    expect(bytes(got.lastHiddenState.data).equals(bytes(want.lastHiddenState.data))).toBe(true);
    expect(got.hiddenStates!.length).toBe(want.hiddenStates!.length);
    got.hiddenStates!.forEach((h, i) => expect(bytes(h.data).equals(bytes(want.hiddenStates![i].data))).toBe(true));
    if (want.logits) expect(bytes(got.logits!.data).equals(bytes(want.logits.data))).toBe(true);
    else expect(got.logits).toBeUndefined();
  });

  it('safetensors wins when a folder holds both', async () => {
    const dir = path.join(tmpRoot, 'both');
    mkdirSync(dir);
    copyFileSync(path.join(goldenDir('tiny-s8'), 'config.json'), path.join(dir, 'config.json'));
    copyFileSync(path.join(goldenDir('tiny-s8'), 'model.safetensors'), path.join(dir, 'model.safetensors'));
    writeFileSync(path.join(dir, 'pytorch_model.bin'), 'not a zip'); // would fail if it were read
    const m = await loadModel(dir, { device: 'cpu' });
    await m.dispose();
  });
});

describe('malicious or broken pytorch_model.bin is refused', () => {
  const markers = ['/tmp/vitmsn-pwned-os-system', '/tmp/vitmsn-pwned-eval'];

  function folderWith(fixture: string): string {
    const dir = path.join(tmpRoot, fixture);
    mkdirSync(dir);
    copyFileSync(path.join(BIN_DIR, 'malicious', 'config.json'), path.join(dir, 'config.json'));
    copyFileSync(path.join(BIN_DIR, 'malicious', `${fixture}.bin`), path.join(dir, 'pytorch_model.bin'));
    return dir;
  }

  const cases: Array<[string, RegExp]> = [
    ['global-os-system', /refusing global 'posix\.system'|refusing global 'os\.system'/],
    ['global-builtins-eval', /refusing global '(__builtin__|builtins)\.eval'/],
    ['reduce-storage-type', /REDUCE on 'torch\.FloatStorage' is not allowed/],
    ['storage-offset-past-end', /tensor 'x' reaches element 6 .*storage holds 4/],
  ];
  it.each(cases)('%s', async (fixture, message) => {
    for (const m of markers) rmSync(m, { force: true });
    const err = await loadModel(folderWith(fixture)).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_CHECKPOINT_INVALID' });
    expect(err.message).toMatch(message);
    for (const m of markers) expect(existsSync(m)).toBe(false);
  });

  it('the legacy (pre-1.6) format, a truncated archive and a compressed entry', async () => {
    const good = readFileSync(path.join(BIN_DIR, 'tiny-s8-sharded', 'pytorch_model-00002-of-00002.bin'));
    const cfg = path.join(goldenDir('tiny-s8'), 'config.json');
    const write = (name: string, data: Buffer) => {
      const dir = path.join(tmpRoot, name);
      mkdirSync(dir);
      copyFileSync(cfg, path.join(dir, 'config.json'));
      writeFileSync(path.join(dir, 'pytorch_model.bin'), data);
      return dir;
    };
    // Legacy files start with a pickled magic number, not "PK".
    await expect(loadModel(write('legacy', Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc])))).rejects.toMatchObject({
      code: 'ERR_CHECKPOINT_INVALID',
      message: expect.stringMatching(/not a zip archive/),
    });
    for (const cut of [good.length - 10, Math.floor(good.length / 2), 100]) {
      await expect(loadModel(write(`truncated-${cut}`, good.subarray(0, cut)))).rejects.toMatchObject({
        code: 'ERR_CHECKPOINT_INVALID',
      });
    }
    // Mark the first entry deflated (method 8) in the central directory.
    const compressed = Buffer.from(good);
    const cd = compressed.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    compressed.writeUInt16LE(8, cd + 10);
    await expect(loadModel(write('compressed', compressed))).rejects.toMatchObject({
      code: 'ERR_CHECKPOINT_INVALID',
      message: expect.stringMatching(/compressed/),
    });
  });
});
