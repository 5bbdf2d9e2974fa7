// Packing of Linear weights into column panels (layout in packed_linear.h). Runs once per weight
// at load; plain loops, the order chosen so that the source rows are read sequentially.
#include "cpu/packed_linear.h"

#include <new>
#include <string>

#include "engine/error.h"

namespace vitmsn {
namespace cpu {

void PackedLinear::Free::operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }

std::unique_ptr<PackedLinear> PackedLinear::pack(const float* W, int64_t N, int64_t K, WeightDtype dtype,
                                                 ThreadPool* pool) {
  if (N < 0 || K < 0) throw Error(codes::kInternal, "prepare_linear: negative dimension");
  auto p = std::make_unique<PackedLinear>();
  p->N = N, p->K = K, p->dtype = dtype;
  p->panels = (N + kPanel - 1) / kPanel;
  p->K2 = (K + 1) / 2;
  const bool bf16 = dtype == WeightDtype::kBFloat16;
  const size_t panel_elems = static_cast<size_t>(kPanel) * static_cast<size_t>(bf16 ? 2 * p->K2 : K);
  const size_t bytes = static_cast<size_t>(p->panels) * panel_elems * (bf16 ? 2 : 4) + 64;
  void* mem = ::operator new(bytes, std::align_val_t(64), std::nothrow);
  if (!mem) throw Error(codes::kOutOfMemory, "out of memory packing a " + std::to_string(N) + "x" + std::to_string(K) + " weight");
  p->data_.reset(mem);
  p->bytes_ = bytes;
  // Panel by panel, writing each panel sequentially while reading its 32 source rows side by side
  // (32 sequential streams); every element is written, padding included, so no memset pass.
  auto pack_panels = [&](int64_t p0, int64_t p1) {
    for (int64_t pi = p0; pi < p1; ++pi) {
      const float* rows[kPanel];
      for (int j = 0; j < kPanel; ++j) {
        const int64_t n = pi * kPanel + j;
        rows[j] = n < N ? W + n * K : nullptr;
      }
      if (!bf16) {
        float* dst = static_cast<float*>(mem) + pi * panel_elems;
        for (int64_t k = 0; k < K; ++k, dst += kPanel)
          for (int j = 0; j < kPanel; ++j) dst[j] = rows[j] ? rows[j][k] : 0.0f;
      } else {
        uint16_t* dst = static_cast<uint16_t*>(mem) + pi * panel_elems;
        for (int64_t q = 0; q < p->K2; ++q, dst += 2 * kPanel)
          for (int j = 0; j < kPanel; ++j) {
            const float lo = rows[j] ? rows[j][2 * q] : 0.0f;
            const float hi = rows[j] && 2 * q + 1 < K ? rows[j][2 * q + 1] : 0.0f;
            dst[2 * j] = to_bf16(lo);
            dst[2 * j + 1] = to_bf16(hi);
          }
      }
    }
  };
  if (pool && p->panels > 1) {
    pool->parallel_for(p->panels, pack_panels);
  } else {
    pack_panels(0, p->panels);
  }
  return p;
}

}  // namespace cpu
}  // namespace vitmsn
