/**
 * Drives one model's CallQueue: cuts a batch, prepares it (decoding, preprocessing), runs it, and
 * prepares the next one while the current one runs when a full batch is already waiting (so
 * decoding overlaps the forward pass without making the next batch smaller than it could be).
 * With `inFlight` 2 (a GPU model) that next full batch also starts running before the current one
 * has finished, so its upload and launches overlap the device's work on the current one and the
 * device does not idle between batches; a batch that is not full still waits for the running ones
 * (calls keep accumulating into it meanwhile). A batch that is not full waits up to maxDelayMs
 * (from its first call's arrival) for more calls, and while it is prepared, calls that arrive
 * meanwhile join it (a batch that can take them): so clients that all come back at once after a
 * batch — a closed loop — make one full batch, not two alternating halves of which one is always
 * already waiting. One loop per model, started by the first call and ended when the queue is empty
 * and no batch runs.
 */
import type { CallQueue, Item } from './call-queue';

/** A prepared batch: running it settles (or fails) its calls; it never throws. */
export interface BatchWork {
  run(): Promise<void>;
  /**
   * Optional: prepares more items into this batch before it runs (calls that queued while it was
   * being prepared); fails the calls of those it cannot serve; never throws.
   */
  join?(items: Item[]): Promise<void>;
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
    /** Most batches running at once (1: each waits for the last; 2: a full batch starts beside it). */
    private readonly inFlight = 1,
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
    const running = new Set<Promise<void>>();
    try {
      for (;;) {
        let work: BatchWork | undefined;
        if (ahead) {
          work = await ahead;
          ahead = undefined;
        } else {
          // A batch that is not full waits for the running ones (calls keep joining it meanwhile).
          while (running.size > 0 && !this.#fullWaiting()) await Promise.race(running);
          const items = await this.#nextBatch();
          if (!items) break;
          work = await this.#prepare(items);
          if (work?.join) await this.#topUp(work, items);
        }
        if (!work) continue;
        if (this.#fullWaiting()) ahead = this.#prepare(this.queue.take(this.limitFor(this.queue.peek()!)));
        const run: Promise<void> = work.run().finally(() => running.delete(run));
        running.add(run);
        // Go on at once only to start a full batch beside this one (and only below inFlight).
        if (running.size >= this.inFlight || !ahead) await Promise.race(running);
      }
    } finally {
      await Promise.all(running);
      this.#running = false;
    }
  }

  /** Whether a full batch is waiting at the head of the queue. */
  #fullWaiting(): boolean {
    const head = this.queue.peek();
    return head !== undefined && this.queue.hasFull(this.limitFor(head));
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

  /** Joins the calls that queued while `work` was prepared, until none is left or the batch is full. */
  async #topUp(work: BatchWork, items: Item[]): Promise<void> {
    const head = items[0];
    for (;;) {
      const more = this.queue.takeJoining(items, this.limitFor(head));
      if (!more.length) return;
      items.push(...more);
      try {
        await work.join!(more);
      } catch (e) {
        for (const it of more) it.call.fail(e);
      }
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
