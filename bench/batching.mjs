#!/usr/bin/env node
// Dynamic batching in process: C concurrent callers, each encoding one 640×480 JPEG after another
// (closed loop), against one model, for each batching setting — the measurement behind the CPU
// defaults (maxBatch, maxDelayMs) in lib/validate.ts resolveBatching. Reports images/s, the batch
// sizes the queue formed, and call latency p50/p99; also one caller with a plain encode() of 16
// images at a time (no concurrency: the batched throughput the model is capable of).
//
// usage: node bench/batching.mjs [--model vit-s16|<dir>] [--dtype float32,bfloat16] [--clients 64]
//                               [--seconds 10] [--configs off,1:0,4:2,8:2,16:2,16:0,32:2] [--record]
//   a config is maxBatch:maxDelayMs, or off (batching: false)
//   --record   append a dated section to bench/RESULTS.md
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { realModel } from '../test/support/fixtures.mjs';
import { machine, gitRev, now, appendResults, benchJpeg } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const require = createRequire(import.meta.url);
const { loadModel } = require(path.join(root, 'dist', 'index.js'));

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'vit-s16' },
    dtype: { type: 'string', default: 'float32' },
    clients: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '10' },
    configs: { type: 'string', default: 'off,1:0,4:2,8:2,16:2,16:0,32:2' },
    threads: { type: 'string', default: '0' },
    record: { type: 'boolean', default: false },
  },
});
const clients = Number(args.clients);
const seconds = Number(args.seconds);
const threads = Number(args.threads);

const modelDir = args.model.startsWith('vit-')
  ? (await realModel(/** @type {any} */ (args.model))).modelDir
  : args.model;
const jpeg = await benchJpeg();

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0;
}

async function closedLoop(model, n, secs) {
  const lat = [];
  let images = 0;
  const end = performance.now() + secs * 1000;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await model.encode(jpeg);
        lat.push(performance.now() - t0);
        images++;
      }
    }),
  );
  return { images, lat: lat.sort((a, b) => a - b) };
}

const rows = [];
for (const dtype of args.dtype.split(',')) {
  // Baseline: one caller, encode() of 16 JPEGs per call (what batching can at best approach).
  {
    const m = await loadModel(modelDir, { device: 'cpu', dtype, threads, batching: false });
    await m.encode(Array(16).fill(jpeg));
    const t0 = performance.now();
    let images = 0;
    while (performance.now() - t0 < seconds * 1000)
      images += (await m.encode(Array(16).fill(jpeg), { batchSize: 16 })).shape[0];
    const s = (performance.now() - t0) / 1000;
    rows.push({ dtype, config: 'one caller, 16 per call', ips: images / s, batches: '16', p50: NaN, p99: NaN });
    await m.dispose();
    await new Promise((r) => setTimeout(r, 500)); // let the pool's spinning threads park
  }
  for (const c of args.configs.split(',')) {
    const batching = c === 'off' ? false : { maxBatch: Number(c.split(':')[0]), maxDelayMs: Number(c.split(':')[1]) };
    const m = await loadModel(modelDir, { device: 'cpu', dtype, threads, batching });
    await closedLoop(m, Math.min(clients, 4), 1); // warm up
    const before = m.stats();
    const t0 = performance.now();
    const { images, lat } = await closedLoop(m, clients, seconds);
    const s = (performance.now() - t0) / 1000;
    const after = m.stats();
    const sizes = Object.entries(after.batchSizes)
      .map(([k, v]) => [Number(k), v - (before.batchSizes[k] ?? 0)])
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([k, v]) => `${k}×${v}`)
      .join(' ');
    rows.push({
      dtype,
      config: batching === false ? 'batching off' : `maxBatch ${batching.maxBatch}, delay ${batching.maxDelayMs} ms`,
      ips: images / s,
      batches: sizes,
      p50: pct(lat, 0.5),
      p99: pct(lat, 0.99),
    });
    await m.dispose();
    await new Promise((r) => setTimeout(r, 500));
  }
}

const header = `| dtype | setting | img/s | most common batches | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- | --- |`;
const table = rows
  .map(
    (r) =>
      `| ${r.dtype} | ${r.config} | ${r.ips.toFixed(2)} | ${r.batches} | ${Number.isNaN(r.p50) ? '—' : r.p50.toFixed(0)} | ${Number.isNaN(r.p99) ? '—' : r.p99.toFixed(0)} |`,
  )
  .join('\n');
console.log(`${header}\n${table}`);
if (args.record) {
  const cmd = `node bench/batching.mjs ${process.argv.slice(2).join(' ')}`;
  appendResults(
    `## Dynamic batching in process, ${now()}\n\n- machine: ${machine()}; git ${gitRev()}\n- command: \`${cmd}\`\n- ${clients} concurrent callers, each encode() of one 640×480 JPEG (chelsea.png, quality 90) after another, ${seconds} s per row; model ${args.model}\n\n${header}\n${table}\n`,
  );
}
