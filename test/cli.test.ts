// The `vitmsn` command (dist/cli.js, the package's bin) run as a child process, as a user would.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { batchSizeOf } from '../lib/encode';
import { startFakeHub } from './support/fake-hub';
import { goldenDir, type GoldenModel } from './support/goldens';
import { readSafetensors } from './support/safetensors';
import { TOL } from './tolerances';
import { tinyModelFolder } from './support/real-models';

const execFileP = promisify(execFile);
const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const FIX = path.join(__dirname, 'fixtures');
const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-cli-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], {
      cwd: tmpRoot,
      maxBuffer: 64 << 20,
      env,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function folder(name: GoldenModel, size: number): string {
  return tinyModelFolder(path.join(tmpRoot, name), name, size);
}

const images = [
  path.join(FIX, 'images', 'chelsea.png'),
  path.join(FIX, 'pil', 'exif6.jpg'),
  path.join(FIX, 'pil', 'anim.gif'),
];

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

describe('vitmsn CLI', () => {
  let s8: string;
  let cls: string;
  let want: Float32Array; // encode() of `images` with mean pooling, normalised
  beforeAll(async () => {
    s8 = folder('tiny-s8', 32);
    cls = folder('tiny-cls', 48);
    const m = await loadModel(s8, { device: 'cpu' });
    want = (await m.encode(images, { pooling: 'mean', normalize: true })).data;
    await m.dispose();
  });

  it('info: version, backends and why, CPU features', async () => {
    const r = await cli(['info']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^vitmsn \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/cpu\s+usable/);
    expect(r.stdout).toMatch(/cuda\s+(usable|not usable|not compiled): \S/);
    const j = JSON.parse((await cli(['info', '--json'])).stdout);
    expect(j.backends.map((b: { name: string }) => b.name)).toContain('cpu');
    expect(Array.isArray(j.cpu.features)).toBe(true);
    expect((await cli(['--version'])).stdout.trim()).toBe(
      JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
    );
  });

  it('embed: JSON lines on stdout, one per image, equal to encode()', async () => {
    const r = await cli(['embed', ...images, '--model', s8, '--pooling', 'mean', '--normalize']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.image)).toEqual(images);
    const got = lines.flatMap((l) => l.embedding as number[]);
    expect(got).toHaveLength(want.length);
    expect(maxRel(got, want)).toBeLessThanOrEqual(TOL.encodeVsForward);
  });

  it('embed --out .npy (read back by numpy) and .safetensors', async () => {
    const npy = path.join(tmpRoot, 'e.npy');
    expect((await cli(['embed', ...images, '-m', s8, '--pooling', 'mean', '--normalize', '--out', npy])).code).toBe(0);
    const { stdout } = await execFileP(process.env.VITMSN_PYTHON || 'python3', [
      '-c',
      `import numpy as np, json, sys; a = np.load(sys.argv[1]); print(json.dumps({"shape": a.shape, "dtype": str(a.dtype), "data": a.ravel().tolist()}))`,
      npy,
    ]);
    const a = JSON.parse(stdout);
    expect(a.shape).toEqual([3, 32]);
    expect(a.dtype).toBe('float32');
    expect(Float32Array.from(a.data)).toEqual(want);
    const st = path.join(tmpRoot, 'e.safetensors');
    expect((await cli(['embed', ...images, '-m', s8, '--pooling', 'mean', '--normalize', '-o', st])).code).toBe(0);
    const t = readSafetensors(st).embeddings;
    expect(t.shape).toEqual([3, 32]);
    expect(t.data).toEqual(want);
  });

  it('embed: batches of --batch-size, or of the library default per device', async () => {
    // The CPU backend's op profile (VITMSN_CPU_PROFILE) names every GEMM with its M × N × K; the
    // patch embedding's M is (images in the batch) × (patches per image).
    const cfg = JSON.parse(readFileSync(path.join(s8, 'config.json'), 'utf8'));
    const perImage = (cfg.image_size / cfg.patch_size) ** 2;
    const patchK = cfg.num_channels * cfg.patch_size ** 2;
    const twentyOne = Array.from({ length: 7 }, () => images).flat();
    const batches = async (extra: string[]) => {
      const r = await cli(['embed', ...twentyOne, '-m', s8, '--device', 'cpu', ...extra], {
        ...process.env,
        VITMSN_CPU_PROFILE: '1',
      });
      expect(r.code).toBe(0);
      const ms = [...r.stderr.matchAll(/gemm (\d+)x\d+x(\d+)/g)]
        .filter((g) => Number(g[2]) === patchK)
        .map((g) => Number(g[1]) / perImage);
      return [...new Set(ms)].sort((a, b) => b - a);
    };
    const cpuDefault = batchSizeOf({}, 'cpu'); // one caller's encode() on the CPU
    expect(await batches([])).toEqual([cpuDefault, 21 % cpuDefault].filter((x) => x > 0));
    // Honoured as given, also above the CPU's default batching.maxBatch (8).
    expect(await batches(['--batch-size', '12'])).toEqual([12, 9]);
    expect(await batches(['--batch-size', '4'])).toEqual([4, 1]);
  });

  it('embed expands a folder into its images', async () => {
    const r = await cli(['embed', path.join(FIX, 'images'), '-m', s8]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(4);
  });

  it('classify: top-k per image', async () => {
    const r = await cli(['classify', ...images, '--model', cls, '--top-k', '2']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l.predictions).toHaveLength(2);
      expect(l.predictions[0].label).toMatch(/^class_\d$/);
      expect(l.predictions[0].score).toBeGreaterThanOrEqual(l.predictions[1].score);
    }
  });

  it('errors: code on stderr, exit 1; usage errors exit 2', async () => {
    const missing = await cli(['embed', path.join(tmpRoot, 'nope.jpg'), '-m', s8]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ERR_IMAGE_NOT_FOUND/);
    const backbone = await cli(['classify', images[0], '-m', s8]);
    expect(backbone.code).toBe(1);
    expect(backbone.stderr).toMatch(/ERR_NO_CLASSIFIER/);
    const gpuDecode = await cli(['embed', images[1], '-m', s8, '--device', 'cpu', '--decode', 'gpu']);
    expect(gpuDecode.code).toBe(1);
    expect(gpuDecode.stderr).toMatch(/ERR_INVALID_ARGUMENT.*CUDA/);
    const noModel = await cli(['embed', images[0], '-m', path.join(tmpRoot, 'no-model')]);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toMatch(/ERR_CONFIG_NOT_FOUND/);
    for (const args of [
      ['embed', images[0]],
      ['frobnicate'],
      ['embed', images[0], '-m', s8, '--pooling', 'max'],
      ['embed', images[0], '-m', s8, '--decode', 'nvjpeg'],
      ['embed', '-m', s8, '--bogus'],
      [],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/Usage/);
    }
  });

  it('embed --model owner/name downloads into the HF cache with progress on stderr', async () => {
    const read = (f: string) => readFileSync(path.join(goldenDir('tiny-s8'), f));
    const hub = await startFakeHub({
      'test-org/tiny-cli': {
        refs: { main: 'a'.repeat(40) },
        commits: {
          ['a'.repeat(40)]: {
            'config.json': read('config.json'),
            'model.safetensors': read('model.safetensors'),
            'preprocessor_config.json': Buffer.from(
              JSON.stringify({
                size: 32,
                image_mean: [0.485, 0.456, 0.406],
                image_std: [0.229, 0.224, 0.225],
                resample: 2,
              }),
            ),
          },
        },
      },
    });
    try {
      const home = path.join(tmpRoot, 'hf-home');
      const env = {
        ...process.env,
        HF_ENDPOINT: hub.url,
        HF_HOME: home,
        HF_HUB_CACHE: '',
        HF_HUB_OFFLINE: '',
        HF_TOKEN: '',
      };
      const r = await cli(
        ['embed', images[0], '--model', 'test-org/tiny-cli', '--pooling', 'mean', '--normalize'],
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/downloading model\.safetensors/);
      expect(r.stderr).toMatch(/downloaded model\.safetensors/);
      const line = JSON.parse(r.stdout.trim().split('\n')[0]);
      expect(maxRel(line.embedding, want.subarray(0, line.embedding.length))).toBeLessThanOrEqual(TOL.f32VsFloat64);
      expect(existsSync(path.join(home, 'hub', 'models--test-org--tiny-cli', 'refs', 'main'))).toBe(true);
      // A second run is served from the cache, offline.
      const again = await cli(['embed', images[0], '--model', 'test-org/tiny-cli'], { ...env, HF_HUB_OFFLINE: '1' });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).not.toMatch(/downloading/);
    } finally {
      await hub.close();
    }
  });
});
