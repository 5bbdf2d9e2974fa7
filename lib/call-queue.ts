/**
 * The queue of one model's calls, and how batches are cut from it (dynamic batching).
 *
 * Every forward() / encode() / classify() call becomes items (an image each, or a whole forward
 * batch) in one FIFO. A batch is the longest run of items at the head that share the head's key
 * (same kind of work and options, so one native call can run them), up to a size limit: the
 * model's `maxBatch`, the memory that is left, and the `batchSize` of every call in it. Taking
 * only a contiguous run keeps batches in call order; concurrent calls with the same options, the
 * case that matters, sit next to each other anyway. With batching off, a key names its call, so
 * only a call's own items share a batch (the behaviour before dynamic batching).
 *
 * Cancelled or failed calls leave at once: their items are skipped and no longer counted.
 * Admission is bounded by `maxQueue` images (`ERR_OVERLOADED` past it), and items hold what their
 * call was given (a path, a copy of the bytes), never decoded pixels: those are made when the
 * batch is formed.
 */
import { VitMsnError } from './errors';

/** Dynamic batching of a model's concurrent calls (`loadModel(…, { batching })`). */
export interface BatchingOptions {
  /** Most images in one forward pass. Default: 8 on the CPU (measured: bench/batching.mjs), 128 on a GPU. */
  maxBatch?: number;
  /** How long a batch that is not full waits for more calls while the model is idle, in ms. Default 2 (CPU), 1 (GPU). */
  maxDelayMs?: number;
  /** Most images waiting (not yet in a batch); a call past it rejects with ERR_OVERLOADED. Default 16384. */
  maxQueue?: number;
}

export interface ResolvedBatching {
  enabled: boolean;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
}

/** One caller's work. Subclasses hold its inputs and assemble its result. */
export class Call {
  private static nextId = 1;
  readonly id = Call.nextId++;
  readonly enqueued = performance.now();
  settled = false;
  /** Images and items of this call still waiting in the queue. */
  queuedWeight = 0;
  queuedItems = 0;
  #resolve: (v: unknown) => void = () => undefined;
  #reject: (e: unknown) => void = () => undefined;
  #onSettle: Array<() => void> = [];
  readonly promise: Promise<unknown>;

