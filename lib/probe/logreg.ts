/**
 * L2-regularised multinomial logistic regression, scikit-learn's objective exactly:
 *
 *   f(W, b) = Σ_i [ logsumexp_k(z_ik) − z_{i,y_i} ] + 1/(2C)·||W||²,   z_ik = x_i·w_k + b_k
 *
 * W is [K, D] (one row per class: the over-parameterised softmax sklearn's multinomial lbfgs uses,
 * not K−1 rows), the intercept b is not penalised. Minimised by L-BFGS (10 pairs) from zero with a
 * backtracking Armijo line search, all sums in float64; deterministic (no randomness, fixed loop
 * order). Starting at zero keeps Σ_k b_k = 0 (every gradient's intercept part sums to zero), as in
 * sklearn; the result is re-centred to remove rounding drift.
 *
 * Stops when max |∇f| ≤ tol·N (the gradient of the mean loss f/N is below `tol`), or when f stops
 * moving in float64 (no acceptable step, or 20 steps in a row that lower f by less than 4e-16·|f|);
 * then `converged` says whether the gradient test holds.
 *
 * When N < D the problem is solved in the row space of X (the optimum's W lies there: W = −C·(P−Y)ᵀX):
 * X = Z·Qᵀ with Q [D, r] orthonormal, from a pivoted Cholesky factor of the Gram matrix XXᵀ; the
 * objective of W = A·Qᵀ equals the r-dimensional problem's, so the optimum is the same, r ≤ N.
 */

export interface LogRegOptions {
  /** Inverse regularisation strength (sklearn's C), > 0. */
  C: number;
  /** Gradient tolerance on the mean loss (max |∇f|/N). Default 1e-8. */
  tol?: number;
  /** Iteration limit. Default 10000. */
  maxIter?: number;
  /** Warm start (same K, D). */
  init?: { W: Float64Array; b: Float64Array };
  /** Use the row-space reduction when N < D (default false: on 2 cores it only pays off for many iterations). */
  reduce?: boolean;
}

export interface LogRegFit {
  /** [K, D] row-major. */
  W: Float64Array;
  /** [K]. */
  b: Float64Array;
  /** f(W, b), the sum form above. */
  objective: number;
  iterations: number;
  converged: boolean;
  /** max |∇f| / N at the result. */
  gradMaxAbs: number;
}

/** f and its gradient (into gW [K·D], gb [K]); P is scratch [N·K]. */
function lossGrad(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  W: Float64Array,
  b: Float64Array,
  invC: number,
  gW: Float64Array,
  gb: Float64Array,
  P: Float64Array,
): number {
  let f = 0;
  for (let i = 0; i < N; i++) {
    const xo = i * D;
    const po = i * K;
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      const wo = k * D;
      // Four partial sums (faster in V8; a fixed order, so still deterministic).
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0;
      let d = 0;
      for (; d + 3 < D; d += 4) {
        s0 += X[xo + d] * W[wo + d];
        s1 += X[xo + d + 1] * W[wo + d + 1];
        s2 += X[xo + d + 2] * W[wo + d + 2];
        s3 += X[xo + d + 3] * W[wo + d + 3];
      }
      for (; d < D; d++) s0 += X[xo + d] * W[wo + d];
      const s = b[k] + (s0 + s1 + (s2 + s3));
      P[po + k] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const e = Math.exp(P[po + k] - max);
      P[po + k] = e;
      sum += e;
    }
    const yi = y[i];
    // CE = logsumexp − z_y = log(sum) + max − z_y; z_y − max = log(e_y)
    f += Math.log(sum) - Math.log(P[po + yi]);
    const inv = 1 / sum;
    for (let k = 0; k < K; k++) P[po + k] *= inv;
    P[po + yi] -= 1;
  }
  gW.fill(0);
  gb.fill(0);
  for (let i = 0; i < N; i++) {
    const xo = i * D;
    const po = i * K;
    for (let k = 0; k < K; k++) {
      const r = P[po + k];
      gb[k] += r;
      if (r === 0) continue;
      const wo = k * D;
      let d = 0;
      for (; d + 3 < D; d += 4) {
        gW[wo + d] += r * X[xo + d];
        gW[wo + d + 1] += r * X[xo + d + 1];
        gW[wo + d + 2] += r * X[xo + d + 2];
        gW[wo + d + 3] += r * X[xo + d + 3];
      }
      for (; d < D; d++) gW[wo + d] += r * X[xo + d];
    }
  }
  let reg = 0;
  for (let j = 0; j < W.length; j++) {
    reg += W[j] * W[j];
    gW[j] += W[j] * invC;
  }
  return f + 0.5 * invC * reg;
}

