/**
 * Image decoding (sharp) runs on libuv's thread pool, which has 4 threads unless UV_THREADPOOL_SIZE
 * says otherwise, read once when the pool starts (its first use). So that decoding a batch can use
 * every core of a bigger machine, importing vitmsn sets it to the number of cores (at least 4) when
 * the user has not set it. Only the main thread's environment counts, and only before the pool has
 * started (importing vitmsn before any asynchronous fs, dns, crypto or zlib work): otherwise this
 * changes nothing. A value the user sets (any value) is left as it is.
 */
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';

/** libuv's own ceiling for the pool. */
const LIBUV_MAX_THREADS = 1024;

/** The size vitmsn asks for: one thread per core, never fewer than libuv's default of 4. */
export function wantedThreadpoolSize(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.min(LIBUV_MAX_THREADS, Math.max(4, cores));
}

if (isMainThread && !process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(wantedThreadpoolSize());
}
