// Per-ISA attention rows (attention.cc splits the work and prepares Kᵀ; the math is in
// attention.h). One call handles query rows [i0, i1) of one (b, h).
#pragma once
#include <cstdint>

#include "cpu/op_args.h"

namespace vitmsn {
namespace cpu {

struct AttentionRows {
  const AttentionArgs* args = nullptr;
  int64_t b = 0, h = 0, i0 = 0, i1 = 0;
  const float* kt = nullptr;  // Kᵀ of (b, h): [Dh][Tp], columns past T zero, 64-byte aligned
  int64_t Tp = 0;             // T rounded up to 16
  float* scores = nullptr;    // scratch: 8 · Tp floats, 64-byte aligned
  float* qt = nullptr;        // scratch: 8 · Dh floats
  // V of (b, h) copied to dense rows [T][Dh]: in qkv its rows sit 3·H·Dh floats apart, one page
  // each, where the hardware prefetchers do not follow; dense they stream.
  const float* v = nullptr;
};

void attention_rows_avx512(const AttentionRows& t);

// Hints rows [0, rows) of n floats (row stride `stride`) toward L2. The flash and AMX drivers ask
// for the next task's rows while the current one computes: in qkv consecutive rows are pages
// apart, where the hardware prefetchers do not follow, and at batch 8 qkv (7–15 MB) lives in L3.
inline void prefetch_rows(const float* p, int64_t stride, int64_t rows, int64_t n) {
#if defined(__GNUC__) || defined(__clang__)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + r * stride + i, 0, 2);
#else
  (void)p, (void)stride, (void)rows, (void)n;
#endif
}
// The same for rows about to be written (prefetch with intent to write).
inline void prefetch_rows_for_write(float* p, int64_t stride, int64_t rows, int64_t n) {
#if defined(__GNUC__) || defined(__clang__)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + r * stride + i, 1, 2);
#else
  (void)p, (void)stride, (void)rows, (void)n;
#endif
}
// kt[d][j] = k_j[d] for j < T (k_j = kbase + j·stride), zero for T ≤ j < Tp; Tp a multiple of 16,
// kt 64-byte aligned.
void attention_build_kt_avx512(const float* kbase, int64_t stride, int64_t T, int64_t Dh, int64_t Tp, float* kt);

}  // namespace cpu
}  // namespace vitmsn
