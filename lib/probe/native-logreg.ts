/**
 * The library's solver: lib/probe/logreg.ts's L-BFGS ported to C++ (native/engine/probe/logreg.h), run on
 * a worker thread so fitting never blocks the event loop. Same objective, same iteration (results
 * agree with the TypeScript reference to the tests' tolerances); float64; deterministic whatever
 * the thread count. logreg.ts stays the reference (and the row-space reduction path).
 */
import { native, type NativeLogRegTask } from '../binding';
import { fromNative } from '../errors';
import type { LogRegFit } from './logreg';

export interface NativeFitOptions {
  /** Gradient tolerance on the mean loss (max |∇f|/N). Default 1e-8. */
  tol?: number;
  /** Iteration limit. Default 10000. */
  maxIter?: number;
  /** Threads for independent fits (0 or absent: all hardware threads). */
  threads?: number;
}

/** One path of fits (X [N, D], labels, the C values; held-out rows to score each C's fit). */
export type PathTask = NativeLogRegTask;

/** Fits per task (one per C, warm-started along Cs), all tasks in one native call. */
export async function fitLogRegPaths(
  tasks: PathTask[],
  opts: NativeFitOptions = {},
): Promise<(LogRegFit & { correct?: number })[][]> {
  for (const t of tasks)
    for (const C of t.Cs)
      if (!(C > 0) || !Number.isFinite(C)) throw new RangeError(`C must be a positive number, got ${C}`);
  try {
    return await native().fitLogRegPaths(tasks, {
      tol: opts.tol ?? 1e-8,
      maxIter: opts.maxIter ?? 10000,
      threads: opts.threads ?? 0,
    });
  } catch (e) {
    throw fromNative(e);
  }
}

/** {@link fitLogRegPath} of logreg.ts, natively and off the event loop. */
export async function fitLogRegPathNative(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  Cs: readonly number[],
  opts: NativeFitOptions = {},
): Promise<LogRegFit[]> {
  return (await fitLogRegPaths([{ X, y, N, D, K, Cs }], opts))[0];
}

/** {@link fitLogReg} of logreg.ts, natively and off the event loop. */
export async function fitLogRegNative(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  opts: NativeFitOptions & { C: number },
): Promise<LogRegFit> {
  return (await fitLogRegPathNative(X, y, N, D, K, [opts.C], opts))[0];
}
