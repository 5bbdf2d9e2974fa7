// Model folders for tests and benches: copies of the tiny golden models (tinyModelFolder, at the end)
// and real-size ViT-MSN models (ViT-S/16, ViT-B/16) with deterministic weights, for the onnxruntime-node
// comparison (test/ort-parity.test.ts, bench/cpu-vs-ort.mjs). Plain JS so the benchmark can use it
// without a TypeScript step; test/support/real-models.ts re-exports it with types (fixtures.d.mts).
//
// Nothing is downloaded: test/fixtures/anchors/ holds transformers' ONNX export of ViTMSNModel
// (graph only) and the Python (numpy only) that rebuilds every weight as a function of its name.
// One generation writes, under os.tmpdir():
//
//   vitmsn-fixtures-<arch>-v1-<hash>/
//     model/   config.json, model.safetensors, preprocessor_config.json  (what loadModel() reads)
//     onnx/    <arch>.onnx, <arch>.manifest.json, <arch>.weights.bin   (what onnxruntime reads)
//     COMPLETE (written last)
//
// <hash> covers the generator scripts and the ONNX graph, so a changed fixture never reuses a stale
// cache. The folder is built under a temporary name and renamed into place, so concurrent vitest
// workers (or a bench running beside the tests) never see a half-written folder, and an interrupted
// generation is simply redone.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

/** test/fixtures/anchors in this repository. */
export const ANCHORS_DIR = path.resolve(here, '..', 'fixtures', 'anchors');
/** Architectures the anchors have ONNX graphs for. */
export const REAL_ARCHS = Object.freeze(['vit-s16', 'vit-b16']);

const CACHE_VERSION = 'v1';
const MARKER = 'COMPLETE';
const PYTHON = process.env.VITMSN_PYTHON || 'python3';

function inputsHash(arch) {
  const h = createHash('sha256');
  for (const rel of [
    'detw.py',
    'st.py',
    'make_detw_model.py',
    'rebuild_onnx_weights.py',
    `onnx/${arch}.onnx`,
    `onnx/${arch}.manifest.json`,
  ]) {
    h.update(rel)
      .update('\0')
      .update(fs.readFileSync(path.join(ANCHORS_DIR, rel)));
  }
  return h.digest('hex').slice(0, 12);
}

function layout(root, arch) {
  return {
    root,
    modelDir: path.join(root, 'model'),
    onnxPath: path.join(root, 'onnx', `${arch}.onnx`),
  };
}

function isComplete(root) {
  return fs.existsSync(path.join(root, MARKER));
}