function dot(a: Float64Array, b: Float64Array, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += a[j] * b[j];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let j = 0; j < a.length; j++) {
    const v = Math.abs(a[j]);
    if (v > m) m = v;
  }
  return m;
}

/** L-BFGS on the packed parameters θ = [W (K·D), b (K)]. */
function lbfgs(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  C: number,
  tol: number,
  maxIter: number,
  init: { W: Float64Array; b: Float64Array } | undefined,
): LogRegFit {
  const nW = K * D;
  const n = nW + K;
  const invC = 1 / C;
  const theta = new Float64Array(n);
  if (init) {
    theta.set(init.W, 0);
    theta.set(init.b, nW);
  }
  const g = new Float64Array(n);
  const P = new Float64Array(N * K);
  const evalAt = (t: Float64Array, grad: Float64Array) =>
    lossGrad(X, y, N, D, K, t.subarray(0, nW), t.subarray(nW), invC, grad.subarray(0, nW), grad.subarray(nW), P);
  let f = evalAt(theta, g);
  const m = 10;
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(m);
  const dir = new Float64Array(n);
  const tNew = new Float64Array(n);
  const gNew = new Float64Array(n);
  const gtol = tol * N;
  let it = 0;
  let gmax = maxAbs(g);
  let flat = 0; // consecutive steps that changed f by no more than its rounding
  while (gmax > gtol && it < maxIter && flat < 20) {
    // Two-loop recursion: dir = −H·g.
    dir.set(g);
    for (let j = S.length - 1; j >= 0; j--) {
      alpha[j] = rho[j] * dot(S[j], dir, n);
      const yj = Y[j];
      for (let q = 0; q < n; q++) dir[q] -= alpha[j] * yj[q];
    }
    let gamma = 1 / Math.max(1, Math.sqrt(dot(g, g, n))); // first step: unit length at most
    if (S.length > 0) {
      const last = S.length - 1;
      gamma = dot(S[last], Y[last], n) / dot(Y[last], Y[last], n);
    }
    for (let q = 0; q < n; q++) dir[q] *= gamma;
    for (let j = 0; j < S.length; j++) {
      const beta = rho[j] * dot(Y[j], dir, n);
      const sj = S[j];
      for (let q = 0; q < n; q++) dir[q] += (alpha[j] - beta) * sj[q];
    }
    for (let q = 0; q < n; q++) dir[q] = -dir[q];
    let slope = dot(g, dir, n);
    if (!(slope < 0)) {
      // Not a descent direction (rounding): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let q = 0; q < n; q++) dir[q] = -g[q];
      slope = -dot(g, g, n);
    }
    // Backtracking line search (Armijo, c1 = 1e-4), with a float64-floor acceptance: once f changes by
    // less than its rounding, a step that still lowers |slope| along dir is progress (f is convex).
    let step = 1;
    let fNew = 0;
    let accepted = false;
    for (let ls = 0; ls < 60; ls++) {
      for (let q = 0; q < n; q++) tNew[q] = theta[q] + step * dir[q];
      fNew = evalAt(tNew, gNew);
      if (fNew <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      if (fNew <= f + 8e-16 * Math.abs(f) && Math.abs(dot(gNew, dir, n)) < Math.abs(slope)) {
        accepted = true;
        break;
      }
      // Quadratic interpolation of the step, kept within [0.1, 0.5] of the current one.
      const denom = 2 * (fNew - f - step * slope);
      let next = denom > 0 ? (-slope * step * step) / denom : step / 2;
      next = Math.min(Math.max(next, 0.1 * step), 0.5 * step);
      step = next;
    }
    if (!accepted) break; // float64 floor: no representable progress left
    const s = new Float64Array(n);
    const yv = new Float64Array(n);
    for (let q = 0; q < n; q++) {
      s[q] = tNew[q] - theta[q];
      yv[q] = gNew[q] - g[q];
    }
    const sy = dot(s, yv, n);
    if (sy > 1e-12 * Math.sqrt(dot(s, s, n) * dot(yv, yv, n))) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
    }
    flat = f - fNew <= 4e-16 * Math.abs(f) ? flat + 1 : 0;
    theta.set(tNew);
    g.set(gNew);
    f = fNew;
    gmax = maxAbs(g);
    it++;
  }
  const W = theta.slice(0, nW);
  const b = theta.slice(nW);
  let mean = 0;
  for (let k = 0; k < K; k++) mean += b[k];
  mean /= K;
  for (let k = 0; k < K; k++) b[k] -= mean;
  return { W, b, objective: f, iterations: it, converged: gmax <= gtol, gradMaxAbs: gmax / N };
}

