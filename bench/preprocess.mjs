#!/usr/bin/env node
// Decode + preprocess latency of one 640×480 JPEG (target: ≤ 5 ms), through the public
// API (`model.preprocess(jpegBytes)`: sharp decode, EXIF, then one native call for convert('RGB'),
// Pillow's BILINEAR resize to 224×224, rescale and normalize), plus its two halves and a batch.
//
// usage: node bench/preprocess.mjs [--iters 300] [--warmup 30] [--record] [--json]
//   --record   append a dated section to bench/RESULTS.md
//
// Self-contained: the JPEG is made here (test/fixtures/images/chelsea.png scaled to 640×480 by sharp,
// quality 90, 4:2:0) and the model is the tiny golden backbone with the facebook/vit-msn-*
// preprocessor_config.json written beside it in a temp folder. Needs the compiled package.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, gitRev, now, appendResults, benchJpeg } from './support.mjs';
import { FACEBOOK_PREPROCESSOR } from '../test/support/fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const require = createRequire(import.meta.url);
const { loadModel } = require(path.join(root, 'dist', 'index.js'));
const { decodeImage } = require(path.join(root, 'dist', 'images.js'));
const { native } = require(path.join(root, 'dist', 'binding.js'));
const { nativePreprocessConfig } = require(path.join(root, 'dist', 'encode.js'));
const sharp = require('sharp');

const { values: args } = parseArgs({
  options: {
    iters: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '30' },
    record: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const iters = Number(args.iters);
const warmup = Number(args.warmup);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vitmsn-bench-pre-'));
try {
  const jpeg = await benchJpeg();
  const jpegPath = path.join(tmp, 'photo-640x480.jpg');
  fs.writeFileSync(jpegPath, jpeg);
  const modelDir = path.join(tmp, 'model');
  fs.mkdirSync(modelDir);
  for (const f of ['config.json', 'model.safetensors']) {
    fs.copyFileSync(path.join(root, 'test', 'fixtures', 'goldens', 'tiny-s8', f), path.join(modelDir, f));
  }
  fs.writeFileSync(path.join(modelDir, 'preprocessor_config.json'), JSON.stringify(FACEBOOK_PREPROCESSOR));
  const model = await loadModel(modelDir, { device: 'cpu' });
  const cfg = nativePreprocessConfig(model.preprocessor);
  const decoded = await decodeImage(jpeg, 0);
  const batch16 = Array(16).fill(jpeg);

  async function time(name, fn, perCall = 1) {
    for (let i = 0; i < warmup; i++) await fn();
    const t = [];
    for (let i = 0; i < iters; i++) {
      const t0 = process.hrtime.bigint();
      await fn();
      t.push(Number(process.hrtime.bigint() - t0) / 1e6 / perCall);
    }
    t.sort((a, b) => a - b);
    const q = (p) => t[Math.min(t.length - 1, Math.floor(p * t.length))];
    return { name, median: q(0.5), p10: q(0.1), p90: q(0.9), min: t[0] };
  }

  const rows = [
    await time('model.preprocess(jpeg bytes): decode + preprocess', () => model.preprocess(jpeg)),
    await time('model.preprocess(jpeg path): read + decode + preprocess', () => model.preprocess(jpegPath)),
    await time('decode only (sharp, raw RGB)', () => decodeImage(jpeg, 0)),
    await time('native preprocess only (convert, resize, normalize)', () => native().preprocess([decoded], cfg)),
    await time('model.preprocess(16 jpegs), per image', () => model.preprocess(batch16), 16),
  ];
  await model.dispose();

  const meta = {
    date: now(),
    machine: `${machine()}, sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}), UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 'default (4)'}`,
    git: gitRev(),
    input: `${jpeg.length} byte 640×480 JPEG (q90, 4:2:0) → [1, 3, 224, 224] float32`,
    command: `node bench/preprocess.mjs --iters ${iters} --warmup ${warmup}${args.record ? ' --record' : ''}`,
  };
  if (args.json) {
    console.log(JSON.stringify({ ...meta, rows }, null, 2));
  } else {
    console.log(meta);
    for (const r of rows)
      console.log(
        `${r.name.padEnd(62)} median ${r.median.toFixed(2)} ms  (p10 ${r.p10.toFixed(2)}, p90 ${r.p90.toFixed(2)}, min ${r.min.toFixed(2)})`,
      );
  }
  if (args.record) {
    const md = [
      '',
      `## preprocess: ${meta.date}`,
      '',
      `- machine: ${meta.machine}`,
      `- git: ${meta.git}`,
      `- input: ${meta.input}`,
      `- method: ${warmup} warmup then ${iters} timed sequential calls each, one process; milliseconds`,
      `- command: \`${meta.command}\``,
      '',
      '| what | median ms | p10 ms | p90 ms | min ms |',
      '| --- | --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.median.toFixed(2)} | ${r.p10.toFixed(2)} | ${r.p90.toFixed(2)} | ${r.min.toFixed(2)} |`,
      ),
      '',
    ].join('\n');
    appendResults(md);
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
