#!/usr/bin/env node
// Accuracy on real images: relative L2 of last_hidden_state against a float64 numpy forward pass of
// the same weights (bench/reference_f64.py), for vitmsn in each dtype and onnxruntime fp32 / q8
// (bench/quantize_q8.py), on the repo's real test images (test/fixtures/images/*.png), preprocessed
// once by vitmsn's own preprocess so that every engine sees the same pixels.
//
// usage: node bench/accuracy.mjs [--models vit-s16,vit-b16] [--dtype float32,bfloat16,int8] [--threads 2]
//                                [--record] [--json]
//   --dtype   vitmsn dtypes (those the CPU backend does not list are skipped, and said so)
//   --record  append a dated section to bench/RESULTS.md
//
// Needs the compiled package (npm run build), python3 with numpy (fixtures, the float64 reference)
// and Debian's python3-onnx under /usr/bin/python3 (the q8 model).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { closeOrt, ortSession, realModel, REAL_ARCHS } from '../test/support/fixtures.mjs';
import { appendResults, benchDir, gitRev, machine, now, q8Model, root } from './support.mjs';

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: 'vit-s16,vit-b16' },
    dtype: { type: 'string', default: 'float32,bfloat16,int8' },
    threads: { type: 'string', default: '2' },
    record: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const models = list(args.models);
for (const m of models) if (!REAL_ARCHS.includes(m)) throw new Error(`--models: unknown ${m}`);
const threads = Number(args.threads);
const PYTHON = process.env.VITMSN_PYTHON || 'python3';

const lib = await import('../dist/index.mjs');
const cpuInfo = lib.backends().find((b) => b.name === 'cpu');
const dtypes = list(args.dtype).filter((d) => {
  if (cpuInfo.dtypes.includes(d)) return true;
  console.error(`# skipping dtype ${d}: the CPU backend runs ${cpuInfo.dtypes.join(', ')}`);
  return false;
});

const imgDir = path.join(root, 'test', 'fixtures', 'images');
const images = fs
  .readdirSync(imgDir)
  .filter((f) => /\.(png|jpe?g)$/i.test(f))
  .sort()
  .map((f) => path.join(imgDir, f));

/** ||a − b|| / ||b|| in float64 (b the reference), over all images. */
function relL2(a, b) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / den);
}

async function measure(arch) {
  const { modelDir, onnxPath } = await realModel(arch);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vitmsn-acc-'));
  try {
    // One preprocessing for everyone.
    const pre = await lib.loadModel(modelDir, { device: 'cpu', threads });
    const { data: px, shape } = await pre.preprocess(images);
    await pre.dispose();
    const [B, , H, W] = shape;
    const pxFile = path.join(tmp, 'px.f32');
    const refFile = path.join(tmp, 'ref.f64');
    fs.writeFileSync(pxFile, Buffer.from(px.buffer, px.byteOffset, px.byteLength));
    const t0 = performance.now();
    execFileSync(
      PYTHON,
      [path.join(benchDir, 'reference_f64.py'), modelDir, pxFile, String(B), String(H), String(W), refFile],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    console.error(`# ${arch}: float64 reference in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const rb = fs.readFileSync(refFile);
    const ref = new Float64Array(rb.buffer, rb.byteOffset, rb.byteLength / 8);
    const rows = [];
    for (const dtype of dtypes) {
      const model = await lib.loadModel(modelDir, { device: 'cpu', dtype, threads });
      const out = (await model.forward(px, shape)).lastHiddenState.data;
      await model.dispose();
      rows.push({ engine: `vitmsn ${dtype}`, relL2: relL2(out, ref) });
    }
    for (const [name, file] of [
      ['onnxruntime fp32', onnxPath],
      ['onnxruntime q8', q8Model(onnxPath)],
    ]) {
      const session = await ortSession(file, threads);
      const out = (await session.run({ pixel_values: new ort.Tensor('float32', px, shape) })).last_hidden_state.data;
      rows.push({ engine: name, relL2: relL2(out, ref) });
    }
    await closeOrt();
    return { model: arch, images: B, rows };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const results = [];
for (const arch of models) {
  const r = await measure(arch);
  results.push(r);
  for (const row of r.rows) console.error(`# ${arch} ${row.engine}: ${row.relL2.toExponential(2)}`);
}
const engines = [...new Set(results.flatMap((r) => r.rows.map((x) => x.engine)))];
const head = ['model', ...engines];
const table = [
  head,
  head.map(() => '---'),
  ...results.map((r) => [
    r.model,
    ...engines.map((e) => r.rows.find((x) => x.engine === e)?.relL2.toExponential(2) ?? '—'),
  ]),
]
  .map((r) => `| ${r.join(' | ')} |`)
  .join('\n');
if (args.json) console.log(JSON.stringify({ machine: machine(), results }, null, 2));
else console.log(table);
if (args.record) {
  appendResults(`## Accuracy vs float64 on real images, ${now()}

- machine: ${machine()}; vitmsn git ${gitRev()}
- method: \`node bench/accuracy.mjs ${process.argv.slice(2).join(' ')}\`: relative L2 of last_hidden_state
  (all tokens, all ${results[0]?.images ?? 0} images of test/fixtures/images, preprocessed once by vitmsn) against
  bench/reference_f64.py (float64 numpy, same weights); onnxruntime q8 = bench/quantize_q8.py
  (DynamicQuantizeMatMul, int8 symmetric per-tensor weights)

${table}`);
}
