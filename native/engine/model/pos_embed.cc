#include "engine/model/pos_embed.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace vitmsn {
namespace {

constexpr double kA = -0.75;  // PyTorch's cubic convolution coefficient

double cubic_near(double x) { return ((kA + 2) * x - (kA + 3)) * x * x + 1; }         // |x| ≤ 1
double cubic_far(double x) { return ((kA * x - 5 * kA) * x + 8 * kA) * x - 4 * kA; }  // 1 < |x| < 2

}  // namespace

CubicTaps bicubic_taps(int64_t dst, int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double src = (static_cast<double>(dst) + 0.5) * scale - 0.5;  // not clamped for cubic
  const double fl = std::floor(src);
  const double t = src - fl;
  const int64_t i0 = static_cast<int64_t>(fl);
  CubicTaps taps;
  taps.w[0] = cubic_far(t + 1);
  taps.w[1] = cubic_near(t);
  taps.w[2] = cubic_near(1 - t);
  taps.w[3] = cubic_far(2 - t);
  for (int k = 0; k < 4; ++k) taps.index[k] = std::clamp<int64_t>(i0 - 1 + k, 0, in_size - 1);
  return taps;
}

std::vector<float> interpolate_pos_table(const std::vector<float>& table, int64_t n0, int64_t D, int64_t gh,
                                         int64_t gw) {
  const int64_t s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n0))));
  if (s * s != n0) {
    throw Error(codes::kShape,
                "interpolate_pos_encoding needs a square grid of trained positions, got " + std::to_string(n0));
  }
  std::vector<float> out(static_cast<size_t>((1 + gh * gw) * D));
  std::copy(table.begin(), table.begin() + D, out.begin());  // CLS position is kept as is
  const float* grid = table.data() + D;                      // [s, s, D]
  std::vector<CubicTaps> ty(gh), tx(gw);
  for (int64_t y = 0; y < gh; ++y) ty[y] = bicubic_taps(y, s, gh);
  for (int64_t x = 0; x < gw; ++x) tx[x] = bicubic_taps(x, s, gw);
  // As PyTorch's CPU kernel: interpolate 4 source rows along x, then combine them along y.
  std::vector<double> rows(4 * D);
  for (int64_t y = 0; y < gh; ++y) {
    for (int64_t x = 0; x < gw; ++x) {
      std::fill(rows.begin(), rows.end(), 0.0);
      for (int r = 0; r < 4; ++r) {
        for (int c = 0; c < 4; ++c) {
          const float* src = grid + (ty[y].index[r] * s + tx[x].index[c]) * D;
          const double w = tx[x].w[c];
          for (int64_t d = 0; d < D; ++d) rows[r * D + d] += w * src[d];
        }
      }
      float* dst = out.data() + (1 + y * gw + x) * D;
      for (int64_t d = 0; d < D; ++d) {
        double v = 0;
        for (int r = 0; r < 4; ++r) v += ty[y].w[r] * rows[r * D + d];
        dst[d] = static_cast<float>(v);
      }
    }
  }
  return out;
}

}  // namespace vitmsn
