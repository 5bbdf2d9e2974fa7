// Every numeric bound the tests use, with its reason. Tests import from here; none hard-codes a bound.
export const TOL = {
  /** float32 engine vs transformers' float64 goldens (relative L2). The project's bound; the goldens
   * themselves are exact to ~1e-7 (their softmax runs in float32), so 1e-5 leaves room only for
   * float32 accumulation error. */
  f32VsFloat64: 1e-5,
  /** float32 engine vs onnxruntime-node float32 on the same weights and input (relative L2). Both
   * sit ~1e-6 from float64, so their difference is bounded by about twice that. */
  f32VsOrt: 1e-5,
  /** CUDA float16 storage (10-bit mantissa, rounding 2^-11) vs float64 on the tiny goldens: every
   * activation is rounded once per op through L layers; HF's own fp16 runs land near 1.2e-3 on ViT-S/B,
   * tiny random models with few channels average less, so allow a few times that. */
  cudaF16VsFloat64: 5e-3,
  /** CUDA bfloat16 storage (7-bit mantissa, rounding 2^-8), same reasoning: HF's bf16 ≈ 1e-2. */
  cudaBf16VsFloat64: 4e-2,
  /** dtype 'bfloat16' on the CPU vs float64 goldens / onnxruntime fp32 (relative L2). The project's
   * bound: weights and GEMM inputs are rounded to bfloat16 (8 mantissa bits, ~2e-3 relative each);
   * accumulation stays float32, and the errors of 12 layers add up to a few 1e-3. */
  bf16: 1.2e-2,
  /** dtype 'int8' on the CPU vs float64 goldens (relative L2): int8 weights per output channel (step
   * max|W|/127) and uint8 activations per token (step range/255) in every encoder Linear, int32 sums,
   * patch embedding bf16. Measured 6.4e-3 (tiny-s8), 6.7e-3 (tiny-mask), 1.09e-2 (tiny-cls); on real
   * images ViT-S/16 1.01e-2 and ViT-B/16 1.47e-2 (onnxruntime q8: 1.32e-2, 1.83e-2; bench/accuracy.mjs).
   * 2e-2 leaves under 2× room over the worst tiny golden. */
  int8: 2e-2,
  /** dtype 'int8' logits vs float64 goldens (relative L2): the classifier itself is float32, but it
   * reads one CLS row per image, so the int8 error of that row is not averaged over tokens as
   * last_hidden_state's is. Measured 3.7e-2 on tiny-cls (its 3 logits); top-1 is tested separately. */
  int8Logits: 6e-2,
  /** Results that must not depend on scheduling (concurrent vs sequential calls): bitwise equal. */
  deterministic: 0,
  /** preprocess() vs HF's PIL processor pixel_values (max abs). The project's bound; the arithmetic is
   * reproduced exactly (same uint8 resize, same float64 rescale and float32 normalize), so 0 is expected. */
  preprocessVsPil: 1e-6,
  /** preprocess() vs transformers 5's torchvision processor: its resize rounds differently, so values
   * may differ, by at most one uint8 level (1/255/std, + float32 slack) ... */
  torchvisionLevels: 1,
  /** ... in at most this fraction of the values (the project's bound; ~0.1% is typical). */
  torchvisionFraction: 0.005,
  /** encode() vs pooling forward()'s output in the test (relative L2): the same engine on the same
   * pixels, but another batch composition may reorder float32 sums, and the test pools in float64. */
  encodeVsForward: 1e-6,
  /** A caller's rows from a shared (dynamically formed) batch vs the same call alone (relative L2):
   * the CPU GEMMs take other paths at batch 1 than at batch 8 (panel groups, MLP slices), which
   * reorders float32 sums; the rows are otherwise the same computation. */
  batchedVsAlone: 1e-6,
  /** encode()/classify() (the embed path) vs forward() + host pooling on the CPU: the same kernels on
   * bit-identical pixel values, the same pooling arithmetic in the same order: bitwise equal. */
  embedVsForwardCpu: 0,
  /** The same on CUDA (relative L2 of the pooled rows / probabilities): the pixels and layers are
   * the same computation, but the pooled rows are stored in the backend's dtype before they come
   * back (one rounding: 2^-24 / 2^-11 / 2^-8) and the norm of normalize is a tree sum. */
  embedVsForwardCudaF32: 1e-6,
  embedVsForwardCudaF16: 1e-3,
  embedVsForwardCudaBf16: 8e-3,
} as const;
