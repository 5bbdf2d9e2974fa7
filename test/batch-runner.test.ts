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

// Calls that queue while a batch is prepared (decoded) join it: a closed loop of clients that all
// come back at once after a batch then makes one full batch, not two alternating halves.
describe('BatchRunner: joining a batch while it is prepared', () => {
  /** Preparing a batch (and each join) waits until the test releases it; batches run at once. */
  function joining(maxBatch: number) {
    const queue = new CallQueue({ enabled: true, maxBatch, maxDelayMs: 0, maxQueue: 1000 });
    const pending: Array<() => void> = [];
    const gate = () => new Promise<void>((r) => pending.push(r));
    const batches: Item[][] = [];
    const prepare = async (items: Item[]): Promise<BatchWork> => {
      const batch = [...items];
      await gate();
      return {
        join: async (more) => {
          await gate();
          for (const it of more) if (it.index < 0) it.call.fail(new Error('bad image'));
          batch.push(...more.filter((it) => it.index >= 0));
        },
        run: async () => {
          batches.push(batch);
          for (const it of batch) it.call.succeed(it.index);
        },
      };
    };
    const runner = new BatchRunner(queue, () => maxBatch, prepare, 1);
    const submit = (n: number, key = 'k', index = 0) => {
      const calls: Call[] = [];
      for (let i = 0; i < n; i++) {
        const c = new Call(Number.POSITIVE_INFINITY);
        queue.admit(c, [{ call: c, index, weight: 1, key }]);
        calls.push(c);
      }
      runner.kick();
      return calls;
    };
    const release = () => pending.splice(0).forEach((r) => r());
    const tick = () => new Promise((r) => setTimeout(r, 5));
    return { queue, batches, submit, release, tick };
  }

  it('calls queued during the preparation join the batch up to maxBatch; the rest make the next', async () => {
    const h = joining(8);
    const calls = h.submit(3);
    await h.tick(); // the batch of 3 is being prepared
    calls.push(...h.submit(7)); // 5 of these fit
    h.release(); // preparation done: the 5 join
    await h.tick();
    h.release(); // their preparation done: the batch (8) runs, the next (2) is cut
    await h.tick();
    h.release();
    await Promise.all(calls.map((c) => c.promise));
    expect(h.batches.map((b) => b.length)).toEqual([8, 2]);
  });

  it('calls of another key do not join, and keep their place', async () => {
    const h = joining(8);
    const a = h.submit(2, 'a');
    await h.tick();
    const b = h.submit(2, 'b');
    const a2 = h.submit(2, 'a'); // behind b: joining stops at the first other key
    h.release();
    for (let i = 0; i < 6; i++) (await h.tick(), h.release());
    await Promise.all([...a, ...b, ...a2].map((c) => c.promise));
    expect(h.batches.map((x) => x.map((it) => it.key).join(''))).toEqual(['aa', 'bb', 'aa']);
  });

  it('a joined call that cannot be prepared fails alone; the batch still runs', async () => {
    const h = joining(8);
    const ok = h.submit(2);
    await h.tick();
    const [bad] = h.submit(1, 'k', -1);
    h.release();
    await h.tick();
    h.release();
    await expect(bad.promise).rejects.toThrow('bad image');
    await Promise.all(ok.map((c) => c.promise));
    expect(h.batches.map((x) => x.length)).toEqual([2]);
  });
});
