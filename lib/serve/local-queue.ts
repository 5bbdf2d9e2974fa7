/**
 * The adapter's own queue, for a library without dynamic batching: one model call at a time;
 * calls waiting with the same kind and options are coalesced into one encode()/classify() of up
 * to `maxBatch` images; a call whose signal aborts while it waits leaves the queue (its images are
 * never run); past `maxQueue` waiting images a call is refused at once with ERR_OVERLOADED. A
 * coalesced call that fails is re-run call by call, so one bad image fails only its own request.
 */
import { VitMsnError } from '../errors';
import type { Model } from '../model';
import type { Tensor } from '../types';
import type { Classification } from '../encode';
import type { ServiceStats } from './port';
import { ServeError } from './serve-error';
import { StatsRecorder } from './stats';

export interface BatchingOptions {
  /** Most images per model call (coalesced calls), also encode()'s batchSize. Default 16; 1 = off. */
  maxBatch: number;
  /** How long an idle model waits for a fuller batch. Default 0. */
  maxDelayMs: number;
  /** Most images waiting; more are refused with ERR_OVERLOADED. Default 1024. */
  maxQueue: number;
}

export const DEFAULT_BATCHING: BatchingOptions = { maxBatch: 16, maxDelayMs: 0, maxQueue: 1024 };

type Kind = 'encode' | 'classify';

interface Job {
  kind: Kind;
  key: string;
  images: Buffer[];
  opts: Record<string, unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
  enqueued: number;
  solo: boolean;
  settled: boolean;
}

/** How far past the head the queue is scanned for calls to coalesce. */
const SCAN = 256;

export class LocalQueue {
  readonly #model: Model;
  readonly #o: BatchingOptions;
  readonly #stats = new StatsRecorder();
  #pending: Job[] = [];
  #queuedImages = 0;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;
  #idle: Array<() => void> = [];

  constructor(model: Model, options: BatchingOptions) {
    this.#model = model;
    this.#o = options;
  }

  submit(kind: 'encode', images: Buffer[], opts: Record<string, unknown>, signal?: AbortSignal): Promise<Tensor>;
  submit(kind: 'classify', images: Buffer[], opts: Record<string, unknown>, signal?: AbortSignal): Promise<Classification[][]>;
  submit(kind: Kind, images: Buffer[], opts: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
    if (this.#disposed) return Promise.reject(new VitMsnError('ERR_DISPOSED', 'the model has been disposed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const n = images.length;
    if (this.#queuedImages > 0 && this.#queuedImages + n > this.#o.maxQueue) {
      return Promise.reject(new ServeError('ERR_OVERLOADED', `${this.#queuedImages} images are already waiting (maxQueue ${this.#o.maxQueue})`));
    }
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const job: Job = {
        kind, key: `${kind}\0${JSON.stringify(opts)}`, images, opts, signal, enqueued: started, solo: this.#o.maxBatch <= 1, settled: false,
        resolve: (v) => {
          if (job.settled) return;
          job.settled = true;
          signal?.removeEventListener('abort', job.onAbort!);
          this.#stats.latency(performance.now() - started);
          resolve(v);
        },
        reject: (e) => {
          if (job.settled) return;
          job.settled = true;
          signal?.removeEventListener('abort', job.onAbort!);
          reject(e);
        },
      };
      if (signal) {
        job.onAbort = () => {
          const at = this.#pending.indexOf(job);
          if (at >= 0) {
            this.#pending.splice(at, 1);
            this.#queuedImages -= job.images.length;
          }
          // A call already running on the model cannot be stopped: its answer is dropped.
          job.reject(signal.reason);
          this.#pump();
        };
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.#pending.push(job);
      this.#queuedImages += n;
      this.#pump();
    });
  }

  stats(): ServiceStats {
    return this.#stats.snapshot(this.#queuedImages, this.#pending.length);
  }

  /** Resolves once nothing waits or runs; later calls reject with ERR_DISPOSED. */
  drain(): Promise<void> {
    this.#disposed = true;
    if (!this.#running && this.#pending.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  #pump() {
    if (this.#running) return;
    if (this.#pending.length === 0) {
      for (const r of this.#idle.splice(0)) r();
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const first = this.#pending[0];
    const group = [first];
    let n = first.images.length;
    if (!first.solo) {
      for (let i = 1; i < this.#pending.length && i < SCAN && n < this.#o.maxBatch; i++) {
        const j = this.#pending[i];
        if (j.solo || j.key !== first.key || n + j.images.length > this.#o.maxBatch) continue;
        group.push(j);
        n += j.images.length;
      }
      const wait = first.enqueued + this.#o.maxDelayMs - performance.now();
      if (n < this.#o.maxBatch && wait > 0) {
        this.#timer = setTimeout(() => this.#pump(), wait);
        return;
      }
    }
    for (const j of group) this.#pending.splice(this.#pending.indexOf(j), 1);
    this.#queuedImages -= n;
    this.#running = true;
    void this.#run(group).finally(() => {
      this.#running = false;
      this.#pump();
    });
  }

  async #run(group: Job[]) {
    const images = group.length === 1 ? group[0].images : group.flatMap((j) => j.images);
    const opts = { ...group[0].opts, batchSize: Math.min(Math.max(this.#o.maxBatch, 1), 4096) };
    try {
      const out = group[0].kind === 'encode' ? await this.#model.encode(images, opts) : await this.#model.classify(images, opts);
      this.#stats.batch(images.length);
      let at = 0;
      for (const j of group) {
        const k = j.images.length;
        if (group.length === 1) j.resolve(out);
        else if (Array.isArray(out)) j.resolve(out.slice(at, at + k));
        else {
          const D = out.shape[1];
          j.resolve({ data: out.data.slice(at * D, (at + k) * D), shape: [k, D] });
        }
        at += k;
      }
    } catch (e) {
      if (group.length === 1) {
        group[0].reject(e);
        return;
      }
      // One image spoiled the coalesced call: run each call on its own, first in the queue.
      const live = group.filter((j) => !j.settled);
      for (const j of live) j.solo = true;
      this.#pending.unshift(...live);
      this.#queuedImages += live.reduce((s, j) => s + j.images.length, 0);
    }
  }
}
