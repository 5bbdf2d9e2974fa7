#!/usr/bin/env node
// `vitmsn serve` soak and overload: (1) 10 000 requests, a mix of good images and every kind of bad
// request (junk bytes, wrong type, too many pixels, body too large, bad option, unknown route),
// against one server, checking each status and the server's RSS (VmRSS) after the first 2 500
// (warm-up: heaps and caches grown), every 2 500 after, and at the end; (2) overload: a server with a short queue (--max-queue 8) and a slow model, 256
// concurrent requests, the time the refused ones take to get their 429; (3) steady overload: that
// queue kept full by 32 clients, one more client's requests one after another, their 429 times;
// (4) the CPU time one 429 costs the server (a service whose queue is always full, autocannon).
//
//   node bench/serve-soak.mjs [--requests 10000] [--record]
//
// The model is the tiny golden backbone (fast, so the soak measures the server, not the model); the
// overload part uses the generated ViT-S/16 (test/fixtures/anchors, python3 + numpy).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, gitRev, now, appendResults } from './support.mjs';
import { tinyModelFolder } from '../test/support/fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const CLI = path.join(root, 'dist', 'cli.js');
const { values: args } = parseArgs({
  options: { requests: { type: 'string', default: '10000' }, record: { type: 'boolean', default: false } },
});
const N = Number(args.requests);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vitmsn-soak-'));
function folder(size) {
  return tinyModelFolder(path.join(tmp, `m${size}`), 'tiny-s8', size);
}

