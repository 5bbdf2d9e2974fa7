/**
 * EmbedService from a loaded Model: the library does the batching, cancellation (signal,
 * timeoutMs) and backpressure (ERR_OVERLOADED); the adapter passes requests straight through and
 * reads stats() for the metrics.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { BatchingOptions } from '../call-queue';
import { invalid } from '../check';
import { loadModel, type Model } from '../model';
import type { LoadOptions } from '../types';
import type { EmbedService, ServiceClassifyOptions, ServiceEncodeOptions } from './port';

/**
 * A server's batching defaults: the library's maxBatch and delay for the device, and a shorter
 * queue than a library caller's, so that an overloaded server answers 429 instead of growing its
 * latency.
 */
export const DEFAULT_BATCHING: BatchingOptions = { maxQueue: 1024 };

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export interface ModelServiceOptions {
  /** The "model" field of answers; default: 'vitmsn'. */
  name?: string;
  /** Where requests' JPEG files are decoded (encode()'s `decode`); 'gpu' needs a CUDA model. */
  decode?: 'cpu' | 'gpu';
}

/** Serves `model`; the service owns it (dispose() disposes it, after the calls already accepted). */
export function modelService(model: Model, options: ModelServiceOptions = {}): EmbedService {
  if (options.decode === 'gpu' && !model.device.startsWith('cuda'))
    invalid(`decode 'gpu' needs a model on a CUDA device; this one runs on ${model.device}`);
  const decode = options.decode ? { decode: options.decode } : {};
  return {
    info: { name: options.name ?? 'vitmsn', dim: model.config.hiddenSize, numLabels: model.numLabels },
    encode: (images, o: ServiceEncodeOptions = {}) => model.encode(images, { ...decode, ...defined(o) }),
    classify: (images, o: ServiceClassifyOptions = {}) => model.classify(images, { ...decode, ...defined(o) }),
    stats: () => model.stats(),
    queue: () => model.queue(),
    dispose: () => model.dispose(),
  };
}

export interface LoadServiceOptions
  extends Pick<LoadOptions, 'device' | 'dtype' | 'threads' | 'revision' | 'onProgress'> {
  name?: string;
  /** As {@link ModelServiceOptions.decode}. */
  decode?: 'cpu' | 'gpu';
  /** Dynamic batching of the model (DEFAULT_BATCHING for what is not given); false = off. */
  batching?: BatchingOptions | false;
}

/** loadModel() + modelService(). */
export async function loadService(source: string, options: LoadServiceOptions = {}): Promise<EmbedService> {
  const { name, batching, decode, ...load } = options;
  const b = batching === false ? false : { ...DEFAULT_BATCHING, ...defined(batching ?? {}) };
  const model = await loadModel(source, { ...defined(load), batching: b } as LoadOptions);
  try {
    return modelService(model, {
      name: name ?? (existsSync(source) ? path.basename(path.resolve(source)) : source),
      decode,
    });
  } catch (e) {
    await model.dispose();
    throw e;
  }
}
