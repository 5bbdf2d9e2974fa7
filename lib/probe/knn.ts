/**
 * k-nearest-neighbour classification as in DINO / MSN's k-NN evaluation: cosine similarity between
 * L2-normalised embeddings, the k most similar bank rows (ties: the lower bank index first), each
 * voting exp(sim / T) for its class. Scores are the votes divided by their sum. All in float64.
 */

export function l2NormalizeRows(X: Float64Array | Float32Array, n: number, D: number): Float64Array {
  const out = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += X[i * D + d] * X[i * D + d];
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let d = 0; d < D; d++) out[i * D + d] = X[i * D + d] * inv;
  }
  return out;
}

/** Votes [n, K] of each query row against a normalised bank [N, D] with labels in [0, K). */
export function knnVotes(
  bank: Float64Array,
  bankLabels: Int32Array,
  N: number,
  D: number,
  K: number,
  queries: Float64Array | Float32Array,
  n: number,
  k: number,
  temperature: number,
): Float64Array {
  const q = l2NormalizeRows(queries, n, D);
  const votes = new Float64Array(n * K);
  const kk = Math.min(k, N);
  const sims = new Float64Array(N);
  const idx = new Int32Array(N);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += q[i * D + d] * bank[j * D + d];
      sims[j] = s;
      idx[j] = j;
    }
    // Partial selection of the top kk (stable: lower index wins ties).
    for (let a = 0; a < kk; a++) {
      let best = a;
      for (let b = a + 1; b < N; b++) {
        const sb = sims[idx[b]];
        const sa = sims[idx[best]];
        if (sb > sa || (sb === sa && idx[b] < idx[best])) best = b;
      }
      const t = idx[a];
      idx[a] = idx[best];
      idx[best] = t;
      votes[i * K + bankLabels[idx[a]]] += Math.exp(sims[idx[a]] / temperature);
    }
  }
  return votes;
}
