#include "pooling.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace vitmsn {

std::vector<float> pool(const ForwardResult& r, Pooling pooling, bool normalize) {
  const int64_t B = r.B, T = r.T, D = r.D;
  std::vector<float> out(static_cast<size_t>(B * D));
  const std::vector<float>* src = &r.last_hidden_state;
  if (pooling == Pooling::ClsPrenorm) {
    if (r.hidden_states.empty()) throw Error(codes::kInternal, "cls-prenorm pooling needs the hidden states");
    src = &r.hidden_states.back();
  }
  for (int64_t b = 0; b < B; ++b) {
    const float* x = src->data() + b * T * D;
    float* y = out.data() + b * D;
    if (pooling == Pooling::Mean) {
      if (T < 2) throw Error(codes::kInternal, "mean pooling needs patch tokens");
      for (int64_t d = 0; d < D; ++d) {
        double s = 0.0;
        for (int64_t t = 1; t < T; ++t) s += x[t * D + d];
        y[d] = static_cast<float>(s / static_cast<double>(T - 1));
      }
    } else {
      std::copy(x, x + D, y);
    }
    if (normalize) {
      double ss = 0.0;
      for (int64_t d = 0; d < D; ++d) ss += static_cast<double>(y[d]) * y[d];
      const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
      for (int64_t d = 0; d < D; ++d) y[d] = static_cast<float>(y[d] * inv);
    }
  }
  return out;
}

std::vector<float> softmax_rows(const std::vector<float>& logits, int64_t B, int64_t n) {
  std::vector<float> out(static_cast<size_t>(B * n));
  for (int64_t b = 0; b < B; ++b) {
    const float* x = logits.data() + b * n;
    float m = x[0];
    for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - m);
    for (int64_t i = 0; i < n; ++i) out[b * n + i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - m) / sum);
  }
  return out;
}

}  // namespace vitmsn
