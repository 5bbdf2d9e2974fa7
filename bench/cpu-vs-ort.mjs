#!/usr/bin/env node
// vitmsn's CPU backend against onnxruntime-node, on the same ViT-MSN weights and the same input, in
// ONE process, interleaved: after a warmup of both, each round times k calls of one engine then k of
// the other (the order alternates every round), so machine noise (other tenants, frequency changes)
// lands on both. Reported: the median over all timed calls of each engine.
//
// usage: node bench/cpu-vs-ort.mjs [--models vit-s16,vit-b16] [--batches 1,8] [--iters 10] [--k 3]
//                                  [--warmup 2] [--threads 2] [--record] [--only-ort] [--json]
//   --iters    rounds per (model, batch); each round is [vitmsn ×k, ort ×k] (or the reverse)
//   --record   append a dated section to bench/RESULTS.md
//   --only-ort time onnxruntime alone (e.g. before the addon is built)
//
// Needs the compiled package (npm run build) unless --only-ort, and python3 with numpy to generate
// the model folders (test/support/fixtures.mjs; cached in the OS temp dir).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { closeOrt, ortSession, realModel, relL2, REAL_ARCHS, syntheticPixels } from '../test/support/fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(here, 'RESULTS.md');

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: 'vit-s16' },
    batches: { type: 'string', default: '1' },
    iters: { type: 'string', default: '10' },
    k: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    record: { type: 'boolean', default: false },
    'only-ort': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 14).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const posInt = (name, s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${s}`);
  return n;
};
const models = list(args.models);
for (const m of models) if (!REAL_ARCHS.includes(m)) throw new Error(`--models: unknown ${m} (have ${REAL_ARCHS.join(', ')})`);
const batches = list(args.batches).map((b) => posInt('batches', b));
const rounds = posInt('iters', args.iters);
const k = posInt('k', args.k);
const warmup = posInt('warmup', args.warmup);
const threads = posInt('threads', args.threads);
const onlyOrt = args['only-ort'];

// ------------------------------------------------------------------------------------------ machine
function machine() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  let flags = [];
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? cpu;
    const f = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    flags = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_tile'].filter((x) => f.has(x));
  } catch { /* not Linux */ }
  const ortVersion = ort.env?.versions?.node ?? "?";
  return {
    cpu,
    flags,
    logicalCpus: os.cpus().length,
    availableParallelism: os.availableParallelism?.() ?? os.cpus().length,
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    node: process.version,
    ort: ortVersion,
    platform: `${os.platform()}/${os.arch()}`,
  };
}

function gitRev() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim();
  } catch {
    return 'uncommitted';
  }
}

// -------------------------------------------------------------------------------------------- engines
async function vitmsnEngine(modelDir) {
  let lib;
  try {
    lib = await import('../dist/index.mjs');
  } catch (e) {
    throw new Error(`cannot import ../dist/index.mjs (run \`npm run build\` first, or pass --only-ort): ${e.message}`);
  }
  const model = await lib.loadModel(modelDir, { device: 'cpu', dtype: 'float32', threads });
  let backend = 'cpu';
  try {
    const b = lib.backends?.().find((x) => x.name === 'cpu');
    if (b?.detail) backend = `cpu (${b.detail})`;
  } catch { /* informational only */ }
  return {
    name: 'vitmsn',
    backend,
    run: async (x, shape) => (await model.forward(x, shape)).lastHiddenState.data,
    close: () => model.dispose(),
  };
}

async function ortEngine(onnxPath) {
  const session = await ortSession(onnxPath, threads);
  return {
    name: 'ort',
    run: async (x, shape) => (await session.run({ pixel_values: new ort.Tensor('float32', x, shape) })).last_hidden_state.data,
    close: async () => {},
  };
}

// Lets spinning worker threads of the engine that just ran park before the other one starts.
const settle = () => new Promise((r) => setTimeout(r, 30));

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const quantile = (a, q) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
};

async function benchOne(arch, B) {
  const { modelDir, onnxPath } = await realModel(arch);
  const shape = [B, 3, 224, 224];
  const x = syntheticPixels(B);
  const engines = [];
  if (!onlyOrt) engines.push(await vitmsnEngine(modelDir));
  engines.push(await ortEngine(onnxPath));
  try {
    // Warmup (and one parity check: both must compute the same thing for the timing to mean anything).
    const outs = [];
    for (const e of engines) {
      for (let i = 0; i < warmup; i++) outs[engines.indexOf(e)] = await e.run(x, shape);
      await settle();
    }
    const parity = engines.length === 2 ? relL2(outs[0], outs[1]) : null;

    const times = engines.map(() => []);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? engines.map((_, i) => i) : engines.map((_, i) => i).reverse();
      for (const i of order) {
        for (let j = 0; j < k; j++) {
          const t = performance.now();
          await engines[i].run(x, shape);
          times[i].push(performance.now() - t);
        }
        await settle();
      }
    }
    const stats = Object.fromEntries(engines.map((e, i) => [e.name, {
      median_ms: median(times[i]),
      min_ms: Math.min(...times[i]),
      p25_ms: quantile(times[i], 0.25),
      p75_ms: quantile(times[i], 0.75),
      n: times[i].length,
      img_s: (B * 1000) / median(times[i]),
    }]));
    return { model: arch, batch: B, threads, parity_rel_l2: parity, backend: engines.find((e) => e.backend)?.backend, ...stats };
  } finally {
    for (const e of engines) await e.close();
  }
}

