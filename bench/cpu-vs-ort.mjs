#!/usr/bin/env node
// vitmsn's CPU backend against onnxruntime-node, on the same ViT-MSN weights and the same input, in
// ONE process, interleaved: after a warmup of every engine, each round times k calls of each engine
// (vitmsn once per --dtype, onnxruntime fp32), in an order that rotates every round, so machine noise
// (other tenants, frequency changes) lands on all. Reported: the median over all timed calls of each.
//
// usage: node bench/cpu-vs-ort.mjs [--models vit-s16,vit-b16] [--batches 1,8] [--iters 10] [--k 3]
//                                  [--warmup 2] [--threads 2] [--dtype float32,bfloat16] [--rss]
//                                  [--q8] [--record] [--only-ort] [--json]
//   --iters    rounds per (model, batch); each round times k calls of every engine, in an order
//              that rotates every round (vitmsn once per --dtype, onnxruntime always fp32)
//   --dtype    vitmsn dtypes to time; each is compared with the same run's onnxruntime fp32 times
//   --q8       also time onnxruntime q8 (bench/quantize_q8.py: the graph onnxruntime's quantize_dynamic
//              makes, int8 DynamicQuantizeMatMul; needs Debian's python3-onnx), interleaved likewise
//   --rss      also measure, per model and engine, in a fresh child process each: cold start (spawn
//              to the first batch-1 embedding), peak RSS (VmHWM) and the RSS before the model
//              (Node + the engine library), next to the weights' size
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
import { closeOrt, ortSession, realModel, relL2, REAL_ARCHS, syntheticPixels } from '../test/support/fixtures.mjs';
import { q8Model } from './support.mjs';

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
    dtype: { type: 'string', default: 'float32' },
    rss: { type: 'boolean', default: false },
    q8: { type: 'boolean', default: false },
    child: { type: 'string' },
    'model-dir': { type: 'string' },
    onnx: { type: 'string' },
    record: { type: 'boolean', default: false },
    'only-ort': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(
    fs
      .readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .slice(1, 21)
      .map((l) => l.replace(/^\/\/ ?/, ''))
      .join('\n'),
  );
  process.exit(0);
}
const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const posInt = (name, s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${s}`);
  return n;
};
const models = list(args.models);
for (const m of models)
  if (!REAL_ARCHS.includes(m)) throw new Error(`--models: unknown ${m} (have ${REAL_ARCHS.join(', ')})`);
const batches = list(args.batches).map((b) => posInt('batches', b));
const rounds = posInt('iters', args.iters);
const k = posInt('k', args.k);
const warmup = posInt('warmup', args.warmup);
const threads = posInt('threads', args.threads);
const onlyOrt = args['only-ort'];
const dtypes = list(args.dtype);
for (const d of dtypes)
  if (!['float32', 'bfloat16', 'int8'].includes(d)) throw new Error(`--dtype: ${d} (float32, bfloat16 or int8)`);
// The vitmsn child of --rss must not load onnxruntime (its pages would count in the RSS).
const ort = args.child === 'vitmsn' ? null : await import('onnxruntime-node');

// ------------------------------------------------------------------------------------------ machine
function machine() {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  let flags = [];
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? cpu;
    const f = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    flags = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8', 'amx_tile'].filter((x) =>
      f.has(x),
    );
  } catch {
    /* not Linux */
  }
  const ortVersion = ort?.env?.versions?.node ?? '?';
  return {
    cpu,
    flags,
    logicalCpus: os.cpus().length,
    availableParallelism: os.availableParallelism?.() ?? os.cpus().length,
    loadavg: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    node: process.version,
    ort: ortVersion,
    platform: `${os.platform()}/${os.arch()}`,
  };
}

function gitRev() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'uncommitted';
  }
}

// -------------------------------------------------------------------------------------------- engines
async function vitmsnEngine(modelDir, dtype = 'float32') {
  let lib;
  try {
    lib = await import('../dist/index.mjs');
  } catch (e) {
    throw new Error(`cannot import ../dist/index.mjs (run \`npm run build\` first, or pass --only-ort): ${e.message}`);
  }
  const model = await lib.loadModel(modelDir, {
    device: 'cpu',
    dtype: /** @type {import('../dist/index.js').DType} */ (dtype),
    threads,
  });
  let backend = 'cpu';
  try {
    const b = lib.backends?.().find((x) => x.name === 'cpu');
    if (b?.detail) backend = `cpu (${b.detail})`;
  } catch {
    /* informational only */
  }
  return {
    name: dtype === 'float32' ? 'vitmsn' : `vitmsn-${dtype}`,
    dtype,
    backend,
    run: async (x, shape) => (await model.forward(x, shape)).lastHiddenState.data,
    close: () => model.dispose(),
  };
}

