// FIFOs for the "a special file never hangs a read" tests (POSIX only).
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export const HAS_MKFIFO = process.platform !== 'win32';

export function makeFifo(file: string): string {
  execFileSync('mkfifo', [file], { timeout: 5000 });
  return file;
}

/**
 * Settles `p`, or after `ms` frees a reader stuck on `fifo` (opening it read-write never blocks;
 * closing it gives the reader end-of-file) and throws, so a regression fails the test instead of
 * leaving a libuv thread blocked forever.
 */
export async function settleWithin<T>(p: Promise<T>, ms: number, fifo: string): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  const settled = p.then(
    (value): PromiseSettledResult<T> => ({ status: 'fulfilled', value }),
    (reason): PromiseSettledResult<T> => ({ status: 'rejected', reason }),
  );
  const first = await Promise.race([settled, timeout]);
  clearTimeout(timer);
  if (first !== 'timeout') return first;
  closeSync(openSync(fifo, 'r+'));
  await settled;
  throw new Error(`did not settle within ${ms} ms (blocked on the FIFO ${fifo})`);
}
