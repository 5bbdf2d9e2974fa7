// Every numeric bound the tests use, with its reason. Tests import from here; none hard-codes a bound.
export const TOL = {
  /** float32 engine vs transformers' float64 goldens (relative L2). The issue's bound; the goldens
   * themselves are exact to ~1e-7 (their softmax runs in float32), so 1e-5 leaves room only for
   * float32 accumulation error. */
  f32VsFloat64: 1e-5,
  /** float32 engine vs onnxruntime-node float32 on the same weights and input (relative L2). Both
   * sit ~1e-6 from float64, so their difference is bounded by about twice that. */
  f32VsOrt: 1e-5,
  /** Results that must not depend on scheduling (concurrent vs sequential calls): bitwise equal. */
  deterministic: 0,
} as const;
