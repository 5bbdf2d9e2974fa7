// lib/batch-runner.ts on its own, with batches whose runs finish when the test says: how many run
// at once (one on the CPU; on a GPU a full batch starts beside the running one, a partial batch
// never does), that every call settles, and that whenIdle waits for every running batch.
import { describe, expect, it } from 'vitest';
import { BatchRunner, type BatchWork } from '../lib/batch-runner';
import { Call, CallQueue, type Item } from '../lib/call-queue';

/** A harness: calls of one image each; each prepared batch's run waits until released. */
function harness(inFlight: number, maxBatch = 4) {
  const queue = new CallQueue({ enabled: true, maxBatch, maxDelayMs: 1, maxQueue: 1000 });
  const runs: Array<{ size: number; release: () => void }> = [];
  let running = 0;
  let maxRunning = 0;
  const prepare = async (items: Item[]): Promise<BatchWork> => ({
    run: () =>
      new Promise<void>((resolve) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs.push({
          size: items.length,
          release: () => {
            running--;
            for (const it of items) it.call.succeed(it.index);
            resolve();
          },
        });
      }),
  });
  const runner = new BatchRunner(queue, () => maxBatch, prepare, inFlight);
  const submit = (n: number) => {
    const calls: Call[] = [];
    for (let i = 0; i < n; i++) {
      const c = new Call(Number.POSITIVE_INFINITY);
      queue.admit(c, [{ call: c, index: i, weight: 1, key: 'k' }]);
      calls.push(c);
    }
    runner.kick();
    return calls;
  };
  const tick = () => new Promise((r) => setTimeout(r, 5));
  return { runner, runs, submit, tick, stats: () => ({ running, maxRunning }) };
}

describe('BatchRunner', () => {
  it('one batch at a time with inFlight 1, whatever is waiting', async () => {
    const h = harness(1);
    const calls = h.submit(12); // three full batches
    await h.tick();
    expect(h.runs.length).toBe(1);
    for (let k = 0; k < 3; k++) {
      await h.tick();
      expect(h.stats().running).toBe(1);
      h.runs[k].release();
    }
    await Promise.all(calls.map((c) => c.promise));
    expect(h.stats().maxRunning).toBe(1);
    expect(h.runs.map((r) => r.size)).toEqual([4, 4, 4]);
  });

  it('with inFlight 2 a full batch starts beside the running one, never a third', async () => {
    const h = harness(2);
    const calls = h.submit(12);
    await h.tick();
    expect(h.stats().running).toBe(2); // batches 1 and 2 run together; 3 waits
    expect(h.runs.length).toBe(2);
    h.runs[0].release();
    await h.tick();
    expect(h.runs.length).toBe(3); // the third starts once one has finished
    expect(h.stats().running).toBe(2);
    h.runs[1].release();
    h.runs[2].release();
    await Promise.all(calls.map((c) => c.promise));
    expect(h.stats().maxRunning).toBe(2);
    expect(h.runs.map((r) => r.size)).toEqual([4, 4, 4]);
  });

  it('with inFlight 2 a partial batch waits for the running one, and keeps filling meanwhile', async () => {
    const h = harness(2);
    const first = h.submit(5); // a full batch runs; the fifth call is a partial batch: it must not start beside it
    await h.tick();
    expect(h.runs.length).toBe(1);
    const more = [...h.submit(1), ...h.submit(1)]; // still joining the waiting batch
    await h.tick();
    expect(h.runs.length).toBe(1);
    h.runs[0].release();
    await h.tick();
    expect(h.runs.length).toBe(2);
    expect(h.runs[1].size).toBe(3);
    h.runs[1].release();
    await Promise.all([...first, ...more].map((c) => c.promise));
    expect(h.stats().maxRunning).toBe(1);
  });

  it('whenIdle resolves only after every running batch has finished', async () => {
    const h = harness(2);
    const calls = h.submit(8);
    await h.tick();
    let idle = false;
    void h.runner.whenIdle().then(() => (idle = true));
    h.runs[1].release(); // the second finishes first
    await h.tick();
    expect(idle).toBe(false);
    h.runs[0].release();
    await Promise.all(calls.map((c) => c.promise));
    await h.tick();
    expect(idle).toBe(true);
  });
});
