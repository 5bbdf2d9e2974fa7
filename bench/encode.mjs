#!/usr/bin/env node
// encode() of 64 JPEG files, the embed path (what encode() runs now: uint8 pixels → fused
// patchify → layers → pooling inside the backend, only [B, D] back) against the float32 path it
// replaced, rebuilt here from public calls: preprocess() (float32 pixel_values in the JS heap, the
// next batch prepared during the current forward) → forward() ([B, T, D] back to JS) → the CLS rows.
// (The old encode() pooled inside the addon, so its [B, T, D] never reached JS: the float32 path
// here returns more than it did; the pixel tensor and its copies are the same.) Both in one process,
// alternating, same batches (16), same images; results are checked equal bit for bit.
//
// usage: node bench/encode.mjs [--model vit-s16] [--dtype float32] [--images 64] [--rounds 3] [--record]
//
// Prints per path: images/s (median of rounds), and the peak RSS growth over the RSS before the
// path's first round (sampled every 2 ms); then the steps that differ, alone, on one batch: the
// native preprocess of decoded images into float32 [B, 3, H, W] vs uint8 [B, H, W, 3], and the model
// step (forward() of float32 pixel_values + CLS rows vs encode() of raw 224×224 pixels), alternating. Needs the compiled package and the generated real-size
// model (test/support/fixtures.mjs, random weights: speed does not depend on them).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { machine, gitRev, now, appendResults, root, makeJpegs } from './support.mjs';
import { realModel, REAL_ARCHS } from '../test/support/fixtures.mjs';

const require = createRequire(import.meta.url);
const { loadModel } = require(path.join(root, 'dist', 'index.js'));
const { decodeImage } = require(path.join(root, 'dist', 'images.js'));
const { native } = require(path.join(root, 'dist', 'binding.js'));
const { nativePreprocessConfig } = require(path.join(root, 'dist', 'encode.js'));
const sharp = require('sharp');

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'vit-s16' },
    dtype: { type: 'string', default: 'float32' },
    images: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    batch: { type: 'string', default: '16' },
    record: { type: 'boolean', default: false },
  },
});
const nImages = Number(args.images),
  rounds = Number(args.rounds),
  batch = Number(args.batch);

/** The float32 path: preprocess → forward → CLS rows, the next batch preprocessed meanwhile. */
async function floatPath(model, files) {
  const D = model.config.hiddenSize;
  const out = new Float32Array(files.length * D);
  const prep = (s) => model.preprocess(files.slice(s, s + batch));
  let next = prep(0);
  for (let s = 0; s < files.length; s += batch) {
    const px = await next;
    if (s + batch < files.length) next = prep(s + batch);
    const { lastHiddenState: h } = await model.forward(px.data, px.shape);
    const [B, T] = h.shape;
    for (let b = 0; b < B; b++) out.set(h.data.subarray(b * T * D, b * T * D + D), (s + b) * D);
  }
  return out;
}

const embedPath = async (model, files) => (await model.encode(files, { pooling: 'cls', batchSize: batch })).data;

