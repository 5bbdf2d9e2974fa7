// Packing of Linear weights into column panels (layout in packed_linear.h). Runs once per weight
// at load; plain loops, the order chosen so that the source rows are read sequentially.
#include "cpu/packed_linear.h"

#include <algorithm>
#include <cmath>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif
#include <string>

#include "common/error.h"
#include "cpu/gemm_int8.h"

namespace vitmsn {
namespace cpu {

namespace {

#if defined(__linux__)
// Big weights get their own mapping, 2 MiB aligned, with the whole 2 MiB pages of it marked
// MADV_HUGEPAGE (the tail stays in 4 KiB pages, so nothing is wasted): the GEMMs stream every
// weight once per forward, and huge pages spare them TLB misses; the load, page faults.
constexpr size_t kHuge = size_t(2) << 20;

void* map_huge(size_t bytes, size_t* mapped) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t len = (bytes + page - 1) / page * page;
  void* raw = ::mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw), a = (r + kHuge - 1) / kHuge * kHuge;
  if (a > r) ::munmap(raw, a - r);
  const size_t tail = (r + len + kHuge) - (a + len);
  if (tail > 0) ::munmap(reinterpret_cast<void*>(a + len), tail);
  if (len >= kHuge) ::madvise(reinterpret_cast<void*>(a), len / kHuge * kHuge, MADV_HUGEPAGE);
  *mapped = len;
  return reinterpret_cast<void*>(a);
}
#endif

}  // namespace

PackedLinear::~PackedLinear() {
#if defined(__linux__)
  if (mapped_ > 0) {
    ::munmap(data_, mapped_);
    return;
  }
#endif
  ::operator delete(data_, std::align_val_t(64));
}

std::unique_ptr<PackedLinear> PackedLinear::pack(const float* W, int64_t N, int64_t K, WeightDtype dtype,
                                                 ThreadPool* pool) {
  if (N < 0 || K < 0) throw Error(codes::kInternal, "prepare_linear: negative dimension");
  auto p = std::make_unique<PackedLinear>();
  p->N = N, p->K = K, p->dtype = dtype;
  p->panels = (N + kPanel - 1) / kPanel;
  p->K2 = (K + 1) / 2;
  p->Kp = (K + 63) / 64 * 64;
  const bool bf16 = dtype == WeightDtype::kBFloat16, i8 = dtype == WeightDtype::kInt8;
  const size_t panel_elems = static_cast<size_t>(kPanel) * static_cast<size_t>(bf16 ? 2 * p->K2 : i8 ? p->Kp + 8 : K);
  const size_t bytes = static_cast<size_t>(p->panels) * panel_elems * (bf16 ? 2 : i8 ? 1 : 4) + 64;
  void* mem = nullptr;
#if defined(__linux__)
  if (bytes >= 2 * kHuge) mem = map_huge(bytes, &p->mapped_);
#endif
  if (!mem) mem = ::operator new(bytes, std::align_val_t(64), std::nothrow);
  if (!mem)
    throw Error(codes::kOutOfMemory,
                "out of memory packing a " + std::to_string(N) + "x" + std::to_string(K) + " weight");
  p->data_ = mem;
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
      if (i8) {
        // Two 16-column blocks; each column's scale from its own max |W|, then its int8 values.
        int8_t* base = static_cast<int8_t*>(mem);
        float* scales = reinterpret_cast<float*>(base + p->panels * kPanel * p->Kp);
        int32_t* sums = reinterpret_cast<int32_t*>(scales + p->panels * kPanel);
        for (int j = 0; j < kPanel; ++j) {
          const int64_t n = pi * kPanel + j;
          int8_t* dst = base + (2 * pi + j / 16) * p->Kp * 16 + (j % 16) * 4;
          float amax = 0.0f;
          if (rows[j])
            for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(rows[j][k]));
          const float s = int8_weight_scale(amax);
          int32_t sum = 0;
          for (int64_t k = 0; k < p->Kp; ++k) {
            const int8_t q = rows[j] && k < K ? int8_weight(rows[j][k], s) : 0;
            dst[(k / 4) * 64 + (k % 4)] = q;
            sum += q;
          }
          scales[n] = s;
          sums[n] = sum;
        }
      } else if (!bf16) {
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
  ThreadPool inline_pool(1);  // no pool given: one thread, this one
  (pool ? *pool : inline_pool).parallel_for(p->panels, pack_panels);
  return p;
}

}  // namespace cpu
}  // namespace vitmsn
