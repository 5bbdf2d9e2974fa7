// loadModel('owner/name') against a local fake hub (test/support/fake-hub.ts) on 127.0.0.1: the
// Hugging Face cache layout, progress, 404s, a connection dropped mid-file, offline mode, revision
// pins, tokens, sharded .bin and the local-path-wins rule. Nothing here touches the internet.
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type DownloadProgress } from '../lib/index';
import { goldenDir } from './support/goldens';
import { startFakeHub, type FakeHub } from './support/fake-hub';

const BIN_DIR = path.join(__dirname, 'fixtures', 'bin');
const COMMIT_MAIN = 'b'.repeat(40);
const COMMIT_OLD = 'a'.repeat(40);
const read = (...p: string[]) => readFileSync(path.join(...p));

const tmpRoot = mkdtempSync(path.join(tmpdir(), 'vitmsn-hub-'));
const ENV_KEYS = [
  'HF_HOME',
  'HF_HUB_CACHE',
  'HUGGINGFACE_HUB_CACHE',
  'HF_ENDPOINT',
  'HF_HUB_OFFLINE',
  'HF_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'HF_TOKEN_PATH',
];
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
let hub: FakeHub;
let cacheN = 0;

/** A fresh, empty HF_HOME for one test; returns its hub cache folder. */
function freshCache(): string {
  const home = path.join(tmpRoot, `home-${cacheN++}`);
  process.env.HF_HOME = home;
  return path.join(home, 'hub');
}

beforeAll(async () => {
  const s8 = goldenDir('tiny-s8');
  hub = await startFakeHub({
    'test-org/tiny': {
      refs: { main: COMMIT_MAIN, v1: COMMIT_OLD },
      commits: {
        [COMMIT_MAIN]: {
          'config.json': read(s8, 'config.json'),
          'preprocessor_config.json': Buffer.from('{"do_resize": true, "size": {"height": 32, "width": 32}}'),
          'model.safetensors': read(s8, 'model.safetensors'),
          'pytorch_model.bin': Buffer.from('never downloaded: safetensors is preferred'),
        },
        // An older commit that only has pytorch_model.bin, and a different model.
        [COMMIT_OLD]: {
          'config.json': read(BIN_DIR, 'tiny-mask-f64', 'config.json'),
          'pytorch_model.bin': read(BIN_DIR, 'tiny-mask-f64', 'pytorch_model.bin'),
        },
      },
    },
    'private-org/sharded-bin': {
      token: 'hf_secret_test_token',
      refs: { main: COMMIT_MAIN },
      commits: {
        [COMMIT_MAIN]: Object.fromEntries(
          readdirSync(path.join(BIN_DIR, 'tiny-s8-sharded')).map((f) => [f, read(BIN_DIR, 'tiny-s8-sharded', f)]),
        ),
      },
    },
  });
  process.env.HF_ENDPOINT = hub.url;
  for (const k of [
    'HF_HUB_CACHE',
    'HUGGINGFACE_HUB_CACHE',
    'HF_HUB_OFFLINE',
    'HF_TOKEN',
    'HUGGING_FACE_HUB_TOKEN',
    'HF_TOKEN_PATH',
  ])
    delete process.env[k];
});

afterEach(() => {
  delete process.env.HF_HUB_OFFLINE;
  delete process.env.HF_TOKEN;
});

afterAll(async () => {
  await hub?.close();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(tmpRoot, { recursive: true, force: true });
});

const x8 = new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.03));

async function embed(source: string, size: number, options = {}): Promise<Buffer> {
  const m = await loadModel(source, { device: 'cpu', threads: 2, ...options });
  const n = 2 * 3 * size * size;
  const out = await m.forward(x8.length === n ? x8 : new Float32Array(n).map((_, i) => Math.sin(i * 0.03)), [
    2,
    3,
    size,
    size,
  ]);
  await m.dispose();
  return Buffer.from(out.lastHiddenState.data.buffer);
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).map((d) =>
    path.join(d.parentPath ?? (d as unknown as { path: string }).path, d.name),
  );
}

