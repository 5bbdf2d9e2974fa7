/**
 * What the HTTP server needs from a model: the port it is written against. `modelService()`
 * (adapter.ts) makes one from a loaded {@link Model}; tests may pass their own.
 */
import type { Classification, Pooling } from '../encode';
import type { ModelStats } from '../batch-stats';
import type { QueueStats } from '../call-queue';
import type { Tensor } from '../types';

/** Per-call options every service method takes: cancellation and a deadline. */
export interface CallOptions {
  /** Aborting it removes the call's work from the queue; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Rejects with a DOMException named 'TimeoutError' once this many ms have passed. */
  timeoutMs?: number;
  /** Refuse images over this many pixels (ERR_IMAGE_TOO_LARGE), before decoding them. */
  maxPixels?: number;
}

export interface ServiceEncodeOptions extends CallOptions {
  pooling?: Pooling;
  normalize?: boolean;
}

export interface ServiceClassifyOptions extends CallOptions {
  topK?: number;
}

/** What the service's queue did: `model.stats()`. */
export type ServiceStats = Pick<
  ModelStats,
  'queuedImages' | 'queuedCalls' | 'maxQueue' | 'batches' | 'images' | 'batchSizes' | 'imagesPerSecond' | 'latencyMs'
>;

export interface ServiceInfo {
  /** Shown as "model" in answers. */
  name: string;
  /** Embedding width (hidden size). */
  dim: number;
  /** Classifier outputs; 0 for a backbone. */
  numLabels: number;
}

/** A model as the server sees it. Images are encoded image files (JPEG, PNG, …) in Buffers. */
export interface EmbedService {
  readonly info: ServiceInfo;
  encode(images: Buffer[], options?: ServiceEncodeOptions): Promise<Tensor>;
  classify(images: Buffer[], options?: ServiceClassifyOptions): Promise<Classification[][]>;
  stats(): ServiceStats;
  /** The queue alone, checked on every inference request (stats() is for metrics scrapes). */
  queue(): QueueStats;
  /** Waits for calls already accepted, then frees the model. */
  dispose(): Promise<void>;
}
