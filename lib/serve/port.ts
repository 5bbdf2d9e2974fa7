/**
 * What the HTTP server needs from a model: the port it is written against. `modelService()`
 * (adapter.ts) makes one from a loaded {@link Model}; tests may pass their own.
 */
import type { Classification, Pooling } from '../encode';
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

/** The shape of `model.stats()` (dynamic batching), also produced by the adapter's own queue. */
export interface ServiceStats {
  queuedImages: number;
  queuedCalls: number;
  /** Model calls (batches) run so far. */
  batches: number;
  /** Images run so far. */
  images: number;
  /** batch size → how many batches of that size ran. */
  batchSizes: Record<number, number>;
  imagesPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number };
}

export interface ServiceInfo {
  /** Shown as "model" in answers. */
  name: string;
  /** Embedding width (hidden size). */
  dim: number;
  /** Classifier outputs; 0 for a backbone. */
  numLabels: number;
  /** Whether the service passes signal/timeoutMs/batching to the library (true) or emulates them (false). */
  nativeBatching: boolean;
}

/** A model as the server sees it. Images are encoded image files (JPEG, PNG, …) in Buffers. */
export interface EmbedService {
  readonly info: ServiceInfo;
  encode(images: Buffer[], options?: ServiceEncodeOptions): Promise<Tensor>;
  classify(images: Buffer[], options?: ServiceClassifyOptions): Promise<Classification[][]>;
  stats(): ServiceStats;
  /** Waits for calls already accepted, then frees the model. */
  dispose(): Promise<void>;
}
