// Packing of Linear weights into column panels (layout in packed_linear.h). Runs once per weight
// at load; plain loops, the order chosen so that the source rows are read sequentially.
#include "cpu/packed_linear.h"

#include <cstring>
#include <new>
#include <string>

#include "engine/error.h"

namespace vitmsn {
namespace cpu {

void PackedLinear::Free::operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }

std::unique_ptr<PackedLinear> PackedLinear::pack(const float* W, int64_t N, int64_t K, WeightDtype dtype) {
  if (N < 0 || K < 0) throw Error(codes::kInternal, "prepare_linear: negative dimension");
  auto p = std::make_unique<PackedLinear>();
  p->N = N, p->K = K, p->dtype = dtype;
  p->panels = (N + kPanel - 1) / kPanel;
  p->K2 = (K + 1) / 2;
  const size_t elems = static_cast<size_t>(p->panels) * kPanel *
                       static_cast<size_t>(dtype == WeightDtype::kBFloat16 ? 2 * p->K2 : K);
  const size_t bytes = elems * (dtype == WeightDtype::kBFloat16 ? 2 : 4) + 64;
  void* mem = ::operator new(bytes, std::align_val_t(64), std::nothrow);
  if (!mem) throw Error(codes::kOutOfMemory, "out of memory packing a " + std::to_string(N) + "x" + std::to_string(K) + " weight");
  p->data_.reset(mem);
  p->bytes_ = bytes;
  std::memset(mem, 0, bytes);
  if (dtype == WeightDtype::kFloat32) {
    float* dst = static_cast<float*>(mem);
    for (int64_t n = 0; n < N; ++n) {
      float* col = dst + (n / kPanel) * K * kPanel + (n % kPanel);
      const float* src = W + n * K;
      for (int64_t k = 0; k < K; ++k) col[k * kPanel] = src[k];
    }
  } else {
    uint16_t* dst = static_cast<uint16_t*>(mem);
    for (int64_t n = 0; n < N; ++n) {
      uint16_t* col = dst + (n / kPanel) * p->K2 * 2 * kPanel + 2 * (n % kPanel);
      const float* src = W + n * K;
      for (int64_t k = 0; k < K; ++k) col[(k / 2) * 2 * kPanel + (k & 1)] = to_bf16(src[k]);
    }
  }
  return p;
}

}  // namespace cpu
}  // namespace vitmsn