async function serve(model, extra = []) {
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--model', model, '--port', '0', '--device', 'cpu', '--threads', '1', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const end = Date.now() + 60_000;
  while (!/ready in/.test(err)) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(`serve did not start:\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    url: /listening on (http:\/\/\S+)/.exec(err)[1],
    stop: () =>
      new Promise((r) => {
        child.once('exit', r);
        child.kill('SIGTERM');
      }),
  };
}
const rssMiB = (pid) => Number(/^VmRSS:\s*(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

const png = fs.readFileSync(path.join(root, 'test', 'fixtures', 'images', 'chelsea.png'));
const gif = fs.readFileSync(path.join(root, 'test', 'fixtures', 'pil', 'anim.gif'));
const kinds = [
  {
    name: 'good PNG',
    status: 200,
    req: (u) => fetch(`${u}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png }),
  },
  {
    name: 'good GIF, JSON',
    status: 200,
    req: (u) =>
      fetch(`${u}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ images: [gif.toString('base64')], normalize: true }),
      }),
  },
  {
    name: 'junk bytes',
    status: 400,
    req: (u) =>
      fetch(`${u}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: Buffer.from('not an image at all'),
      }),
  },
  {
    name: 'wrong content type',
    status: 415,
    req: (u) =>
      fetch(`${u}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' }),
  },
  {
    name: 'too many pixels',
    status: 413,
    req: (u) => fetch(`${u}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png }),
  },
  {
    name: 'body too large',
    status: 413,
    req: (u) =>
      fetch(`${u}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: Buffer.alloc(3_000_000, 7),
      }),
  },
  {
    name: 'bad option',
    status: 400,
    req: (u) =>
      fetch(`${u}/v1/embeddings?pooling=max`, { method: 'POST', headers: { 'content-type': 'image/gif' }, body: gif }),
  },
  { name: 'unknown route', status: 404, req: (u) => fetch(`${u}/v2/nope`) },
];

// (1) soak. Two servers: one with a pixel limit the PNG passes, one where it does not (413).
const small = folder(32);
const soak = await serve(small, ['--max-body-bytes', '2000000']);
const tight = await serve(small, ['--max-pixels', '100000']);
const counts = Object.fromEntries(kinds.map((k) => [k.name, { ok: 0, closed: 0, bad: 0 }]));
let rss1k = NaN;
const samples = [];
const t0 = performance.now();
for (let i = 0; i < N; i += 16) {
  await Promise.all(
    Array.from({ length: Math.min(16, N - i) }, async (_, j) => {
      const k = kinds[(i + j) % kinds.length];
      let r;
      try {
        r = await k.req(k.name === 'too many pixels' ? tight.url : soak.url);
      } catch (e) {
        // A body over the limit may be refused while the client still writes it (EPIPE / reset): the
        // server answered and closed early; anything else is a failure.
        const code = e?.cause?.code;
        counts[k.name][k.status === 413 && (code === 'EPIPE' || code === 'ECONNRESET') ? 'closed' : 'bad']++;
        return;
      }
      await r.arrayBuffer();
      counts[k.name][r.status === k.status ? 'ok' : 'bad']++;
    }),
  );
  if (i + 16 >= 2500 && Number.isNaN(rss1k)) rss1k = rssMiB(soak.child.pid); // after warm-up (heaps grown)
  if ((i + 16) % 2500 < 16) samples.push(`${i + 16}: ${rssMiB(soak.child.pid).toFixed(1)}`);
}
const soakSeconds = (performance.now() - t0) / 1000;
const rssEnd = rssMiB(soak.child.pid);
await soak.stop();
await tight.stop();

// (2) overload: a slow model, a queue of 8 images, 256 requests at once.
const { realModel } = await import('../test/support/fixtures.mjs');
const slow = await serve((await realModel('vit-s16')).modelDir, ['--max-queue', '8', '--max-batch', '4']);
const body = { images: [gif.toString('base64')] };
const over = await Promise.all(
  Array.from({ length: 256 }, async () => {
    const s = performance.now();
    const r = await fetch(`${slow.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await r.arrayBuffer();
    return { status: r.status, ms: performance.now() - s, retry: r.headers.get('retry-after') };
  }),
);
// (3) steady overload: 32 clients in a child process keep the queue full (each waits 50 ms after a
// 429, as a client honouring back-off would) while this process sends requests one after another
// over a kept-alive connection: its 429s show how fast the server sheds load, without a burst's own
// queueing (256 connections opened at once, their requests parsed one by one on one event loop)
// and without the busy clients' work on this process's event loop.
const post = () =>
  fetch(`${slow.url}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
const busyClients = `
  const [url, body] = [process.argv[1], process.argv[2]];
  const post = () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  let busy = true;
  process.on('message', () => (busy = false));
  Promise.all(Array.from({ length: 32 }, async () => {
    while (busy) {
      const r = await post().catch(() => undefined);
      await r?.arrayBuffer();
      if (r?.status === 429) await new Promise((res) => setTimeout(res, 50));
    }
  })).then(() => process.exit(0));
`;
const keepFull = spawn(process.execPath, ['-e', busyClients, `${slow.url}/v1/embeddings`, JSON.stringify(body)], {
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
});
await new Promise((res) => setTimeout(res, 3000)); // the queue fills
const probe = [];
for (let i = 0; i < 300; i++) {
  const s = performance.now();
  const r = await post();
  await r.arrayBuffer();
  probe.push({ status: r.status, ms: performance.now() - s });
}
keepFull.send('stop');
await new Promise((res) => keepFull.once('exit', res));
await slow.stop();
const probeRefused = probe
  .filter((o) => o.status === 429)
  .map((o) => o.ms)
  .sort((a, b) => a - b);
const refused = over
  .filter((o) => o.status === 429)
  .map((o) => o.ms)
  .sort((a, b) => a - b);
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : NaN);
const byStatus = over.reduce((m, o) => ((m[o.status] = (m[o.status] ?? 0) + 1), m), {});
// (4) the server's own cost of a 429: createServer in this process around a service whose queue is
// always full, autocannon in a child process for 5 s, this process's CPU time per answer.
const { createServer } = await import('../dist/serve/index.js');
const fullQueue = { queuedImages: 8, queuedCalls: 8, maxQueue: 8 };
const fullService = {
  info: { name: 'full', dim: 4, numLabels: 0 },
  encode: async () => Promise.reject(new Error('never called')),
  classify: async () => [],
  stats: () => ({
    ...fullQueue,
    batches: 0,
    images: 0,
    batchSizes: {},
    imagesPerSecond: 0,
    latencyMs: { p50: 0, p90: 0, p99: 0 },
  }),
  queue: () => fullQueue,
  dispose: async () => undefined,
};
const shed = await createServer(fullService);
await shed.listen({ host: '127.0.0.1', port: 0 });
const shedUrl = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (shed.server.address()).port}/v1/embeddings`;
const cannon = `
  const autocannon = require(process.argv[1]);
  autocannon({ url: process.argv[2], method: 'POST', headers: { 'content-type': 'application/json' }, body: process.argv[3], connections: 8, duration: 5 },
    (e, r) => console.log(JSON.stringify(e ? { error: String(e) } : { n: r.requests.total, non2xx: r.non2xx })));`;
const cpu0 = process.cpuUsage();
const cannonOut = await new Promise((resolve) => {
  const c = spawn(
    process.execPath,
    ['-e', cannon, path.join(root, 'node_modules', 'autocannon'), shedUrl, JSON.stringify(body)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.once('exit', () => resolve(JSON.parse(out.trim().split('\n').pop())));
});
const cpu = process.cpuUsage(cpu0);
await shed.close();
const usPer429 = (cpu.user + cpu.system) / cannonOut.n;
fs.rmSync(tmp, { recursive: true, force: true });

const lines = [
  `| request kind | expected status | answered as expected | refused mid-upload (connection closed) | other |`,
  `| --- | --- | --- | --- | --- |`,
  ...kinds.map(
    (k) => `| ${k.name} | ${k.status} | ${counts[k.name].ok} | ${counts[k.name].closed} | ${counts[k.name].bad} |`,
  ),
  '',
  `- ${N} requests in ${soakSeconds.toFixed(1)} s (16 at a time); server RSS after the first 2 500 (warm-up): ${rss1k.toFixed(1)} MiB, after ${N}: ${rssEnd.toFixed(1)} MiB (${(((rssEnd - rss1k) / rss1k) * 100).toFixed(1)}%); RSS MiB along the way: ${samples.join(', ')}`,
  `- overload (ViT-S/16, --max-queue 8, --max-batch 4, 256 concurrent requests): statuses ${JSON.stringify(byStatus)}; 429 answered in p50 ${pct(refused, 0.5).toFixed(1)} ms, p99 ${pct(refused, 0.99).toFixed(1)} ms, max ${refused.at(-1)?.toFixed(1)} ms (client-measured, request to full answer); Retry-After on 429: ${over.filter((o) => o.status === 429).every((o) => o.retry) ? 'yes' : 'missing'}`,
  `- the server's own cost of a 429 (createServer in the bench process around a service whose queue is always full; autocannon, 8 connections, 5 s, in a child process): ${cannonOut.n} requests (${cannonOut.non2xx} non-2xx), ${usPer429.toFixed(0)} µs of the server process's CPU (user + system) per answer`,
  `- steady overload (same server; 32 clients in another process keep its queue full, waiting 50 ms after each 429): one client's ${probe.length} requests, one after another on a kept-alive connection: ${probeRefused.length} answered 429 in p50 ${pct(probeRefused, 0.5).toFixed(1)} ms, p99 ${pct(probeRefused, 0.99).toFixed(1)} ms, max ${probeRefused.at(-1)?.toFixed(1)} ms (client-measured, request to full answer); other statuses: ${JSON.stringify(probe.filter((o) => o.status !== 429).reduce((m, o) => ((m[o.status] = (m[o.status] ?? 0) + 1), m), {}))}`,
];
console.log(lines.join('\n'));
if (args.record) {
  appendResults(
    `## vitmsn serve soak and overload, ${now()}\n\n- machine: ${machine()}; git ${gitRev()}\n- command: \`node bench/serve-soak.mjs ${process.argv.slice(2).join(' ')}\`\n\n${lines.join('\n')}\n`,
  );
}
const bad = Object.values(counts).reduce((n, c) => n + c.bad, 0);
process.exit(bad ? 1 : 0);
