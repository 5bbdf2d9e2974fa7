// The addon is context-aware: it loads and runs in worker_threads (several at once, next to the
// main thread), its outputs live in the JS heap (so they can be transferred between threads), and
// terminating a worker that holds a model does not take the process down. Uses the built dist/.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index';
import { goldenDir } from './support/goldens';

const DIST = path.join(__dirname, '..', 'dist', 'index.js');
const MODEL = goldenDir('tiny-s8');

const WORKER_SRC = `
const { parentPort, workerData } = require('node:worker_threads');
const { loadModel } = require(workerData.dist);
(async () => {
  const m = await loadModel(workerData.model, { device: 'cpu', threads: 1 });
  const x = new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.05));
  const out = await m.forward(x, [2, 3, 32, 32]);
  if (workerData.keepModel) { setInterval(() => m.config, 1000); parentPort.postMessage({ loaded: true }); return; }
  await m.dispose();
  const buf = out.lastHiddenState.data.buffer;
  // Transferring (not copying) only works for ordinary JS-heap ArrayBuffers.
  parentPort.postMessage({ buf }, [buf]);
  parentPort.postMessage({ detached: buf.byteLength === 0 });
})().catch((e) => parentPort.postMessage({ error: e.code + ': ' + e.message }));
`;

function runWorker(keepModel = false): { worker: Worker; messages: Promise<Array<Record<string, unknown>>> } {
  const worker = new Worker(WORKER_SRC, { eval: true, workerData: { dist: DIST, model: MODEL, keepModel } });
  const messages = new Promise<Array<Record<string, unknown>>>((resolve, reject) => {
    const got: Array<Record<string, unknown>> = [];
    worker.on('message', (m) => {
      got.push(m);
      if (m.error || m.detached !== undefined || m.loaded) resolve(got);
    });
    worker.on('error', reject);
  });
  return { worker, messages };
}

describe('worker_threads', () => {
  it('two workers and the main thread run the model at once, with identical results', async () => {
    const a = runWorker();
    const b = runWorker();
    const m = await loadModel(MODEL, { device: 'cpu', threads: 1 });
    const x = new Float32Array(2 * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.05));
    const want = Buffer.from((await m.forward(x, [2, 3, 32, 32])).lastHiddenState.data.buffer);
    await m.dispose();
    for (const w of [a, b]) {
      const msgs = await w.messages;
      expect(msgs.find((mm) => mm.error)).toBeUndefined();
      const buf = msgs[0].buf as ArrayBuffer;
      expect(Buffer.from(buf).equals(want)).toBe(true);
      expect(msgs[1]).toEqual({ detached: true });
      await w.worker.terminate();
    }
  });

  it('terminating a worker that still holds a model is clean', async () => {
    const w = runWorker(true);
    expect(await w.messages).toEqual([{ loaded: true }]);
    expect(await w.worker.terminate()).toBe(1);
    // The main thread's addon instance is unaffected.
    const m = await loadModel(MODEL, { device: 'cpu', threads: 1 });
    await m.dispose();
  });
});
