// The host pooling and softmax of native/engine/model/pooling.cc written again in JS (double sums in
// the same order, float32 results): what encode() and classify() must equal, applied to forward()'s
// outputs (test/embed-path.test.ts bit for bit on the CPU, test/gpu.test.ts within each dtype's bound).

/** pooling.cc's pool() in JS: double sums in the same order, float32 results (Math.fround). */
export function hostPool(tokens: Float32Array, [B, T, D]: number[], mean: boolean, normalize: boolean): Float32Array {
  const out = new Float32Array(B * D);
  for (let b = 0; b < B; b++) {
    const x = tokens.subarray(b * T * D, (b + 1) * T * D);
    const y = out.subarray(b * D, (b + 1) * D);
    for (let d = 0; d < D; d++) {
      if (!mean) y[d] = x[d];
      else {
        let s = 0;
        for (let t = 1; t < T; t++) s += x[t * D + d];
        y[d] = s / (T - 1);
      }
    }
    if (normalize) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += y[d] * y[d];
      const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
      for (let d = 0; d < D; d++) y[d] = y[d] * inv;
    }
  }
  return out;
}

/** softmax_rows of pooling.cc in JS (max-subtracted, double sums, float32 results). */
export function hostSoftmax(logits: Float32Array, B: number, n: number): Float32Array {
  const out = new Float32Array(B * n);
  for (let b = 0; b < B; b++) {
    const x = logits.subarray(b * n, (b + 1) * n);
    const m = Math.max(...x);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(x[i] - m);
    for (let i = 0; i < n; i++) out[b * n + i] = Math.exp(x[i] - m) / sum;
  }
  return out;
}
