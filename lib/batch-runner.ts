/**
 * Drives one model's CallQueue: cuts a batch, prepares it (decoding, preprocessing), runs it, and
 * prepares the next one while the current one runs when a full batch is already waiting (so
 * decoding overlaps the forward pass without making the next batch smaller than it could be).
 * A batch that is not full waits up to maxDelayMs (from its first call's arrival) for more calls.
 * One loop per model, started by the first call and ended when the queue is empty.
 */
import type { CallQueue, Item } from './call-queue';

/** A prepared batch: running it settles (or fails) its calls; it never throws. */
export interface BatchWork {
  run(): Promise<void>;
}

export class BatchRunner {
  #running = false;
  #idle: Array<() => void> = [];

  constructor(
    private readonly queue: CallQueue,
    /** Most images a batch starting with `head` may have. */
    private readonly limitFor: (head: Item) => number,
    /** Prepares a batch; fails the calls it cannot serve; undefined when nothing is left to run. */
    private readonly prepare: (items: Item[]) => Promise<BatchWork | undefined>,
  ) {}

  /** Starts the loop if it is not running (the first part runs synchronously, up to its first wait). */
  kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop().then(
      () => (this.queue.empty ? this.#settleIdle() : this.kick()),
      (e) => {
        // Not expected (prepare and run fail their calls themselves): fail what waits rather than hang.
        for (let it = this.queue.peek(); it; it = this.queue.peek()) it.call.fail(e);
        this.#settleIdle();
      },
    );
  }

  /** Resolves once the queue is empty and no batch runs. */
  whenIdle(): Promise<void> {
    if (!this.#running && this.queue.empty) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #loop(): Promise<void> {
    let ahead: Promise<BatchWork | undefined> | undefined;
    try {
      for (;;) {
        let work: BatchWork | undefined;
        if (ahead) {
          work = await ahead;
          ahead = undefined;
        } else {
          const items = await this.#nextBatch();
          if (!items) break;
          work = await this.#prepare(items);
        }
        if (!work) continue;
        const next = this.queue.peek();
        if (next && this.queue.hasFull(this.limitFor(next)))
          ahead = this.#prepare(this.queue.take(this.limitFor(next)));
        await work.run();
      }
    } finally {
      this.#running = false;
    }
  }

  #settleIdle(): void {
    if (this.#running || !this.queue.empty) return; // a new loop has started meanwhile: it settles them
    for (const f of this.#idle.splice(0)) f();
  }

  /** prepare(), and a batch whose preparation failed unexpectedly fails its calls (none is left hanging). */
  async #prepare(items: Item[]): Promise<BatchWork | undefined> {
    try {
      return await this.prepare(items);
    } catch (e) {
      for (const it of items) it.call.fail(e);
      return undefined;
    }
  }

  /** The next batch's items, after waiting up to maxDelayMs for it to fill; undefined when the queue is empty. */
  async #nextBatch(): Promise<Item[] | undefined> {
    const { enabled, maxDelayMs } = this.queue.batching;
    for (;;) {
      const head = this.queue.peek();
      if (!head) return undefined;
      const limit = this.limitFor(head);
      const wait = head.call.enqueued + maxDelayMs - performance.now();
      if (!enabled || wait <= 0 || this.queue.hasFull(limit)) return this.queue.take(limit);
      await this.queue.waitForMore(wait);
    }
  }
}
