// The CPU's prepared Linear weight: W [N, K] cut into panels of kPanel = 32 output columns.
//
//   float32:  panel p holds W[p·32 + j, k] at f32[p·K·32 + k·32 + j]            ([K][32])
//   bfloat16: panel p holds W[p·32 + j, 2q + e] at bf16[p·K2·64 + q·64 + 2j + e] ([K2][32][2], K2 = ⌈K/2⌉)
//   int8:     16-column blocks (two per panel): block b holds Wq[b·16 + j, 4g + e] at
//             i8[b·Kp·16 + g·64 + 4j + e] ([Kp/4][16][4], Kp = K rounded up to 64), then the
//             per-column scales (float, panels·32) and column sums of Wq (int32, panels·32).
//             One block row (4 k × 16 columns) is what VPDPBUSD multiplies and one AMX B-tile row
//             (TDPBUSD), so both read the same bytes (gemm_int8.h: the quantisation).
//
// Columns past N and the odd k of a pair past K are zero, so kernels never need a column or k
// tail inside a panel. One panel row is two AVX-512 vectors (or four AVX2, eight NEON), and the
// bf16 pair layout is what vdpbf16ps multiplies: per column, (k, k+1) adjacent.
#pragma once
#include <cstdint>
#include <memory>

#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

constexpr int kPanel = 32;

class PackedLinear final : public PreparedLinear {
 public:
  int64_t panels = 0;
  int64_t K2 = 0;  // bf16 only: ⌈K/2⌉ pairs
  int64_t Kp = 0;  // int8 only: K rounded up to 64
  PackedLinear() = default;
  ~PackedLinear() override;
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;

  const float* f32() const { return static_cast<const float*>(data_); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data_); }
  const int8_t* i8() const { return static_cast<const int8_t*>(data_); }
  const float* i8_scale() const {
    return reinterpret_cast<const float*>(static_cast<const char*>(data_) + panels * kPanel * Kp);
  }
  const int32_t* i8_colsum() const { return reinterpret_cast<const int32_t*>(i8_scale() + panels * kPanel); }
  size_t bytes() const { return bytes_; }

  // Packs W (row-major [N, K]), over `pool` when given; throws Error(ERR_OUT_OF_MEMORY) when the
  // buffer cannot be had.
  static std::unique_ptr<PackedLinear> pack(const float* W, int64_t N, int64_t K, WeightDtype dtype,
                                            ThreadPool* pool = nullptr);

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  size_t mapped_ = 0;  // > 0: data_ is an anonymous mapping of this length (huge-page backed)
};

// float32 → bfloat16 bits, round to nearest even (NaN stays NaN).
inline uint16_t to_bf16(float x) {
  uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  __builtin_memcpy(&x, &u, 4);
  return x;
}

}  // namespace cpu
}  // namespace vitmsn
