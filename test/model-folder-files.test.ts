// The files of a model folder are read with a bound: a FIFO, a directory or an oversized file in
// place of config.json, preprocessor_config.json, an .index.json, a shard or a weights file is a
// coded error at once — never a read that blocks forever and keeps the process from exiting.
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type ErrorCode } from '../lib/index';
import { runNode } from './support/child';
import { HAS_MKFIFO, makeFifo, settleWithin } from './support/fifo';
import { goldenDir } from './support/goldens';
import { encodeSafetensors, readSafetensors } from './support/safetensors';
import { expectCode } from './support/expect-code';

const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-folder-files-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

let n = 0;
/** A copy of tiny-s8 (config.json + model.safetensors) without the files named in `omit`. */
function folder(omit: string[] = []): string {
  const dir = path.join(tmpRoot, `m${n++}`);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) {
    if (!omit.includes(f)) copyFileSync(path.join(goldenDir('tiny-s8'), f), path.join(dir, f));
  }
  return dir;
}

/** tiny-s8 as two safetensors shards and an index. */
function shardedFolder(): string {
  const dir = folder(['model.safetensors']);
  const t = Object.entries(readSafetensors(path.join(goldenDir('tiny-s8'), 'model.safetensors')));
  const half = Math.ceil(t.length / 2);
  const weightMap: Record<string, string> = {};
  [t.slice(0, half), t.slice(half)].forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeFileSync(path.join(dir, file), encodeSafetensors(Object.fromEntries(part)));
    for (const [k] of part) weightMap[k] = file;
  });
  writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  return dir;
}

/** loadModel(dir) with `file` replaced by a FIFO: must fail with `code` within a second. */
async function expectFifoRefused(dir: string, file: string, code: ErrorCode) {
  const fifo = path.join(dir, file);
  rmSync(fifo, { force: true });
  makeFifo(fifo);
  const start = Date.now();
  expectCode(await settleWithin(loadModel(dir, { device: 'cpu' }), 2000, fifo), code, /not a regular file/);
  expect(Date.now() - start).toBeLessThan(1000);
}

describe.skipIf(!HAS_MKFIFO)('a FIFO in a model folder', () => {
  it('config.json', () => expectFifoRefused(folder(), 'config.json', 'ERR_CONFIG_INVALID'));
  it('preprocessor_config.json', () => expectFifoRefused(folder(), 'preprocessor_config.json', 'ERR_CONFIG_INVALID'));
  it('model.safetensors', () => expectFifoRefused(folder(), 'model.safetensors', 'ERR_CHECKPOINT_INVALID'));
  it('model.safetensors.index.json', () =>
    expectFifoRefused(shardedFolder(), 'model.safetensors.index.json', 'ERR_CHECKPOINT_INVALID'));
  it('a shard named by the index', () =>
    expectFifoRefused(shardedFolder(), 'model-00002-of-00002.safetensors', 'ERR_CHECKPOINT_INVALID'));
  it('pytorch_model.bin and its index', async () => {
    await expectFifoRefused(folder(['model.safetensors']), 'pytorch_model.bin', 'ERR_CHECKPOINT_INVALID');
    await expectFifoRefused(folder(['model.safetensors']), 'pytorch_model.bin.index.json', 'ERR_CHECKPOINT_INVALID');
  });

  // In a child: a regression would leave a libuv thread blocked in open(), and the process hung.
  it('the process can still exit afterwards', async () => {
    const dir = folder();
    rmSync(path.join(dir, 'config.json'));
    makeFifo(path.join(dir, 'config.json'));
    const r = await runNode(
      `
      vitmsn.loadModel(${JSON.stringify(dir)}, { device: 'cpu' }).then(() => console.log('loaded'), (e) => console.log(e.code));`,
      20_000,
    );
    expect(r.timedOut, 'the child did not exit').toBe(false);
    expect(r.stdout.trim()).toBe('ERR_CONFIG_INVALID');
  });
});

describe('other files that are not usable JSON files', () => {
  const settle = <T>(p: Promise<T>) => Promise.allSettled([p]).then(([r]) => r);

  it('a directory named config.json or preprocessor_config.json', async () => {
    const a = folder(['config.json']);
    mkdirSync(path.join(a, 'config.json'));
    expectCode(await settle(loadModel(a)), 'ERR_CONFIG_INVALID', /config\.json.*not a regular file/);
    const b = folder();
    mkdirSync(path.join(b, 'preprocessor_config.json'));
    expectCode(await settle(loadModel(b)), 'ERR_CONFIG_INVALID', /preprocessor_config\.json.*not a regular file/);
  });

  it('a config.json or preprocessor_config.json over 16 MiB (sparse, never read)', async () => {
    const a = folder();
    truncateSync(path.join(a, 'config.json'), 16 * 2 ** 20 + 1);
    expectCode(await settle(loadModel(a)), 'ERR_CONFIG_INVALID', /config\.json.*bytes/);
    const b = folder();
    writeFileSync(path.join(b, 'preprocessor_config.json'), '{}');
    truncateSync(path.join(b, 'preprocessor_config.json'), 16 * 2 ** 20 + 1);
    expectCode(await settle(loadModel(b)), 'ERR_CONFIG_INVALID', /preprocessor_config\.json.*bytes/);
  });

  it('an index.json over the index limit', async () => {
    const dir = shardedFolder();
    truncateSync(path.join(dir, 'model.safetensors.index.json'), 100_000_001);
    expectCode(await settle(loadModel(dir)), 'ERR_CHECKPOINT_INVALID', /index/);
  });

  it('a config.json that is a symlink to a regular file still loads', async () => {
    const dir = folder(['config.json']);
    symlinkSync(path.join(goldenDir('tiny-s8'), 'config.json'), path.join(dir, 'config.json'));
    await (await loadModel(dir, { device: 'cpu' })).dispose();
    expect(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')).hidden_size).toBe(32);
  });
});

// The hub cache is read synchronously by the offline path today: run it in a child so a FIFO
// there cannot block this process.
describe.skipIf(!HAS_MKFIFO)('a FIFO in the Hugging Face cache (offline)', () => {
  const COMMIT = 'a'.repeat(40);
  function cache(fifoFile: string): string {
    const root = path.join(tmpRoot, `hub${n++}`);
    const repo = path.join(root, 'models--test-org--fifo');
    const snap = path.join(repo, 'snapshots', COMMIT);
    mkdirSync(snap, { recursive: true });
    mkdirSync(path.join(repo, 'refs'));
    writeFileSync(path.join(repo, 'refs', 'main'), COMMIT);
    copyFileSync(path.join(goldenDir('tiny-s8'), 'config.json'), path.join(snap, 'config.json'));
    const target = fifoFile === 'refs/main' ? path.join(repo, 'refs', 'main') : path.join(snap, fifoFile);
    rmSync(target, { force: true });
    makeFifo(target);
    return root;
  }
  async function load(root: string): Promise<string> {
    const r = await runNode(
      `
      vitmsn.loadModel('test-org/fifo', { offline: true, cacheDir: ${JSON.stringify(root)}, device: 'cpu' })
        .then(() => console.log('loaded'), (e) => console.log(e.code));`,
      20_000,
    );
    expect(r.timedOut, 'the child did not exit').toBe(false);
    return r.stdout.trim();
  }
  it('model.safetensors.index.json', async () =>
    expect(await load(cache('model.safetensors.index.json'))).toBe('ERR_CHECKPOINT_INVALID'));
  it('refs/main', async () => expect(await load(cache('refs/main'))).toBe('ERR_OFFLINE'));
});
