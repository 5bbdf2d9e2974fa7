// Child process for test/worker-terminate.test.ts: runs worker_threads that keep the addon busy
// (loading, forward, encode, preprocess) and ends them mid-call, by worker.terminate() from here or
// by process.exit() inside the worker. A native abort would end this process with a signal, which
// is why it runs apart from vitest. Prints one line per round (with this process's RSS in MiB
// after it, to see that each worker's models were freed), then TERMINATE-OK, and exits 0.
//
// argv[2]: JSON { dist, models: { tiny, big }, rounds: [{ kind, model, delay }] }
'use strict';
const { Worker } = require('node:worker_threads');

const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const { loadModel } = require(workerData.dist);
const { kind, model: dir, delay } = workerData;
(async () => {
  if (kind === 'load') {
    parentPort.postMessage('busy');
    for (;;) await (await loadModel(dir, { device: 'cpu', threads: 1 })).dispose();
  }
  const m = await loadModel(dir, { device: 'cpu', threads: 1 });
  const size = m.config.imageSize;
  const [H, W] = Array.isArray(size) ? size : [size, size];
  const x = new Float32Array(workerData.batch * 3 * H * W).map((_, i) => Math.sin(i * 0.01));
  const raw = { data: new Uint8Array(H * W * 3).map((_, i) => i * 7), width: W, height: H, channels: 3 };
  const images = Array.from({ length: workerData.batch }, () => raw);
  const forward = () => m.forward(x, [workerData.batch, 3, H, W], { outputHiddenStates: true, outputAttentions: true });
  const step = {
    forward,
    encode: () => m.encode(images, { batchSize: workerData.batch }),
    preprocess: () => m.preprocess(images),
    exit: forward,
  }[kind];
  if (kind === 'exit') setTimeout(() => process.exit(0), delay);
  parentPort.postMessage('busy');
  // Several calls in flight at once, so that some complete while the environment goes away.
  for (;;) await Promise.all([step(), step(), step()]);
})().catch((e) => parentPort.postMessage('error: ' + e.code + ': ' + e.message));
`;

function round({ kind, model, delay, batch }, dist) {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SRC, { eval: true, workerData: { dist, kind, model, delay, batch } });
    let timer;
    w.on('message', (msg) => {
      if (msg !== 'busy') return reject(new Error(`${kind}: worker says ${msg}`));
      if (kind !== 'exit') timer = setTimeout(() => w.terminate(), delay);
    });
    w.on('error', (e) => reject(new Error(`${kind}: worker error ${e.message}`)));
    w.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

(async () => {
  const { dist, rounds } = JSON.parse(process.argv[2]);
  for (const r of rounds) {
    const code = await round(r, dist);
    const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
    console.log(`round ${r.kind} delay=${r.delay} batch=${r.batch}: worker exit ${code} rss=${rss}`);
  }
  console.log('TERMINATE-OK');
  process.exit(0);
})().catch((e) => {
  console.log(`TERMINATE-FAILED ${e.message}`);
  process.exit(2);
});
