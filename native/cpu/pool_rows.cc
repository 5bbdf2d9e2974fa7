// Pooling (math and shapes in pool_rows.h). Per image, the column sums run over d in the inner loop
// (each column's sum still adds its rows in order of t, so the compiler may vectorise across d
// without changing any result); the norm is one sequential double sum, as on the host.
#include "cpu/pool_rows.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"

namespace vitmsn {
namespace cpu {

void pool_rows(const PoolRowsArgs& a, ThreadPool& pool) {
  if (a.B < 0 || a.T < 0 || a.D < 0) throw Error(codes::kInternal, "pool_rows: negative dimension");
  if (a.n < 1 || a.t0 < 0 || a.t0 + a.n > a.T) throw Error(codes::kInternal, "pool_rows: rows out of range");
  if (a.B == 0 || a.D == 0) return;
  if (!a.x || !a.out) throw Error(codes::kInternal, "pool_rows: null operand");
  const int64_t T = a.T, D = a.D;
  auto body = [&](int64_t b0, int64_t b1) {
    std::vector<double> s(static_cast<size_t>(D));
    for (int64_t b = b0; b < b1; ++b) {
      float* y = a.out + b * D;
      const float* x = a.x + (b * T + a.t0) * D;
      std::fill(s.begin(), s.end(), 0.0);
      for (int64_t t = 0; t < a.n; ++t)
        for (int64_t d = 0; d < D; ++d) s[d] += x[t * D + d];
      const double n = static_cast<double>(a.n);
      for (int64_t d = 0; d < D; ++d) y[d] = static_cast<float>(s[d] / n);
      if (!a.normalize) continue;
      double ss = 0.0;
      for (int64_t d = 0; d < D; ++d) ss += static_cast<double>(y[d]) * y[d];
      const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
      for (int64_t d = 0; d < D; ++d) y[d] = static_cast<float>(y[d] * inv);
    }
  };
  pool.parallel_for(a.B, body, a.B * (a.n + 3) * D);
}

}  // namespace cpu
}  // namespace vitmsn