describe('hub downloads into the Hugging Face cache', () => {
  it('downloads config, preprocessor config and safetensors, in the cache layout, with progress', async () => {
    const cache = freshCache();
    const events: DownloadProgress[] = [];
    const got = await embed('test-org/tiny', 32, { onProgress: (p: DownloadProgress) => events.push({ ...p }) });
    expect(got.equals(await embed(goldenDir('tiny-s8'), 32))).toBe(true);

    const repo = path.join(cache, 'models--test-org--tiny');
    expect(readFileSync(path.join(repo, 'refs', 'main'), 'utf8')).toBe(COMMIT_MAIN);
    const snap = path.join(repo, 'snapshots', COMMIT_MAIN);
    expect(readdirSync(snap).sort()).toEqual(['config.json', 'model.safetensors', 'preprocessor_config.json']);
    for (const f of readdirSync(snap)) {
      expect(lstatSync(path.join(snap, f)).isSymbolicLink()).toBe(true);
      const target = readlinkSync(path.join(snap, f));
      expect(target).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/); // relative, as huggingface_hub writes
      expect(read(snap, target).equals(read(repo, 'blobs', path.basename(target)))).toBe(true);
    }
    const weights = read(goldenDir('tiny-s8'), 'model.safetensors');
    const st = events.filter((e) => e.file === 'model.safetensors');
    expect(st.length).toBeGreaterThan(1);
    expect(st.at(-1)).toEqual({ file: 'model.safetensors', loaded: weights.length, total: weights.length });
    st.forEach((e, i) => i > 0 && expect(e.loaded).toBeGreaterThanOrEqual(st[i - 1].loaded));
    expect(new Set(events.map((e) => e.file))).toEqual(
      new Set(['config.json', 'preprocessor_config.json', 'model.safetensors']),
    );
    expect(allFiles(repo).filter((f) => /incomplete|\.tmp$/.test(f))).toEqual([]);

    // A second load reuses the cache: metadata requests only, no file bodies.
    const before = hub.requests.length;
    events.length = 0;
    await embed('test-org/tiny', 32, { onProgress: (p: DownloadProgress) => events.push(p) });
    expect(events).toEqual([]);
    expect(hub.requests.slice(before).every((r) => r.method === 'HEAD')).toBe(true);

    // Offline with the warm cache: no request at all.
    process.env.HF_HUB_OFFLINE = '1';
    const n = hub.requests.length;
    expect((await embed('test-org/tiny', 32)).equals(got)).toBe(true);
    expect(hub.requests.length).toBe(n);
  });

  it('offline with a cold cache fails clearly without touching the network', async () => {
    freshCache();
    process.env.HF_HUB_OFFLINE = 'true';
    const n = hub.requests.length;
    await expect(loadModel('test-org/tiny')).rejects.toMatchObject({
      code: 'ERR_OFFLINE',
      message: expect.stringMatching(/HF_HUB_OFFLINE/),
    });
    await (await loadModel('test-org/tiny', { offline: false })).dispose(); // the option overrides the environment
    expect(hub.requests.length).toBeGreaterThan(n);
  });

  it('unknown models, revisions and files are 404s with clear errors', async () => {
    freshCache();
    await expect(loadModel('test-org/nope')).rejects.toMatchObject({
      code: 'ERR_HUB_NOT_FOUND',
      message: expect.stringMatching(/'test-org\/nope' is not a local folder.*model 'test-org\/nope' was not found/),
    });
    await expect(loadModel('test-org/tiny', { revision: 'no-such-branch' })).rejects.toMatchObject({
      code: 'ERR_HUB_NOT_FOUND',
      message: expect.stringMatching(/revision 'no-such-branch'/),
    });
  });

  it('a connection dropped mid-file leaves nothing that looks complete, and a retry succeeds', async () => {
    const cache = freshCache();
    const size = read(goldenDir('tiny-s8'), 'model.safetensors').length;
    hub.dropNext = { minSize: 10_000, after: 4096 };
    const events: DownloadProgress[] = [];
    const err = await loadModel('test-org/tiny', { onProgress: (p) => events.push({ ...p }) }).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD_FAILED', message: expect.stringMatching(/model\.safetensors/) });
    expect(events.some((e) => e.file === 'model.safetensors' && e.loaded > 0 && e.loaded < size)).toBe(true);
    const repo = path.join(cache, 'models--test-org--tiny');
    expect(existsSync(path.join(repo, 'snapshots', COMMIT_MAIN, 'model.safetensors'))).toBe(false);
    const blobs = readdirSync(path.join(repo, 'blobs'));
    expect(blobs.filter((b) => /incomplete/.test(b))).toEqual([]);
    expect(blobs.every((b) => read(repo, 'blobs', b).length !== size)).toBe(true);
    // Offline now: config.json is cached but the weights are not, so this is ERR_OFFLINE, not a half file.
    await expect(loadModel('test-org/tiny', { offline: true })).rejects.toMatchObject({ code: 'ERR_OFFLINE' });
    expect((await embed('test-org/tiny', 32)).equals(await embed(goldenDir('tiny-s8'), 32))).toBe(true);
  });

  it('a corrupted transfer (sha256 differs from the LFS ETag) is not cached', async () => {
    const cache = freshCache();
    hub.corruptNext = true;
    await expect(loadModel('test-org/tiny')).rejects.toMatchObject({
      code: 'ERR_DOWNLOAD_FAILED',
      message: expect.stringMatching(/sha256/),
    });
    const repo = path.join(cache, 'models--test-org--tiny');
    expect(existsSync(path.join(repo, 'snapshots', COMMIT_MAIN, 'model.safetensors'))).toBe(false);
    expect(readdirSync(path.join(repo, 'blobs')).filter((b) => /^[0-9a-f]{64}/.test(b))).toEqual([]);
    await (await loadModel('test-org/tiny')).dispose();
  });

  it('a revision pin (commit hash or tag) gets that commit, falling back to pytorch_model.bin', async () => {
    const cache = freshCache();
    const want = await embed(path.join(BIN_DIR, 'tiny-mask-f64'), 32);
    expect((await embed('test-org/tiny', 32, { revision: COMMIT_OLD })).equals(want)).toBe(true);
    const repo = path.join(cache, 'models--test-org--tiny');
    expect(readdirSync(path.join(repo, 'snapshots'))).toEqual([COMMIT_OLD]);
    expect(existsSync(path.join(repo, '.no_exist', COMMIT_OLD, 'model.safetensors'))).toBe(true);
    expect(existsSync(path.join(repo, 'refs', 'main'))).toBe(false);
    expect((await embed('test-org/tiny', 32, { revision: 'v1' })).equals(want)).toBe(true);
    expect(readFileSync(path.join(repo, 'refs', 'v1'), 'utf8')).toBe(COMMIT_OLD);
    expect((await embed('test-org/tiny', 32)).equals(want)).toBe(false); // main is another model
  });

  it('HF_TOKEN opens a private repo (sent to the hub, not the CDN); sharded .bin downloads every shard', async () => {
    const cache = freshCache();
    await expect(loadModel('private-org/sharded-bin')).rejects.toMatchObject({
      code: 'ERR_HUB_NOT_FOUND',
      message: expect.stringMatching(/HF_TOKEN/),
    });
    process.env.HF_TOKEN = 'hf_secret_test_token';
    const n = hub.requests.length;
    expect((await embed('private-org/sharded-bin', 32)).equals(await embed(goldenDir('tiny-s8'), 32))).toBe(true);
    const reqs = hub.requests.slice(n);
    expect(
      reqs.filter((r) => r.path.startsWith('/private-org/')).every((r) => r.auth === 'Bearer hf_secret_test_token'),
    ).toBe(true);
    expect(reqs.filter((r) => r.path.startsWith('/cdn/')).length).toBe(2);
    expect(reqs.filter((r) => r.path.startsWith('/cdn/')).every((r) => r.auth === undefined)).toBe(true);
    expect(readdirSync(path.join(cache, 'models--private-org--sharded-bin', 'snapshots', COMMIT_MAIN)).sort()).toEqual([
      'config.json',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
    ]);
  });

  it('reuses a cache written by Python huggingface_hub (HF_HUB_CACHE), and an existing path wins over an id', async () => {
    // The layout hf_hub_download leaves: blobs named by etag, refs/main, relative snapshot links.
    const cache = path.join(tmpRoot, 'python-cache');
    process.env.HF_HUB_CACHE = cache;
    const repo = path.join(cache, 'models--someone--else');
    mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    mkdirSync(path.join(repo, 'refs'));
    mkdirSync(path.join(repo, 'snapshots', COMMIT_OLD), { recursive: true });
    const { symlinkSync, writeFileSync } = await import('node:fs');
    writeFileSync(path.join(repo, 'refs', 'main'), COMMIT_OLD);
    for (const [f, etag] of [
      ['config.json', 'c'.repeat(40)],
      ['model.safetensors', 'd'.repeat(64)],
    ]) {
      copyFileSync(path.join(goldenDir('tiny-s8'), f), path.join(repo, 'blobs', etag));
      symlinkSync(`../../blobs/${etag}`, path.join(repo, 'snapshots', COMMIT_OLD, f));
    }
    process.env.HF_HUB_OFFLINE = '1';
    try {
      expect((await embed('someone/else', 32)).equals(await embed(goldenDir('tiny-s8'), 32))).toBe(true);
    } finally {
      delete process.env.HF_HUB_CACHE;
    }
    // A relative folder named like an id is loaded from disk, with no hub request.
    const cwd = process.cwd();
    const n = hub.requests.length;
    process.chdir(tmpRoot);
    try {
      mkdirSync(path.join(tmpRoot, 'test-org', 'tiny'), { recursive: true });
      for (const f of ['config.json', 'pytorch_model.bin'])
        copyFileSync(path.join(BIN_DIR, 'tiny-mask-f64', f), path.join(tmpRoot, 'test-org', 'tiny', f));
      delete process.env.HF_HUB_OFFLINE;
      const m = await loadModel('test-org/tiny');
      expect(m.hasMaskToken).toBe(true); // tiny-mask, not the hub's tiny-s8
      await m.dispose();
    } finally {
      process.chdir(cwd);
    }
    expect(hub.requests.length).toBe(n);
  });
});