  /** `cap`: the most images this call lets one batch hold (its batchSize). */
  constructor(readonly cap: number) {
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }
  onSettle(f: () => void) {
    this.#onSettle.push(f);
  }
  succeed(value: unknown) {
    if (this.settled) return;
    this.settled = true;
    this.#resolve(value);
    for (const f of this.#onSettle) f();
  }
  fail(error: unknown) {
    if (this.settled) return;
    this.settled = true;
    this.#reject(error);
    for (const f of this.#onSettle) f();
  }
}

export interface Item<C extends Call = Call> {
  call: C;
  /** Position of this item's first image in its call. */
  index: number;
  /** Images in this item (1 for an image; B for a forward call). */
  weight: number;
  /** Items with equal keys can run in one native call. */
  key: string;
}

export interface QueueStats {
  /** Images waiting, not yet in a batch. */
  queuedImages: number;
  /** Calls with images still waiting. */
  queuedCalls: number;
  maxQueue: number;
}

export class CallQueue {
  #items: Item[] = [];
  #head = 0;
  #queuedImages = 0;
  #queuedCalls = 0;
  #skipped = 0; // items of settled calls still in #items
  #wake: Array<() => void> = [];

  constructor(readonly batching: ResolvedBatching) {}

  /** Queues a call's items, or throws ERR_OVERLOADED when they would pass maxQueue. */
  admit(call: Call, items: Item[]): void {
    const weight = items.reduce((n, i) => n + i.weight, 0);
    // A call larger than the whole queue still runs when the queue is empty (it cannot wait for room).
    if (this.#queuedImages > 0 && this.#queuedImages + weight > this.batching.maxQueue) {
      throw new VitMsnError(
        'ERR_OVERLOADED',
        `the model's queue is full (${this.#queuedImages} images waiting, maxQueue ${this.batching.maxQueue}); retry later`,
      );
    }
    for (const it of items) this.#items.push(it);
    call.queuedWeight = weight;
    call.queuedItems = items.length;
    this.#queuedImages += weight;
    this.#queuedCalls++;
    call.onSettle(() => this.#withdraw(call));
    for (const w of this.#wake.splice(0)) w();
  }

  get empty(): boolean {
    return this.#queuedImages === 0;
  }

  stats(): QueueStats {
    return { queuedImages: this.#queuedImages, queuedCalls: this.#queuedCalls, maxQueue: this.batching.maxQueue };
  }

  /** The head item that will start the next batch (settled calls skipped), if any. */
  peek(): Item | undefined {
    this.#dropSettledHead();
    return this.#items[this.#head];
  }

  /** Whether the items queued now fill a batch of `limit` images starting at the head. */
  hasFull(limit: number): boolean {
    return this.#run(limit, false).weight >= Math.min(limit, this.peek()?.call.cap ?? limit);
  }

  /** Removes and returns the next batch: at most `limit` images (one item at least). */
  take(limit: number): Item[] {
    const { items } = this.#run(limit, true);
    return items;
  }

  /**
   * More items for a batch already cut (`batch`, being prepared): those at the head of the queue with
   * its key, as many as fit in `limit` images and every call's cap with the batch's own.
   */
  takeJoining(batch: readonly Item[], limit: number): Item[] {
    if (!batch.length) return [];
    let weight = batch.reduce((n, it) => n + it.weight, 0);
    let cap = batch.reduce((c, it) => Math.min(c, it.call.cap), limit);
    const key = batch[0].key;
    const items: Item[] = [];
    this.#dropSettledHead();
    let i = this.#head;
    for (; i < this.#items.length && weight < cap; i++) {
      const it = this.#items[i];
      if (it.call.settled) continue;
      if (it.key !== key) break;
      const c = Math.min(cap, it.call.cap);
      if (weight + it.weight > c) break;
      cap = c;
      items.push(it);
      weight += it.weight;
    }
    this.#remove(i, items);
    return items;
  }

  /** Resolves when an item is admitted, or after `ms`. */
  waitForMore(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.#wake.push(done);
    });
  }

  #run(limit: number, remove: boolean): { items: Item[]; weight: number } {
    const first = this.peek();
    if (!first) return { items: [], weight: 0 };
    const items: Item[] = [];
    let weight = 0;
    let cap = Math.min(limit, first.call.cap);
    let i = this.#head;
    for (; i < this.#items.length; i++) {
      const it = this.#items[i];
      if (it.call.settled) continue;
      if (it.key !== first.key) break;
      const c = Math.min(cap, it.call.cap);
      if (items.length > 0 && weight + it.weight > c) break;
      cap = c;
      items.push(it);
      weight += it.weight;
      if (weight >= cap) {
        i++;
        break;
      }
    }
    if (remove) this.#remove(i, items);
    return { items, weight };
  }

  /** Removes the queue's entries from the head up to index `end` (exclusive): `items`, and settled ones. */
  #remove(end: number, items: readonly Item[]) {
    // Items of settled calls inside the run go too; the rest of the queue keeps its order.
    for (let j = this.#head; j < end; j++) if (this.#items[j].call.settled) this.#skipped--;
    this.#items.splice(this.#head, end - this.#head);
    for (const it of items) {
      it.call.queuedWeight -= it.weight;
      it.call.queuedItems--;
      this.#queuedImages -= it.weight;
      if (it.call.queuedWeight === 0) this.#queuedCalls--;
    }
    this.#compact();
  }

  #withdraw(call: Call) {
    if (call.queuedWeight === 0) return;
    this.#queuedImages -= call.queuedWeight;
    this.#queuedCalls--;
    // Its items stay in the array until passed or compacted; count them as skipped.
    this.#skipped += call.queuedItems;
    call.queuedWeight = 0;
    call.queuedItems = 0;
    this.#compact();
  }

  #dropSettledHead() {
    while (this.#head < this.#items.length && this.#items[this.#head].call.settled) {
      this.#head++;
      this.#skipped--;
    }
    this.#compact();
  }

  // Keeps the array from holding many dead entries (a head index that walked far, cancelled items).
  #compact() {
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    if (this.#skipped > 1024 && this.#skipped * 2 > this.#items.length - this.#head) {
      this.#items = this.#items.slice(this.#head).filter((it) => !it.call.settled);
      this.#head = 0;
      this.#skipped = 0;
    }
  }
}