/**
 * A basis of X's row space: Z [N, r] with Z·Zᵀ = X·Xᵀ, and M [N, r] with Q = Xᵀ·M orthonormal and
 * X·Q = Z. From Cholesky with diagonal pivoting of G = X·Xᵀ, stopped at pivots ≤ 1e-13·max(diag).
 */
export function rowSpace(X: Float64Array, N: number, D: number): { Z: Float64Array; M: Float64Array; r: number } {
  const G = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j <= i; j++) {
      const s = dot(X.subarray(i * D, i * D + D), X.subarray(j * D, j * D + D), D);
      G[i * N + j] = s;
      G[j * N + i] = s;
    }
  }
  // Pivoted Cholesky: L [N, r] columns built one pivot at a time (left-looking on the residual diagonal).
  const L = new Float64Array(N * N); // L[i*N + c]
  const diag = new Float64Array(N);
  let dmax = 0;
  for (let i = 0; i < N; i++) {
    diag[i] = G[i * N + i];
    dmax = Math.max(dmax, diag[i]);
  }
  const used = new Uint8Array(N);
  let r = 0;
  const stop = 1e-13 * dmax;
  for (; r < N; r++) {
    let p = -1;
    let best = stop;
    for (let i = 0; i < N; i++)
      if (!used[i] && diag[i] > best) {
        best = diag[i];
        p = i;
      }
    if (p < 0) break;
    used[p] = 1;
    const lpp = Math.sqrt(diag[p]);
    for (let i = 0; i < N; i++) {
      if (used[i] && i !== p) continue;
      let s = G[i * N + p];
      for (let c = 0; c < r; c++) s -= L[i * N + c] * L[p * N + c];
      L[i * N + r] = i === p ? lpp : s / lpp;
    }
    for (let i = 0; i < N; i++) if (!used[i]) diag[i] -= L[i * N + r] * L[i * N + r];
  }
  const Z = new Float64Array(N * r);
  for (let i = 0; i < N; i++) for (let c = 0; c < r; c++) Z[i * r + c] = L[i * N + c];
  // M = Z·(ZᵀZ)⁻¹ (ZᵀZ is r×r, symmetric positive definite: plain Cholesky solve).
  const A = new Float64Array(r * r);
  for (let a = 0; a < r; a++) {
    for (let c = 0; c <= a; c++) {
      let s = 0;
      for (let i = 0; i < N; i++) s += Z[i * r + a] * Z[i * r + c];
      A[a * r + c] = s;
      A[c * r + a] = s;
    }
  }
  for (let a = 0; a < r; a++) {
    for (let c = 0; c <= a; c++) {
      let s = A[a * r + c];
      for (let q = 0; q < c; q++) s -= A[a * r + q] * A[c * r + q];
      A[a * r + c] = a === c ? Math.sqrt(Math.max(s, 1e-300)) : s / A[c * r + c];
    }
  }
  const M = new Float64Array(N * r);
  const v = new Float64Array(r);
  for (let i = 0; i < N; i++) {
    for (let c = 0; c < r; c++) v[c] = Z[i * r + c];
    for (let a = 0; a < r; a++) {
      // forward: L u = v
      let s = v[a];
      for (let q = 0; q < a; q++) s -= A[a * r + q] * v[q];
      v[a] = s / A[a * r + a];
    }
    for (let a = r - 1; a >= 0; a--) {
      // back: Lᵀ w = u
      let s = v[a];
      for (let q = a + 1; q < r; q++) s -= A[q * r + a] * v[q];
      v[a] = s / A[a * r + a];
    }
    for (let c = 0; c < r; c++) M[i * r + c] = v[c];
  }
  return { Z, M, r };
}

