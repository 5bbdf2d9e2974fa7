/**
 * Stratified k-fold cross-validation of the regularisation strength C. Deterministic: the j-th
 * sample of each class (in input order) goes to fold (j + offset_c) mod k, offset_c being the
 * number of samples of the classes before c, so folds are balanced overall and within each class.
 */
import { decision, fitLogRegPath } from './logreg';

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

function take(X: Float64Array, D: number, rows: number[]): Float64Array {
  const out = new Float64Array(rows.length * D);
  rows.forEach((r, i) => out.set(X.subarray(r * D, r * D + D), i * D));
  return out;
}

/**
 * `transform` maps a fold's training rows to features and returns how to map its held-out rows
 * (for 'msn' the centring mean is the fold's own training mean, as a fresh fit would compute it).
 */
export function crossValidate(
  X: Float64Array, y: Int32Array, N: number, D: number, K: number, Cs: readonly number[], folds: number,
  transform: (Xtr: Float64Array, n: number) => { features: Float64Array; apply(Xte: Float64Array, n: number): Float64Array },
  tol: number,
): CvResult {
  const fold = stratifiedFolds(y, K, folds);
  const order = Cs.map((C, i) => ({ C, i })).sort((a, b) => a.C - b.C);
  const correct = Cs.map(() => new Array<number>(folds).fill(0));
  const sizes = new Array<number>(folds).fill(0);
  for (let f = 0; f < folds; f++) {
    const tr: number[] = [];
    const te: number[] = [];
    for (let i = 0; i < N; i++) (fold[i] === f ? te : tr).push(i);
    sizes[f] = te.length;
    if (te.length === 0) continue;
    const t = transform(take(X, D, tr), tr.length);
    const Xte = t.apply(take(X, D, te), te.length);
    const ytr = Int32Array.from(tr, (i) => y[i]);
    const fits = fitLogRegPath(t.features, ytr, tr.length, D, K, order.map((o) => o.C), { tol });
    fits.forEach((fit, j) => {
      const Z = decision(Xte, te.length, D, fit.W, fit.b, K);
      let ok = 0;
      for (let i = 0; i < te.length; i++) {
        let best = 0;
        for (let k = 1; k < K; k++) if (Z[i * K + k] > Z[i * K + best]) best = k;
        if (best === y[te[i]]) ok++;
      }
      correct[order[j].i][f] = ok;
    });
  }
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
