/**
 * Low-shot classification on frozen ViT-MSN embeddings: a linear probe (L2-regularised multinomial
 * logistic regression, scikit-learn's objective) or k-NN, from labelled embeddings.
 *
 * @example
 * const set = await embedImages(model, images, labels, { pooling: 'cls-prenorm' });
 * const head = await fitClassifier(set, { protocol: 'msn' });
 * head.predict(await model.encode(more, { pooling: head.pooling }), { topK: 1 });
 */
import type { Pooling } from '../encode';
import { crossValidate, DEFAULT_CS, yieldToLoop, type CvResult } from './cv';
import { checkLabelled, type LabelledEmbeddings } from './data';
import { msnTransform } from './features';
import { l2NormalizeRows } from './knn';
import { fitLogRegNative } from './native-logreg';
import { KnnHead, LinearHead, type Protocol } from './head';
import { checkOptions, integer, invalid, oneOf, positiveNumber } from '../check';

export * from './data';
export { LinearHead, KnnHead, loadHead, saveClassificationCheckpoint, type Head, type Protocol } from './head';
export { DEFAULT_CS, stratifiedFolds, type CvResult } from './cv';
export { fitLogReg, fitLogRegPath, type LogRegFit, type LogRegOptions } from './logreg';
export {
  fitLogRegNative,
  fitLogRegPathNative,
  fitLogRegPaths,
  type NativeFitOptions,
  type PathTask,
} from './native-logreg';

export interface FitClassifierOptions {
  /** 'msn' (default): centre with the training mean, L2-normalise, C by stratified k-fold CV.
   * 'plain': the features as they are (use pooling 'cls': the head is then a Linear layer on
   * what ViTMSNForImageClassification's classifier reads); C by CV too unless `C` is given. */
  protocol?: Protocol;
  /** Fixed C (no cross-validation). */
  C?: number;
  /** The CV grid. Default {@link DEFAULT_CS}: 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 100. */
  Cs?: readonly number[];
  /** CV folds (default 5; at most the smallest class's size; with one image in some class no CV
   * is possible and C = 1 unless given). */
  folds?: number;
  /** Gradient tolerance of the final fit (max |∇f|/N; default 1e-8) and of the CV fits (default 1e-4, sklearn's default). */
  tol?: number;
  cvTol?: number;
  /** Called once CV is done. */
  onCv?: (cv: CvResult) => void;
  /** Threads for the CV folds (independent fits; default: all hardware threads). The result does not depend on it. */
  threads?: number;
}

const KEYS = ['protocol', 'C', 'Cs', 'folds', 'tol', 'cvTol', 'onCv', 'threads'];

/**
 * Fits a linear probe on labelled embeddings. Asynchronous: the L-BFGS fits run natively on a worker
 * thread (all CV folds × Cs in one call, the folds in parallel), so the event loop keeps turning;
 * ~0.8 s for 500 × 768 with 5-fold CV over 8 C on 2 cores (bench/probe.mjs). Input errors reject the promise.
 */
export async function fitClassifier(set: LabelledEmbeddings, options: FitClassifierOptions = {}): Promise<LinearHead> {
  checkOptions(options, KEYS, 'fitClassifier');
  const protocol = oneOf(options.protocol, 'protocol', ['msn', 'plain'] as const, 'msn');
  const { classes, y, N, D } = checkLabelled(set);
  const K = classes.length;
  const Cs = options.Cs ?? DEFAULT_CS;
  if (!Array.isArray(Cs) || Cs.length === 0 || !Cs.every((c) => typeof c === 'number' && c > 0 && Number.isFinite(c)))
    invalid('Cs must be a non-empty array of positive numbers');
  if (options.C !== undefined) positiveNumber(options.C, 'C');
  const folds = integer(options.folds, 'folds', 2, Number.MAX_SAFE_INTEGER, 5);
  // 0: all hardware threads.
  const threads = integer(options.threads, 'threads', 0, Number.MAX_SAFE_INTEGER, 0);
  const counts = new Int32Array(K);
  for (const c of y) counts[c]++;
  const minCount = Math.min(...counts);
  await yieldToLoop(); // checkLabelled read every value: let the event loop turn before more JS work
  const X = set.data instanceof Float64Array ? set.data : Float64Array.from(set.data);
  const transform =
    protocol === 'msn'
      ? (Xtr: Float64Array, n: number) => msnTransform(Xtr, n, D)
      : (Xtr: Float64Array) => ({ features: Xtr, mean: undefined, apply: (Xte: Float64Array) => Xte });
  let C = options.C;
  let cv: CvResult | undefined;
  if (C === undefined) {
    const k = Math.min(folds, minCount);
    if (k >= 2) {
      cv = await crossValidate(X, y, N, D, K, Cs, k, transform, options.cvTol ?? 1e-4, threads);
      options.onCv?.(cv);
      C = cv.bestC;
    } else C = 1;
  }
  await yieldToLoop();
  const t = transform(X, N);
  const fit = await fitLogRegNative(t.features, y, N, D, K, { C, tol: options.tol ?? 1e-8 });
  return new LinearHead(
    classes,
    D,
    set.pooling ?? (protocol === 'msn' ? 'cls-prenorm' : 'cls'),
    protocol,
    fit.W,
    fit.b,
    t.mean,
    C,
    cv,
    { iterations: fit.iterations, converged: fit.converged, objective: fit.objective },
  );
}

/** A k-NN classifier (cosine similarity, k neighbours, votes exp(sim/T); defaults k = 20, T = 0.07 as DINO). */
export function fitKnn(set: LabelledEmbeddings, options: { k?: number; temperature?: number } = {}): KnnHead {
  const { classes, y, N, D } = checkLabelled(set, 1);
  checkOptions(options, ['k', 'temperature'], 'fitKnn');
  const k = integer(options.k, 'k', 1, Number.MAX_SAFE_INTEGER, 20);
  const T = positiveNumber(options.temperature, 'temperature', 0.07);
  return new KnnHead(classes, D, (set.pooling ?? 'cls') as Pooling, l2NormalizeRows(set.data, N, D), y, k, T);
}