async function ortEngine(onnxPath, name = 'ort') {
  const session = await ortSession(onnxPath, threads);
  return {
    name,
    run: async (x, shape) =>
      (await session.run({ pixel_values: new ort.Tensor('float32', x, shape) })).last_hidden_state.data,
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
  if (!onlyOrt) for (const d of dtypes) engines.push(await vitmsnEngine(modelDir, d));
  engines.push(await ortEngine(onnxPath));
  if (args.q8) engines.push(await ortEngine(q8Model(onnxPath), 'ort-q8'));
  try {
    // Warmup (and one parity check: both must compute the same thing for the timing to mean anything).
    const outs = [];
    for (const e of engines) {
      for (let i = 0; i < warmup; i++) outs[engines.indexOf(e)] = await e.run(x, shape);
      await settle();
    }
    const ortOut = /** @type {Float32Array} */ (outs[engines.findIndex((e) => e.name === 'ort')]);
    const parity = Object.fromEntries(
      engines.filter((e) => e.name !== 'ort').map((e) => [e.name, relL2(outs[engines.indexOf(e)], ortOut)]),
    );

    const times = engines.map(() => []);
    for (let r = 0; r < rounds; r++) {
      // Rotate (and mirror every other round) so no engine always runs first or after the same one.
      const base = engines.map((_, i) => (i + r) % engines.length);
      const order = Math.floor(r / engines.length) % 2 === 0 ? base : base.reverse();
      for (const i of order) {
        for (let j = 0; j < k; j++) {
          const t = performance.now();
          await engines[i].run(x, shape);
          times[i].push(performance.now() - t);
        }
        await settle();
      }
    }
    const stats = Object.fromEntries(
      engines.map((e, i) => [
        e.name,
        {
          median_ms: median(times[i]),
          min_ms: Math.min(...times[i]),
          p25_ms: quantile(times[i], 0.25),
          p75_ms: quantile(times[i], 0.75),
          n: times[i].length,
          img_s: (B * 1000) / median(times[i]),
        },
      ]),
    );
    return {
      model: arch,
      batch: B,
      threads,
      parity_rel_l2: parity,
      backend: engines.find((e) => e.backend)?.backend,
      stats,
    };
  } finally {
    for (const e of engines) await e.close();
  }
}

// ------------------------------------------------------------------------------------------- output
const f1 = (v) => (v == null ? '—' : v.toFixed(1));
const f2 = (v) => (v == null ? '—' : v.toFixed(2));

function table(results) {
  const q8 = results.some((r) => r.stats['ort-q8']);
  const head = [
    'model',
    'batch',
    'vitmsn dtype',
    'vitmsn median ms',
    'ort fp32 median ms',
    'speedup (ort ms / vitmsn ms)',
    ...(q8 ? ['ort q8 median ms', 'speedup vs q8 (ort q8 ms / vitmsn ms)'] : []),
    'vitmsn img/s',
    'ort img/s',
    'vitmsn p25–p75 ms',
    'ort p25–p75 ms',
    'rel L2 vs ort',
  ];
  const rows = [];
  for (const r of results) {
    const o = r.stats.ort;
    const oq = r.stats['ort-q8'];
    const names = Object.keys(r.stats).filter((n) => n.startsWith('vitmsn'));
    if (names.length === 0) names.push(null);
    for (const n of names) {
      const v = n ? r.stats[n] : null;
      rows.push([
        r.model,
        String(r.batch),
        n ? (n === 'vitmsn' ? 'float32' : n.replace('vitmsn-', '')) : '—',
        f1(v?.median_ms),
        f1(o.median_ms),
        v ? `${(o.median_ms / v.median_ms).toFixed(2)}×` : '—',
        ...(q8 ? [f1(oq?.median_ms), v && oq ? `${(oq.median_ms / v.median_ms).toFixed(2)}×` : '—'] : []),
        f2(v?.img_s),
        f2(o.img_s),
        v ? `${f1(v.p25_ms)}–${f1(v.p75_ms)}` : '—',
        `${f1(o.p25_ms)}–${f1(o.p75_ms)}`,
        n && r.parity_rel_l2?.[n] != null ? r.parity_rel_l2[n].toExponential(1) : '—',
      ]);
    }
  }
  const q8Parity = results
    .filter((r) => r.parity_rel_l2?.['ort-q8'] != null)
    .map((r) => `${r.model} b${r.batch} ${r.parity_rel_l2['ort-q8'].toExponential(1)}`);
  const note = q8Parity.length ? `\n\nonnxruntime q8 rel L2 vs ort fp32: ${q8Parity.join(', ')}` : '';
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n') + note;
}

function rssTable(rows) {
  const head = [
    'model',
    'engine',
    'weights MB (fp32 safetensors)',
    'peak RSS MB (VmHWM)',
    'RSS / weights',
    'runtime MB (before the model)',
    '(peak − runtime) / weights',
    'cold start ms (spawn → first b1 embedding)',
  ];
  const body = rows.map((r) => [
    r.model,
    r.engine,
    f1(r.weightsMB),
    f1(r.hwmMB),
    `${(r.hwmMB / r.weightsMB).toFixed(2)}×`,
    f1(r.runtimeMB),
    `${((r.hwmMB - r.runtimeMB) / r.weightsMB).toFixed(2)}×`,
    f1(r.coldMs),
  ]);
  return [head, head.map(() => '---'), ...body].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

// ------------------------------------------------------------------------------- RSS / cold start
function vmHwmMB() {
  try {
    const kb = Number(/^VmHWM:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]);
    if (kb > 0) return kb / 1024;
  } catch {
    /* not Linux */
  }
  return process.resourceUsage().maxRSS / 1024;
}

// Resident set now (VmRSS), MB.
function vmRssMB() {
  try {
    const kb = Number(/^VmRSS:\s*(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]);
    if (kb > 0) return kb / 1024;
  } catch {
    /* not Linux */
  }
  return process.memoryUsage().rss / (1 << 20);
}

// Child mode: load one engine, embed one batch-1 image, report, exit. runtimeMB is the process
// before any model exists (Node, this script, the engine's library loaded): what the model and
// its activations add is the peak minus that.
async function childMain() {
  if (args.child === 'vitmsn') await import('../dist/index.mjs');
  const runtimeMB = vmRssMB();
  const x = syntheticPixels(1);
  const shape = [1, 3, 224, 224];
  let run;
  if (args.child === 'vitmsn') {
    const e = await vitmsnEngine(args['model-dir'], dtypes[0]);
    run = () => e.run(x, shape);
  } else {
    const session = await ortSession(args.child === 'ort-q8' ? q8Model(args.onnx) : args.onnx, threads);
    run = () => session.run({ pixel_values: new ort.Tensor('float32', x, shape) });
  }
  await run();
  process.stdout.write(`${JSON.stringify({ first: true, hwmMB: vmHwmMB(), runtimeMB })}\n`);
  process.exit(0);
}

async function measureChild(arch, engine, dtype) {
  const { modelDir, onnxPath } = await realModel(arch);
  const weightsMB = fs.statSync(path.join(modelDir, 'model.safetensors')).size / (1 << 20);
  const { spawn } = await import('node:child_process');
  const argv = [
    fileURLToPath(import.meta.url),
    '--child',
    engine,
    '--model-dir',
    modelDir,
    '--onnx',
    onnxPath,
    '--threads',
    String(threads),
    '--dtype',
    dtype,
  ];
  const t0 = performance.now();
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let coldMs = null;
  child.stdout.on('data', (d) => {
    out += d;
    if (coldMs == null && out.includes('\n')) coldMs = performance.now() - t0;
  });
  const code = await new Promise((r) => child.on('close', r));
  if (code !== 0) throw new Error(`${engine} child exited with ${code}`);
  const { hwmMB, runtimeMB } = JSON.parse(out.split('\n')[0]);
  const name =
    engine === 'ort' ? 'onnxruntime-node fp32' : engine === 'ort-q8' ? 'onnxruntime-node q8' : `vitmsn ${dtype}`;
  return { model: arch, engine: name, weightsMB, hwmMB, runtimeMB, coldMs };
}

function machineLine(m) {
  return (
    `${m.cpu}${m.flags.length ? ` [${m.flags.join(' ')}]` : ''}, ${m.logicalCpus} logical CPUs ` +
    `(${m.availableParallelism} usable), load avg ${m.loadavg}; ${m.platform}, node ${m.node}, onnxruntime-node ${m.ort}`
  );
}

const RESULTS_HEADER = `# vitmsn CPU vs onnxruntime-node

Appended by \`node bench/cpu-vs-ort.mjs --record\` (\`npm run bench -- --record\`).

Method: both engines run the same ViT-MSN weights (deterministic, generated by
\`test/fixtures/anchors/\`: an HF model folder for vitmsn, transformers' own ONNX export of
\`ViTMSNModel\` for onnxruntime-node, graph optimizations \`all\`) on the same synthetic 224×224 input,
on the CPU, with the same number of intra-op threads, in one Node process; onnxruntime always runs
fp32, vitmsn runs each dtype listed in the "vitmsn dtype" column. After a warmup of every engine,
each round times k consecutive calls of each engine in an order that rotates every round, so machine
noise falls on all; the figures are medians over all timed calls (p25–p75 beside
them). "speedup" is ort median / vitmsn median (> 1: vitmsn is faster). "rel L2 vs ort" is the
relative L2 distance of vitmsn's last_hidden_state from onnxruntime's on that input. Shared machines
are noisy: compare only rows of one section.
`;

function record(m, results, rss, cmd) {
  if (!fs.existsSync(RESULTS)) fs.writeFileSync(RESULTS, RESULTS_HEADER);
  const section = `
## ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}${onlyOrt ? ' (onnxruntime only)' : ''}

- machine: ${machineLine(m)}
- vitmsn: ${onlyOrt ? 'not run' : `${results.find((r) => r.backend)?.backend ?? 'cpu'}, git ${gitRev()}`}
- method: ${threads} threads each, ${warmup} warmup calls each, ${rounds} rounds × ${k} calls per engine; vitmsn dtypes ${dtypes.join(', ')} (onnxruntime fp32${args.q8 ? ' and q8 (bench/quantize_q8.py)' : ''})
- command: \`${cmd}\`

${table(results)}
${rss.length ? `\nPeak RSS and cold start, one fresh process per engine and model (batch 1):\n\n${rssTable(rss)}\n` : ''}`;
  fs.appendFileSync(RESULTS, section);
}

// --------------------------------------------------------------------------------------------- main
if (args.child) {
  await childMain();
}
const m = machine();
const results = [];
console.error(`# ${machineLine(m)}`);
console.error(
  `# ${threads} threads, warmup ${warmup}, ${rounds} rounds × ${k} calls per engine${onlyOrt ? ', onnxruntime only' : ''}`,
);
try {
  for (const arch of models) {
    for (const B of batches) {
      const r = await benchOne(arch, B);
      results.push(r);
      console.error(
        `# ${arch} b${B}: ${Object.entries(r.stats)
          .map(([n, v]) => `${n} ${f1(v.median_ms)} ms`)
          .join(', ')}`,
      );
    }
  }
} finally {
  await closeOrt();
}
const rss = [];
if (args.rss) {
  for (const arch of models) {
    if (!onlyOrt) for (const d of dtypes) rss.push(await measureChild(arch, 'vitmsn', d));
    rss.push(await measureChild(arch, 'ort', 'float32'));
    if (args.q8) rss.push(await measureChild(arch, 'ort-q8', 'float32'));
  }
}
if (args.json) console.log(JSON.stringify({ machine: m, results, rss }, null, 2));
else {
  console.log(`\nmachine: ${machineLine(m)}\n`);
  console.log(table(results));
  if (rss.length) console.log(`\n${rssTable(rss)}`);
}
if (args.record) {
  const cmd = ['node', 'bench/cpu-vs-ort.mjs', ...process.argv.slice(2)].join(' ');
  record(m, results, rss, cmd);
  console.error(`# appended to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
}
