// Every numeric bound the tests use, with its reason. Tests import from here; none hard-codes a bound.
export const TOL = {
  /** float32 engine vs transformers' float64 goldens (relative L2). The issue's bound; the goldens
   * themselves are exact to ~1e-7 (their softmax runs in float32), so 1e-5 leaves room only for
   * float32 accumulation error. */
  f32VsFloat64: 1e-5,
  /** float32 engine vs onnxruntime-node float32 on the same weights and input (relative L2). Both
   * sit ~1e-6 from float64, so their difference is bounded by about twice that. */
  f32VsOrt: 1e-5,
  /** dtype 'bfloat16' on the CPU vs float64 goldens / onnxruntime fp32 (relative L2). The issue's
   * bound: weights and GEMM inputs are rounded to bfloat16 (8 mantissa bits, ~2e-3 relative each);
   * accumulation stays float32, and the errors of 12 layers add up to a few 1e-3. */
  bf16: 1.2e-2,
  /** Results that must not depend on scheduling (concurrent vs sequential calls): bitwise equal. */
  deterministic: 0,
} as const;
