#!/usr/bin/env node
// End to end from files: N JPEGs of about 640×480 → CLS embeddings with model.encode(), the way a
// user runs it, against the machine's CPU decode ceiling measured in the same run (the cores × one
// core's decode + preprocess rate: one image at a time through model.preprocess()). On a GPU
// machine scripts/gpu-check.sh runs it beside scripts/gpu_pipeline_baseline.py (PyTorch's
// DataLoader pipeline on the same files and weights) and prints the ratio.
//
// usage: node bench/e2e-jpeg.mjs [--model <HF folder> | --arch vit-s16] [--device auto|cpu|cuda]
//                                [--dtype bfloat16] [--images 1024] [--dir <folder>] [--batch N]
//                                [--rounds 2] [--decode cpu|gpu] [--json <file>]
//   --dir     where the JPEGs are (made there by bench/support.mjs makeJpegs when it holds fewer
//             than --images img-*.jpg files); default: a temp folder
//   --batch   encode()'s batchSize (default: the library's per device: 16 CPU, 128 GPU)
//   --decode  encode()'s decode option: gpu decodes the JPEGs with nvJPEG on the device
// Prints one JSON object (also written to --json): img/s (best of --rounds, each all the files in
// one encode() call), the one-core decode rate, cores, the ceiling and the share of it reached.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { makeJpegs, root } from './support.mjs';

const require = createRequire(import.meta.url);
const { loadModel } = require(path.join(root, 'dist', 'index.js'));

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    arch: { type: 'string', default: 'vit-s16' },
    device: { type: 'string', default: 'auto' },
    dtype: { type: 'string', default: 'bfloat16' },
    images: { type: 'string', default: '1024' },
    dir: { type: 'string' },
    batch: { type: 'string' },
    rounds: { type: 'string', default: '2' },
    decode: { type: 'string', default: 'cpu' },
    json: { type: 'string' },
  },
});
const n = Number(args.images);
const rounds = Number(args.rounds);
const batchSize = args.batch === undefined ? undefined : Number(args.batch);
if (!(n >= 1) || !(rounds >= 1) || (batchSize !== undefined && !(batchSize >= 1))) {
  throw new Error('--images, --rounds and --batch must be positive integers');
}

let modelDir = args.model;
if (!modelDir) {
  const { realModel } = await import('../test/support/fixtures.mjs');
  modelDir = (await realModel(/** @type {any} */ (args.arch))).modelDir;
}
const dir = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vitmsn-e2e-'));
fs.mkdirSync(dir, { recursive: true });
let files = fs
  .readdirSync(dir)
  .filter((f) => /^img-\d+\.jpg$/.test(f))
  .sort()
  .map((f) => path.join(dir, f));
if (files.length < n) files = await makeJpegs(dir, n);
files = files.slice(0, n);

const model = await loadModel(modelDir, { device: args.device, dtype: args.dtype, batching: false });
try {
  // One core's decode + preprocess rate: one image at a time (one libuv thread busy at once).
  const probe = files.slice(0, Math.min(64, n));
  for (const f of probe.slice(0, 4)) await model.preprocess(f); // warm-up
  let t = performance.now();
  for (const f of probe) await model.preprocess(f);
  const oneCore = probe.length / ((performance.now() - t) / 1000);
  const cores = os.availableParallelism?.() ?? os.cpus().length;

  const opts = { pooling: 'cls', decode: args.decode, ...(batchSize ? { batchSize } : {}) };
  await model.encode(files.slice(0, Math.min(n, batchSize ?? 256)), opts); // warm-up (graphs, buffers)
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    t = performance.now();
    const { shape } = await model.encode(files, opts);
    if (shape[0] !== n) throw new Error(`encode returned ${shape[0]} rows for ${n} files`);
    best = Math.max(best, n / ((performance.now() - t) / 1000));
  }
  const result = {
    device: model.device,
    dtype: args.dtype,
    images: n,
    batchSize: batchSize ?? 'default',
    decode: args.decode,
    imgPerS: best,
    oneCoreDecodePerS: oneCore,
    cores,
    decodeCeilingPerS: oneCore * cores,
    shareOfCeiling: best / (oneCore * cores),
  };
  const text = JSON.stringify(result);
  console.log(text);
  if (args.json) fs.writeFileSync(args.json, text + '\n');
} finally {
  await model.dispose();
  if (!args.dir) fs.rmSync(dir, { recursive: true, force: true });
}
