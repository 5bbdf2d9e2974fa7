/**
 * Feature transforms of the probe. 'msn' is MSN's logistic_eval preprocessing: centre with the
 * training mean, then L2-normalise each row (a zero row stays zero). 'plain' leaves features as is.
 */

export interface FeatureTransform {
  /** The transformed training features [N, D]. */
  features: Float64Array;
  /** The training mean [D]. */
  mean: Float64Array;
  /** The same transform on other rows [n, D]. */
  apply(X: Float64Array | Float32Array, n: number): Float64Array;
}

export function centreNormalize(X: Float64Array | Float32Array, n: number, mean: Float64Array): Float64Array {
  const D = mean.length;
  const out = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let d = 0; d < D; d++) {
      const v = X[i * D + d] - mean[d];
      out[i * D + d] = v;
      ss += v * v;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let d = 0; d < D; d++) out[i * D + d] *= inv;
  }
  return out;
}

export function msnTransform(X: Float64Array | Float32Array, N: number, D: number): FeatureTransform {
  const mean = new Float64Array(D);
  for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) mean[d] += X[i * D + d];
  for (let d = 0; d < D; d++) mean[d] /= N;
  return { features: centreNormalize(X, N, mean), mean, apply: (Y, n) => centreNormalize(Y, n, mean) };
}
