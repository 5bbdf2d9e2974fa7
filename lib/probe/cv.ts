/**
 * Stratified k-fold cross-validation of the regularisation strength C. Deterministic: the j-th
 * sample of each class (in input order) goes to fold (j + offset_c) mod k, offset_c being the
 * number of samples of the classes before c, so folds are balanced overall and within each class.
 */
import { fitLogRegPaths, type PathTask } from './native-logreg';

/** The default grid: 8 values from 0.01 to 100. */
export const DEFAULT_CS: readonly number[] = [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 100];

export function stratifiedFolds(y: Int32Array, K: number, folds: number): Int32Array {
  const seen = new Int32Array(K);
  const offset = new Int32Array(K);
  const counts = new Int32Array(K);
  for (const c of y) counts[c]++;
  for (let c = 1; c < K; c++) offset[c] = offset[c - 1] + counts[c - 1];
  const fold = new Int32Array(y.length);
  for (let i = 0; i < y.length; i++) {
    const c = y[i];
    fold[i] = (seen[c]++ + offset[c]) % folds;
  }
  return fold;
}

export interface CvResult {
  folds: number;
  /** One entry per C of the grid, in grid order. */
  scores: { C: number; accuracy: number; foldAccuracy: number[] }[];
  /** The C with the best mean held-out accuracy (ties: the smaller C). */
  bestC: number;
}

/** Resolves on the next turn of the event loop (after pending I/O and timers). */
export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function take(X: Float64Array, D: number, rows: number[]): Float64Array {
  const out = new Float64Array(rows.length * D);
  rows.forEach((r, i) => out.set(X.subarray(r * D, r * D + D), i * D));
  return out;
}

/**
 * `transform` maps a fold's training rows to features and returns how to map its held-out rows
 * (for 'msn' the centring mean is the fold's own training mean, as a fresh fit would compute it).
 * All folds × Cs are fitted and scored in one native call, off the event loop, the folds spread
 * over up to `threads` threads (default: all); the result does not depend on the thread count.
 */
export async function crossValidate(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  Cs: readonly number[],
  folds: number,
  transform: (
    Xtr: Float64Array,
    n: number,
  ) => { features: Float64Array; apply(Xte: Float64Array, n: number): Float64Array },
  tol: number,
  threads?: number,
): Promise<CvResult> {
  const fold = stratifiedFolds(y, K, folds);
  const order = Cs.map((C, i) => ({ C, i })).sort((a, b) => a.C - b.C);
  const correct = Cs.map(() => new Array<number>(folds).fill(0));
  const sizes = new Array<number>(folds).fill(0);
  const tasks: PathTask[] = [];
  const taskFold: number[] = [];
  for (let f = 0; f < folds; f++) {
    const tr: number[] = [];
    const te: number[] = [];
    for (let i = 0; i < N; i++) (fold[i] === f ? te : tr).push(i);
    sizes[f] = te.length;
    if (te.length === 0) continue;
    const t = transform(take(X, D, tr), tr.length);
    tasks.push({
      X: t.features,
      y: Int32Array.from(tr, (i) => y[i]),
      N: tr.length,
      D,
      K,
      Cs: order.map((o) => o.C),
      Xtest: t.apply(take(X, D, te), te.length),
      ytest: Int32Array.from(te, (i) => y[i]),
    });
    taskFold.push(f);
    await yieldToLoop(); // each fold's feature transform is a few ms of JS: let the event loop turn between them
  }
  const results = await fitLogRegPaths(tasks, { tol, threads });
  results.forEach((fits, t) =>
    fits.forEach((fit, j) => {
      correct[order[j].i][taskFold[t]] = fit.correct ?? 0;
    }),
  );
  const total = sizes.reduce((a, b) => a + b, 0);
  const scores = Cs.map((C, i) => ({
    C,
    accuracy: correct[i].reduce((a, b) => a + b, 0) / total,
    foldAccuracy: correct[i].map((c, f) => (sizes[f] ? c / sizes[f] : NaN)),
  }));
  let best = scores[0];
  for (const s of scores) if (s.accuracy > best.accuracy || (s.accuracy === best.accuracy && s.C < best.C)) best = s;
  return { folds, scores, bestC: best.C };
}
