/**
 * EmbedService from a loaded Model. Feature detection: a Model with `stats()` has the library's
 * dynamic batching, and with it `signal`/`timeoutMs` on encode()/classify() and ERR_OVERLOADED
 * backpressure: those are passed straight through. Without it the adapter does the same with its
 * own queue (local-queue.ts): coalescing, cancellation of queued work, maxQueue, stats().
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { VitMsnError } from '../errors';
import { loadModel, type Model } from '../model';
import type { LoadOptions, Tensor } from '../types';
import type { Classification } from '../encode';
import { DEFAULT_BATCHING, LocalQueue, type BatchingOptions } from './local-queue';
import type { EmbedService, ServiceClassifyOptions, ServiceEncodeOptions, ServiceStats } from './port';
import { withDeadline } from './serve-error';

export { DEFAULT_BATCHING, type BatchingOptions } from './local-queue';

/** The library's batching API, when present (detected at run time). */
interface BatchingModel {
  stats(): ServiceStats;
  encode(images: Buffer[], options: Record<string, unknown>): Promise<Tensor>;
  classify(images: Buffer[], options: Record<string, unknown>): Promise<Classification[][]>;
}

/** Whether `model` has the library's dynamic batching (and with it signal/timeoutMs/ERR_OVERLOADED). */
export function hasNativeBatching(model: Model): boolean {
  return typeof (model as unknown as { stats?: unknown }).stats === 'function';
}

function defined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

export interface ModelServiceOptions {
  /** The "model" field of answers; default: the folder's name. */
  name?: string;
  /** For the adapter's own queue when the library has no batching; `false` = no coalescing. */
  batching?: Partial<BatchingOptions> | false;
}

/** Serves `model`; the service owns it (dispose() disposes it). */
export function modelService(model: Model, options: ModelServiceOptions = {}): EmbedService {
  const nativeBatching = hasNativeBatching(model);
  const info = {
    name: options.name ?? 'vitmsn',
    dim: model.config.hiddenSize,
    numLabels: model.numLabels,
    nativeBatching,
  };
  if (nativeBatching) {
    const m = model as unknown as BatchingModel;
    return {
      info,
      encode: (images, o: ServiceEncodeOptions = {}) => m.encode(images, defined({ ...o })),
      classify: (images, o: ServiceClassifyOptions = {}) => m.classify(images, defined({ ...o })),
      stats: () => m.stats(),
      dispose: () => model.dispose(),
    };
  }
  const b = options.batching === false ? { maxBatch: 1 } : options.batching ?? {};
  const queue = new LocalQueue(model, { ...DEFAULT_BATCHING, ...defined(b) } as BatchingOptions);
  return {
    info,
    encode: (images, { signal, timeoutMs, ...o }: ServiceEncodeOptions = {}) =>
      queue.submit('encode', images, defined(o), withDeadline(signal, timeoutMs)),
    classify: (images, { signal, timeoutMs, ...o }: ServiceClassifyOptions = {}) =>
      queue.submit('classify', images, defined(o), withDeadline(signal, timeoutMs)),
    stats: () => queue.stats(),
    dispose: async () => {
      await queue.drain();
      await model.dispose();
    },
  };
}

export interface LoadServiceOptions extends Pick<LoadOptions, 'device' | 'dtype' | 'threads' | 'revision' | 'onProgress'> {
  name?: string;
  batching?: Partial<BatchingOptions> | false;
}

/**
 * loadModel() + modelService(). The batching options go to loadModel() when the library takes
 * them (a library without batching refuses the unknown option, and the model is loaded without).
 */
export async function loadService(source: string, options: LoadServiceOptions = {}): Promise<EmbedService> {
  const { name, batching, ...load } = options;
  const lib = batching === false ? false : { ...DEFAULT_BATCHING, ...defined(batching ?? {}) };
  let model: Model;
  try {
    model = await loadModel(source, { ...defined(load), batching: lib } as LoadOptions);
  } catch (e) {
    if (!(e instanceof VitMsnError && e.code === 'ERR_INVALID_ARGUMENT' && /batching/.test(e.message))) throw e;
    model = await loadModel(source, defined(load) as LoadOptions);
  }
  return modelService(model, { name: name ?? (existsSync(source) ? path.basename(path.resolve(source)) : source), batching });
}