/**
 * Fits the model on X [N, D] (row-major float64) with labels y in [0, K).
 */
export function fitLogReg(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  opts: LogRegOptions,
): LogRegFit {
  return fitLogRegPath(X, y, N, D, K, [opts.C], opts)[0];
}

/**
 * One fit per C, in the order given, each warm-started from the previous one's solution (the
 * optimum of each C does not depend on the start; iterations do). The row-space basis (N < D) is
 * computed once for all of them.
 */
export function fitLogRegPath(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  Cs: readonly number[],
  opts: Omit<LogRegOptions, 'C'> = {},
): LogRegFit[] {
  const tol = opts.tol ?? 1e-8;
  const maxIter = opts.maxIter ?? 10000;
  for (const C of Cs)
    if (!(C > 0) || !Number.isFinite(C)) throw new RangeError(`C must be a positive number, got ${C}`);
  const fits: LogRegFit[] = [];
  if ((opts.reduce ?? false) && N < D && !opts.init) {
    const { Z, M, r } = rowSpace(X, N, D);
    let init: { W: Float64Array; b: Float64Array } | undefined;
    for (const C of Cs) {
      const fit = lbfgs(Z, y, N, r, K, C, tol, maxIter, init);
      init = fit;
      // W = A·Qᵀ = A·Mᵀ·X: (K×r)(r×N) then (K×N)(N×D).
      const AM = new Float64Array(K * N);
      for (let k = 0; k < K; k++) {
        for (let i = 0; i < N; i++) {
          let s = 0;
          for (let c = 0; c < r; c++) s += fit.W[k * r + c] * M[i * r + c];
          AM[k * N + i] = s;
        }
      }
      const W = new Float64Array(K * D);
      for (let k = 0; k < K; k++) {
        for (let i = 0; i < N; i++) {
          const a = AM[k * N + i];
          if (a === 0) continue;
          for (let d = 0; d < D; d++) W[k * D + d] += a * X[i * D + d];
        }
      }
      fits.push({ ...fit, W });
    }
    return fits;
  }
  let init = opts.init;
  for (const C of Cs) {
    const fit = lbfgs(X, y, N, D, K, C, tol, maxIter, init);
    init = fit;
    fits.push(fit);
  }
  return fits;
}

/** The objective f(W, b) (sum form) at given parameters, for checks. */
export function logRegObjective(
  X: Float64Array,
  y: Int32Array,
  N: number,
  D: number,
  K: number,
  W: Float64Array,
  b: Float64Array,
  C: number,
): number {
  return lossGrad(X, y, N, D, K, W, b, 1 / C, new Float64Array(K * D), new Float64Array(K), new Float64Array(N * K));
}

/** Decision function X·Wᵀ + b, [N, K] float64. */
export function decision(
  X: Float64Array,
  N: number,
  D: number,
  W: Float64Array,
  b: Float64Array,
  K: number,
): Float64Array {
  const out = new Float64Array(N * K);
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < K; k++) {
      let s = b[k];
      for (let d = 0; d < D; d++) s += X[i * D + d] * W[k * D + d];
      out[i * K + k] = s;
    }
  }
  return out;
}

/** Row-wise softmax in place ([N, K]). */
export function softmaxRows(Z: Float64Array, N: number, K: number): Float64Array {
  for (let i = 0; i < N; i++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, Z[i * K + k]);
    let sum = 0;
    for (let k = 0; k < K; k++) {
      const e = Math.exp(Z[i * K + k] - max);
      Z[i * K + k] = e;
      sum += e;
    }
    for (let k = 0; k < K; k++) Z[i * K + k] /= sum;
  }
  return Z;
}