async function python(args) {
  try {
    const { stdout, stderr } = await execFileP(PYTHON, args, {
      cwd: ANCHORS_DIR,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, // no __pycache__ inside the repo
      maxBuffer: 16 << 20,
      windowsHide: true,
    });
    return `${stdout}${stderr}`;
  } catch (e) {
    const err = /** @type {any} */ (e);
    const hint = err.code === 'ENOENT' ? ` (is ${PYTHON} on PATH? set VITMSN_PYTHON to override)` : '';
    throw new Error(
      `${PYTHON} ${args.join(' ')} failed${hint}: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
  }
}

// Folders left behind by a generation whose process died (name carries its pid).
function removeStaleTemps(parent, base) {
  let names;
  try {
    names = fs.readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(`${base}.tmp-`) && /\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = pid === process.pid;
    if (!alive) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (e) {
        alive = /** @type {any} */ (e).code === 'EPERM';
      }
    }
    if (!alive) fs.rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}

async function generate(arch, finalRoot) {
  const parent = path.dirname(finalRoot);
  const base = path.basename(finalRoot);
  removeStaleTemps(parent, base);
  const tmpRoot = path.join(parent, `${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const tmp = layout(tmpRoot, arch);
  try {
    fs.mkdirSync(path.dirname(tmp.onnxPath), { recursive: true });
    await python([path.join(ANCHORS_DIR, 'make_detw_model.py'), arch, tmp.modelDir]);
    for (const f of [`${arch}.onnx`, `${arch}.manifest.json`]) {
      fs.copyFileSync(path.join(ANCHORS_DIR, 'onnx', f), path.join(tmpRoot, 'onnx', f));
    }
    const out = await python([path.join(ANCHORS_DIR, 'rebuild_onnx_weights.py'), path.join(tmpRoot, 'onnx'), arch]);
    if (!new RegExp(`^${arch} ok\\b`, 'm').test(out)) {
      throw new Error(`rebuild_onnx_weights.py ${arch} did not report "ok" (sha256 mismatch?):\n${out}`);
    }
    for (const f of ['config.json', 'model.safetensors']) {
      if (!fs.existsSync(path.join(tmp.modelDir, f))) throw new Error(`make_detw_model.py wrote no ${f}`);
    }
    fs.writeFileSync(path.join(tmpRoot, MARKER), `${JSON.stringify({ arch, created: new Date().toISOString() })}\n`);

    for (let attempt = 0; ; attempt++) {
      try {
        fs.renameSync(tmpRoot, finalRoot);
        return;
      } catch (e) {
        const code = /** @type {any} */ (e).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') throw e;
        if (isComplete(finalRoot)) return; // another worker won the race; its folder is as good as ours
        if (attempt >= 3) throw e;
        // An incomplete folder under the final name (not made by this code): move it aside, then retry.
        const trash = `${finalRoot}.trash-${process.pid}-${randomBytes(4).toString('hex')}`;
        try {
          fs.renameSync(finalRoot, trash);
        } catch {
          /* someone else moved it */
        }
        fs.rmSync(trash, { recursive: true, force: true });
      }
    }
  } finally {
    fs.rmSync(tmpRoot, { recursive: true, force: true }); // no-op once renamed
  }
}

const pending = new Map();

/**
 * A ViT-MSN model folder (HF layout, for loadModel) and transformers' ONNX export of the very same
 * weights (for onnxruntime). Generated on first use (a few seconds), then cached in os.tmpdir().
 * @param {'vit-s16' | 'vit-b16'} arch
 * @returns {Promise<{ modelDir: string, onnxPath: string }>}
 */
export function realModel(arch) {
  if (!REAL_ARCHS.includes(arch)) throw new Error(`realModel: unknown arch ${arch} (have ${REAL_ARCHS.join(', ')})`);
  let p = pending.get(arch);
  if (!p) {
    p = (async () => {
      const root = path.join(os.tmpdir(), `vitmsn-fixtures-${arch}-${CACHE_VERSION}-${inputsHash(arch)}`);
      if (!isComplete(root)) await generate(arch, root);
      const { modelDir, onnxPath } = layout(root, arch);
      return { modelDir, onnxPath };
    })();
    p.catch(() => pending.delete(arch)); // a failed generation may be retried
    pending.set(arch, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// onnxruntime-node

let ortModule;
async function ort() {
  ortModule ??= import('onnxruntime-node');
  return ortModule;
}

const sessions = new Map();

/**
 * A cached onnxruntime-node InferenceSession: CPU, fp32, `threads` intra-op threads, one inter-op
 * thread, all graph optimizations (onnxruntime-node's fastest CPU setting for this graph).
 * @param {string} onnxPath
 * @param {number} [threads]
 */
export function ortSession(onnxPath, threads = 2) {
  const key = `${path.resolve(onnxPath)}\0${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = ort().then((o) =>
      o.InferenceSession.create(onnxPath, {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
      }),
    );
    s.catch(() => sessions.delete(key));
    sessions.set(key, s);
  }
  return s;
}

/**
 * Runs the ONNX model on pixel values [B, 3, H, W] and returns last_hidden_state [B, T, D] (flat).
 * @param {string} onnxPath
 * @param {Float32Array} input
 * @param {number[]} shape
 * @param {number} [threads]
 * @returns {Promise<Float32Array>}
 */
export async function ortRun(onnxPath, input, shape, threads = 2) {
  const o = await ort();
  const session = await ortSession(onnxPath, threads);
  const n = shape.reduce((a, b) => a * b, 1);
  if (input.length !== n) throw new Error(`ortRun: input has ${input.length} values, shape [${shape}] needs ${n}`);
  const out = await session.run({ pixel_values: new o.Tensor('float32', input, shape) });
  const t = out.last_hidden_state;
  if (!t) throw new Error(`ortRun: no last_hidden_state among outputs ${Object.keys(out).join(', ')}`);
  return /** @type {Float32Array} */ (t.data);
}

/** Releases every cached onnxruntime session (and its thread pool). */
export async function closeOrt() {
  const all = [...sessions.values()];
  sessions.clear();
  for (const s of all) {
    try {
      await (await s).release();
    } catch {
      /* failed to create or already released */
    }
  }
}

/**
 * ||a − b|| / ||b|| in double precision (b is the reference).
 * @param {ArrayLike<number>} a
 * @param {ArrayLike<number>} b
 */
export function relL2(a, b) {
  if (a.length !== b.length) throw new Error(`relL2: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const x = +a[i];
    const y = +b[i];
    const d = x - y;
    num += d * d;
    den += y * y;
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

/**
 * A deterministic input batch [B, 3, H, W], values in [-1.5, 1.5]: a sin-based pattern in which
 * every item gets its own phase and frequency, so items differ and a batch-mixing bug cannot go
 * unnoticed.
 */
export function syntheticPixels(B, H = 224, W = 224) {
  const per = 3 * H * W;
  const x = new Float32Array(B * per);
  for (let b = 0; b < B; b++) {
    const f = 0.37 + 0.013 * b;
    const ph = 0.9 * b;
    for (let i = 0; i < per; i++) x[b * per + i] = Math.sin(i * f + ph) * 1.5;
  }
  return x;
}

/**
 * A copy of one of the tiny golden models (test/fixtures/goldens/<name>: config.json and
 * model.safetensors) in `dir`, with the facebook checkpoints' preprocessor config resizing to
 * `size`: what the image tests, the server and queue tests and the benches load when they need a
 * fast model that reads real images. Returns `dir`.
 */
/** facebook/vit-msn-*'s preprocessor_config.json (docs/model.md, "Checkpoints"). */
export const FACEBOOK_PREPROCESSOR = Object.freeze({
  do_normalize: true,
  do_resize: true,
  feature_extractor_type: 'ViTFeatureExtractor',
  image_mean: Object.freeze([0.485, 0.456, 0.406]),
  image_std: Object.freeze([0.229, 0.224, 0.225]),
  resample: 2,
  size: 224,
});

export function tinyModelFolder(dir, name, size) {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) {
    fs.copyFileSync(path.join(here, '..', 'fixtures', 'goldens', name, f), path.join(dir, f));
  }
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ ...FACEBOOK_PREPROCESSOR, size }));
  return dir;
}
