#!/usr/bin/env node
// Linear-probe fitting speed: synthetic 768-dim embeddings, 10 classes × 50 images, 'msn' protocol,
// 5-fold CV over 8 C values (0.01…100, CV fits at tol 1e-4) + the final fit (tol 1e-8). The
// encoder is timed separately (tiny golden backbone on the test images: the fitting cost does not
// depend on it; for ViT-B/16 use the images/s in the cpu-vs-ort section of RESULTS.md).
//   node bench/probe.mjs [--reps 3] [--record]     (needs `npm run build`)
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { machine, gitRev, now, appendResults } from './support.mjs';

const root = path.join(path.dirname(new URL(import.meta.url).pathname), '..');
const require = createRequire(import.meta.url);
const { fitClassifier, embedImages, loadModel } = require(path.join(root, 'dist', 'index.js'));
const { values: args } = parseArgs({
  options: { reps: { type: 'string', default: '3' }, record: { type: 'boolean', default: false } },
});

let seed = 1;
const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const gauss = () => Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
const K = 10,
  per = 50,
  D = 768,
  N = K * per;
const centers = Array.from({ length: K }, () => Float64Array.from({ length: D }, () => gauss() * 0.04));
const data = new Float32Array(N * D);
const labels = [];
for (let i = 0; i < N; i++) {
  labels.push(`class${i % K}`);
  for (let d = 0; d < D; d++) data[i * D + d] = centers[i % K][d] + gauss() * 0.5;
}
const set = { data, shape: [N, D], labels };
const times = [];
let head;
for (let r = 0; r < Number(args.reps); r++) {
  const t0 = performance.now();
  head = await fitClassifier(set, { protocol: 'msn', folds: 5 });
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const fitMs = times[Math.floor(times.length / 2)];
const cvLine = head.cv.scores.map((s) => `${s.C}: ${(100 * s.accuracy).toFixed(1)}%`).join(', ');
console.log(
  `fit (5-fold × 8 C + final, ${K}×${per}×${D}): median ${fitMs.toFixed(0)} ms of ${times.map((t) => t.toFixed(0)).join(', ')}; chosen C ${head.C}, final ${head.info.iterations} iterations`,
);
console.log(`CV accuracy: ${cvLine}`);

const imgs = ['camera.png', 'chelsea.png', 'coffee.png', 'logo.png'].map((f) =>
  path.join(root, 'test', 'fixtures', 'images', f),
);
const many = Array.from({ length: 64 }, (_, i) => imgs[i % 4]);
const model = await loadModel(path.join(root, 'test', 'fixtures', 'goldens', 'tiny-s8'), { device: 'cpu' });
await embedImages(model, many.slice(0, 4), ['a', 'b', 'a', 'b']);
const t0 = performance.now();
await embedImages(
  model,
  many,
  many.map((_, i) => `c${i % 2}`),
);
const encMs = performance.now() - t0;
await model.dispose();
console.log(
  `encode (tiny-s8 golden, 64 PNG files incl. decoding): ${encMs.toFixed(0)} ms (${(64000 / encMs).toFixed(1)} images/s)`,
);

if (args.record) {
  const text =
    `## ${now()} — linear probe (bench/probe.mjs)\n\n` +
    `- machine: ${machine()}, git ${gitRev()}\n` +
    `- command: \`node bench/probe.mjs --reps ${args.reps} --record\`\n` +
    `- fitting (native L-BFGS on a worker, float64, CV folds over the hardware threads): 10 classes × 50 synthetic 768-dim embeddings, 'msn' protocol, 5-fold CV × 8 C (tol 1e-4) + final fit (tol 1e-8): **median ${fitMs.toFixed(0)} ms** (runs: ${times.map((t) => t.toFixed(0)).join(', ')} ms); target ≤ 2000 ms\n` +
    `- CV accuracy per C: ${cvLine}; chosen C ${head.C}\n` +
    `- encoder, separately: tiny-s8 golden backbone, 64 PNG files: ${encMs.toFixed(0)} ms (${(64000 / encMs).toFixed(1)} images/s); ViT-B/16 float32 runs ~9.5 images/s here (cpu-vs-ort above), i.e. ~53 s for the 500 images\n`;
  appendResults(text);
}