// ------------------------------------------------------------------------------------------- output
const f1 = (v) => (v == null ? '—' : v.toFixed(1));
const f2 = (v) => (v == null ? '—' : v.toFixed(2));

function table(results) {
  const head = ['model', 'batch', 'vitmsn median ms', 'ort median ms', 'speedup (ort ms / vitmsn ms)',
    'vitmsn img/s', 'ort img/s', 'vitmsn p25–p75 ms', 'ort p25–p75 ms', 'rel L2 vs ort'];
  const rows = results.map((r) => [
    r.model, String(r.batch),
    f1(r.vitmsn?.median_ms), f1(r.ort.median_ms),
    r.vitmsn ? `${(r.ort.median_ms / r.vitmsn.median_ms).toFixed(2)}×` : '—',
    f2(r.vitmsn?.img_s), f2(r.ort.img_s),
    r.vitmsn ? `${f1(r.vitmsn.p25_ms)}–${f1(r.vitmsn.p75_ms)}` : '—',
    `${f1(r.ort.p25_ms)}–${f1(r.ort.p75_ms)}`,
    r.parity_rel_l2 == null ? '—' : r.parity_rel_l2.toExponential(1),
  ]);
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

function machineLine(m) {
  return `${m.cpu}${m.flags.length ? ` [${m.flags.join(' ')}]` : ''}, ${m.logicalCpus} logical CPUs `
    + `(${m.availableParallelism} usable), load avg ${m.loadavg}; ${m.platform}, node ${m.node}, onnxruntime-node ${m.ort}`;
}

const RESULTS_HEADER = `# vitmsn CPU vs onnxruntime-node

Appended by \`node bench/cpu-vs-ort.mjs --record\` (\`npm run bench -- --record\`).

Method: both engines run the same ViT-MSN weights (deterministic, generated by
\`test/fixtures/anchors/\`: an HF model folder for vitmsn, transformers' own ONNX export of
\`ViTMSNModel\` for onnxruntime-node, graph optimizations \`all\`) on the same synthetic 224×224 input,
fp32, on the CPU, with the same number of intra-op threads, in one Node process. After a warmup of
both, each round times k consecutive calls of one engine then k of the other, alternating which goes
first, so machine noise falls on both; the figures are medians over all timed calls (p25–p75 beside
them). "speedup" is ort median / vitmsn median (> 1: vitmsn is faster). "rel L2 vs ort" is the
relative L2 distance of vitmsn's last_hidden_state from onnxruntime's on that input. Shared machines
are noisy: compare only rows of one section.
`;

function record(m, results, cmd) {
  if (!fs.existsSync(RESULTS)) fs.writeFileSync(RESULTS, RESULTS_HEADER);
  const section = `
## ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}${onlyOrt ? ' (onnxruntime only)' : ''}

- machine: ${machineLine(m)}
- vitmsn: ${onlyOrt ? 'not run' : `${results.find((r) => r.backend)?.backend ?? 'cpu'}, git ${gitRev()}`}
- method: ${threads} threads each, ${warmup} warmup calls each, ${rounds} rounds × ${k} calls per engine
- command: \`${cmd}\`

${table(results)}
`;
  fs.appendFileSync(RESULTS, section);
}

// --------------------------------------------------------------------------------------------- main
const m = machine();
const results = [];
console.error(`# ${machineLine(m)}`);
console.error(`# ${threads} threads, warmup ${warmup}, ${rounds} rounds × ${k} calls per engine${onlyOrt ? ', onnxruntime only' : ''}`);
try {
  for (const arch of models) {
    for (const B of batches) {
      const r = await benchOne(arch, B);
      results.push(r);
      console.error(`# ${arch} b${B}: ${r.vitmsn ? `vitmsn ${f1(r.vitmsn.median_ms)} ms, ` : ''}ort ${f1(r.ort.median_ms)} ms`
        + `${r.parity_rel_l2 != null ? `, rel L2 ${r.parity_rel_l2.toExponential(1)}` : ''}`);
    }
  }
} finally {
  await closeOrt();
}
if (args.json) console.log(JSON.stringify({ machine: m, results }, null, 2));
else {
  console.log(`\nmachine: ${machineLine(m)}\n`);
  console.log(table(results));
}
if (args.record) {
  const cmd = ['node', 'bench/cpu-vs-ort.mjs', ...process.argv.slice(2)].join(' ');
  record(m, results, cmd);
  console.error(`# appended to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
}