/** Runs fn while sampling RSS; returns its result, seconds, and the peak RSS (bytes). */
async function measured(fn) {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 2);
  const t0 = performance.now();
  try {
    const result = await fn();
    return { result, s: (performance.now() - t0) / 1000, peak: Math.max(peak, process.memoryUsage.rss()) };
  } finally {
    clearInterval(timer);
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vitmsn-bench-encode-'));
try {
  const files = await makeJpegs(tmp, nImages);
  const arch = REAL_ARCHS.find((a) => a === args.model);
  if (!arch) throw new Error(`--model: unknown ${args.model} (have ${REAL_ARCHS.join(', ')})`);
  const { modelDir } = await realModel(arch);
  const model = await loadModel(modelDir, { device: 'cpu', dtype: args.dtype, batching: false });
  await embedPath(model, files.slice(0, batch)); // warm-up: both paths' buffers and code
  await floatPath(model, files.slice(0, batch));
  const paths = { 'float32 path (preprocess + forward)': floatPath, 'embed path (encode)': embedPath };
  const stats = Object.fromEntries(Object.keys(paths).map((k) => [k, { s: [], peak: 0 }]));
  const results = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of r % 2 ? Object.entries(paths).reverse() : Object.entries(paths)) {
      global.gc?.();
      const base = process.memoryUsage.rss();
      const m = await measured(() => fn(model, files));
      stats[name].s.push(m.s);
      stats[name].peak = Math.max(stats[name].peak, m.peak - base);
      results[name] = m.result;
    }
  }
  // The host step that differs, alone: one decoded batch → float32 pixel_values vs uint8 levels.
  const decoded = await Promise.all(files.slice(0, batch).map((f, i) => decodeImage(f, i)));
  const cfg = nativePreprocessConfig(model.preprocessor);
  const pre = {};
  for (const [name, opts] of [
    ['native preprocess (decoded → float32 [B, 3, H, W])', undefined],
    ['native preprocess (decoded → uint8 [B, H, W, 3])', { uint8: true }],
    [
      'native preprocess (decoded → uint8, parallel: every core; what a GPU model uses)',
      { uint8: true, parallel: true },
    ],
  ]) {
    const t = [];
    for (let i = 0; i < 3 + 5 * rounds; i++) {
      const t0 = performance.now();
      await native().preprocess(decoded, cfg, opts);
      if (i >= 3) t.push(performance.now() - t0);
    }
    pre[name] = t;
  }
  // The model step alone, alternating A/B: forward() of a batch's float32 pixel_values + the CLS rows
  // in JS, vs encode() of the same batch as raw 224×224 RGB pixels (no decode; preprocess = a copy).
  const raw = (
    await Promise.all(
      decoded.map((d) =>
        sharp(d.data, { raw: { width: d.width, height: d.height, channels: d.channels } })
          .resize(224, 224)
          .raw()
          .toBuffer(),
      ),
    )
  ).map((data) => ({ data, width: 224, height: 224, channels: 3 }));
  const pxRaw = await model.preprocess(raw);
  const step = { 'forward(float32) + CLS rows': [], 'encode(raw uint8)': [] };
  for (let i = 0; i < 1 + 3 * rounds; i++) {
    const order = i % 2 ? ['encode(raw uint8)', 'forward(float32) + CLS rows'] : Object.keys(step);
    for (const name of order) {
      const t0 = performance.now();
      if (name.startsWith('forward')) await model.forward(pxRaw.data, pxRaw.shape);
      else await model.encode(raw, { batchSize: batch });
      if (i > 0) step[name].push(performance.now() - t0);
    }
  }
  Object.assign(pre, step);
  const [a, b] = Object.values(results);
  const same = a.length === b.length && Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
  await model.dispose();
  const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
  const rows = Object.entries(stats).map(
    ([name, st]) =>
      `| ${name} | ${(nImages / median(st.s)).toFixed(1)} | ${st.s.map((s) => (nImages / s).toFixed(1)).join(', ')} | ${(st.peak / 2 ** 20).toFixed(0)} |`,
  );
  const table = [
    '| path | images/s (median) | images/s per round | peak RSS growth (MiB) |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
  const preTable = [
    `| one batch of ${batch}: step | ms (median) | p25–p75 |`,
    '| --- | --- | --- |',
    ...Object.entries(pre).map(([name, t]) => {
      const v = [...t].sort((x, y) => x - y);
      const q = (f) => v[Math.floor(f * (v.length - 1))].toFixed(1);
      return `| ${name} | ${q(0.5)} | ${q(0.25)}–${q(0.75)} |`;
    }),
  ].join('\n');
  console.log(table);
  console.log(preTable);
  console.log(`embeddings bit-identical between the paths: ${same}`);
  if (args.record) {
    appendResults(`## ${now()} — encode() of ${nImages} JPEGs: embed path vs float32 path (${args.model}, ${args.dtype})

- command: \`node --expose-gc bench/encode.mjs --model ${args.model} --dtype ${args.dtype} --images ${nImages} --rounds ${rounds} --batch ${batch} --record\` at ${gitRev()}
- machine: ${machine()}
- ~640×480 JPEGs (crops/rescales of the test images), batches of ${batch}, batching off, CLS pooling; rounds alternate the
  order of the two paths. Peak RSS growth: the highest RSS sampled (2 ms) during a round minus the RSS before it.
- embeddings bit-identical between the paths: ${same}

${table}

${preTable}`);
  }
  if (!same) process.exitCode = 1;
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
