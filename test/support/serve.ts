// Helpers for the HTTP server tests: model folders, a model whose calls can be held at a gate
// (to make the server busy deterministically) and observed, servers on 127.0.0.1 port 0, metrics.

import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { native, type NativeModel } from '../../lib/binding';
import type { BatchingOptions } from '../../lib/call-queue';
import { readConfig } from '../../lib/config';
import { Model } from '../../lib/model';
import { readPreprocessorConfig } from '../../lib/preprocessor';
import { resolveBatching } from '../../lib/validate';
import { createServer, type EmbedService, type ServeOptions } from '../../lib/serve/index';
import { type GoldenModel } from './goldens';

import { tinyModelFolder } from './real-models';

/** A copy of a tiny golden model folder with the facebook preprocessor config at its own size. */
export function modelFolder(root: string, name: GoldenModel, size: number, tag: string = name): string {
  return tinyModelFolder(path.join(root, tag), name, size);
}

export interface ModelCall {
  kind: 'embed' | 'forward';
  /** Images in the native batch. */
  batch: number;
}

/**
 * A real Model (the library's own queue, batching and cancellation) whose native calls wait at a
 * gate: every batch that reaches the addon is recorded, then held while the gate is shut. So a
 * test can make the model busy, and see which work ever reached it.
 */
export async function gatedModel(dir: string, batching: BatchingOptions | false = { maxDelayMs: 0 }) {
  const calls: ModelCall[] = [];
  let gate: Promise<void> = Promise.resolve();
  let release = () => undefined as void;
  const { config, native: nc } = await readConfig(dir);
  const pre = await readPreprocessorConfig(dir, nc.imageHeight, nc.imageWidth);
  const real = await native().loadModel(dir, nc, { device: 'cpu', dtype: 'float32', threads: 1 });
  const handle: NativeModel = {
    async forward(pixels, shape, options) {
      calls.push({ kind: 'forward', batch: shape[0] });
      await gate;
      return real.forward(pixels, shape, options);
    },
    async embed(pixels, shape, options, how) {
      calls.push({ kind: 'embed', batch: shape[0] });
      await gate;
      return real.embed(pixels, shape, options, how);
    },
    decodeJpegs: (files, pre) => real.decodeJpegs(files, pre),
    info: () => real.info(),
    maxBatch: (...a) => real.maxBatch(...a),
    dispose: () => real.dispose(),
  };
  const shape = {
    numChannels: nc.numChannels,
    imageHeight: nc.imageHeight,
    imageWidth: nc.imageWidth,
    patchSize: nc.patchSize,
    numHiddenLayers: nc.numHiddenLayers,
    numAttentionHeads: nc.numAttentionHeads,
  };
  const model = new Model(handle, config, shape, 'cpu', 'float32', pre, resolveBatching(batching, 'cpu'));
  return {
    model,
    calls,
    shut() {
      gate = new Promise((r) => (release = r));
    },
    open() {
      release();
    },
  };
}

export interface Running {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** A server on 127.0.0.1, port 0. Unless told, it leaves the service's model alone when closed (tests share models). */
export async function startServer(
  service: EmbedService | Promise<EmbedService>,
  options: ServeOptions = {},
): Promise<Running> {
  const app = await createServer(service, { disposeOnClose: false, ...options });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url, close: () => app.close() };
}

/** A sample's value in Prometheus text (0 when absent); `labels` must all match. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

export async function until(what: () => boolean | Promise<boolean>, ms = 10_000, label = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
