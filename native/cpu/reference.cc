// Scalar references (see reference.h). Readability over speed; every sum is in double and each
// output is rounded to float once. Outputs that may alias an input (gemm's residual, layernorm's
// y) are computed into a temporary first, so aliasing cannot change the result.
#include "cpu/reference.h"

#include "cpu/gemm_int8.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace vitmsn {
namespace cpu {

void ref_gemm(const GemmArgs& a) {
  std::vector<float> out(static_cast<size_t>(a.M * a.N));
  for (int64_t m = 0; m < a.M; ++m) {
    for (int64_t n = 0; n < a.N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < a.K; ++k) acc += static_cast<double>(a.A[m * a.lda + k]) * a.W[n * a.K + k];
      if (a.bias) acc += a.bias[n];
      if (a.epilogue == Epilogue::kGelu) acc = 0.5 * acc * (1.0 + std::erf(acc / std::sqrt(2.0)));
      if (a.residual) acc += a.residual[m * a.N + n];
      out[m * a.N + n] = static_cast<float>(acc);
    }
  }
  for (size_t i = 0; i < out.size(); ++i) a.C[i] = out[i];
}

void ref_gemm_int8(const GemmArgs& a, int32_t* acc_out) {
  // W per output channel, A per row, as gemm_int8.h writes the scheme; then exact integer sums.
  std::vector<int8_t> wq(static_cast<size_t>(a.N * a.K));
  std::vector<float> ws(static_cast<size_t>(a.N));
  std::vector<int64_t> colsum(static_cast<size_t>(a.N), 0);
  for (int64_t n = 0; n < a.N; ++n) {
    float amax = 0.0f;
    for (int64_t k = 0; k < a.K; ++k) amax = std::max(amax, std::fabs(a.W[n * a.K + k]));
    ws[n] = int8_weight_scale(amax);
    for (int64_t k = 0; k < a.K; ++k) {
      wq[n * a.K + k] = int8_weight(a.W[n * a.K + k], ws[n]);
      colsum[n] += wq[n * a.K + k];
    }
  }
  std::vector<float> out(static_cast<size_t>(a.M * a.N));
  std::vector<uint8_t> aq(static_cast<size_t>(a.K));
  for (int64_t m = 0; m < a.M; ++m) {
    const float* x = a.A + m * a.lda;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < a.K; ++k) lo = std::min(lo, x[k]), hi = std::max(hi, x[k]);
    const RowQuant q = uint8_row_params(lo, hi);
    for (int64_t k = 0; k < a.K; ++k) aq[k] = uint8_act(x[k], q);
    for (int64_t n = 0; n < a.N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < a.K; ++k) acc += static_cast<int64_t>(aq[k]) * wq[n * a.K + k];
      if (acc_out) acc_out[m * a.N + n] = static_cast<int32_t>(acc);
      double v = static_cast<double>(q.scale) * ws[n] * static_cast<double>(acc - q.zp * colsum[n]);
      if (a.bias) v += a.bias[n];
      if (a.epilogue == Epilogue::kGelu) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
      if (a.residual) v += a.residual[m * a.N + n];
      out[m * a.N + n] = static_cast<float>(v);
    }
  }
  if (a.C)
    for (size_t i = 0; i < out.size(); ++i) a.C[i] = out[i];
}

void ref_mlp(const MlpArgs& a, const float* W1, const float* W2) {
  std::vector<float> hidden(static_cast<size_t>(a.M * a.I));
  GemmArgs g;
  g.A = a.a, g.lda = a.D, g.W = W1, g.bias = a.b1, g.C = hidden.data(), g.M = a.M, g.N = a.I, g.K = a.D;
  g.epilogue = Epilogue::kGelu;
  ref_gemm(g);
  g = GemmArgs();
  g.A = hidden.data(), g.lda = a.I, g.W = W2, g.bias = a.b2, g.C = a.out, g.residual = a.out;
  g.M = a.M, g.N = a.D, g.K = a.I;
  ref_gemm(g);
}

void ref_layernorm(const LayerNormArgs& a) {
  for (int64_t r = 0; r < a.rows; ++r) {
    const float* x = a.x + r * a.D;
    double mean = 0.0;
    for (int64_t i = 0; i < a.D; ++i) mean += x[i];
    mean /= static_cast<double>(a.D);
    double var = 0.0;
    for (int64_t i = 0; i < a.D; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= static_cast<double>(a.D);
    const double rstd = 1.0 / std::sqrt(var + a.eps);
    std::vector<float> y(static_cast<size_t>(a.D));
    for (int64_t i = 0; i < a.D; ++i) y[i] = static_cast<float>((x[i] - mean) * rstd * a.gamma[i] + a.beta[i]);
    for (int64_t i = 0; i < a.D; ++i) a.y[r * a.D + i] = y[i];
  }
}

void ref_attention(const AttentionArgs& a) {
  const int64_t T = a.T, H = a.H, Dh = a.Dh, HD = H * Dh, stride = 3 * HD;
  std::vector<double> p(static_cast<size_t>(T));
  for (int64_t b = 0; b < a.B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < T; ++i) {
        const float* q = a.qkv + (b * T + i) * stride + h * Dh;
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          const float* k = a.qkv + (b * T + j) * stride + HD + h * Dh;
          double s = 0.0;
          for (int64_t d = 0; d < Dh; ++d) s += static_cast<double>(q[d]) * k[d];
          p[j] = s * a.scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < T; ++j) {
          p[j] = std::exp(p[j] - mx);
          sum += p[j];
        }
        const double hs = a.head_scale ? a.head_scale[h] : 1.0;
        for (int64_t j = 0; j < T; ++j) p[j] = p[j] / sum * hs;
        if (a.probs) {
          for (int64_t j = 0; j < T; ++j) a.probs[((b * H + h) * T + i) * T + j] = static_cast<float>(p[j]);
        }
        for (int64_t d = 0; d < Dh; ++d) {
          double o = 0.0;
          for (int64_t j = 0; j < T; ++j) o += p[j] * a.qkv[(b * T + j) * stride + 2 * HD + h * Dh + d];
          a.out[(b * T + i) * HD + h * Dh + d] = static_cast<float>(o);
        }
      }
    }
  }
}

void ref_patchify(const PatchifyArgs& a) {
  const int64_t gh = a.Himg / a.p, gw = a.Wimg / a.p, p = a.p, cols = a.C * p * p;
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px)
        for (int64_t c = 0; c < a.C; ++c)
          for (int64_t ky = 0; ky < p; ++ky)
            for (int64_t kx = 0; kx < p; ++kx) {
              const int64_t row = (b * gh + py) * gw + px, col = (c * p + ky) * p + kx;
              a.patches[row * cols + col] = a.x[((b * a.C + c) * a.Himg + py * p + ky) * a.Wimg + px * p + kx];
            }
}

void ref_embed_tokens(const EmbedTokensArgs& a) {
  const int64_t N = a.N, D = a.D;
  for (int64_t b = 0; b < a.B; ++b) {
    for (int64_t d = 0; d < D; ++d) {
      a.tokens[(b * (N + 1)) * D + d] = static_cast<float>(static_cast<double>(a.cls[d]) + a.pos[d]);
    }
    for (int64_t i = 0; i < N; ++i) {
      const bool masked = a.mask && a.mask[b * N + i];
      for (int64_t d = 0; d < D; ++d) {
        const double src = masked ? a.mask_token[d] : a.patch_emb[(b * N + i) * D + d];
        a.tokens[(b * (N + 1) + 1 + i) * D + d] = static_cast<float>(src + a.pos[(1 + i) * D + d]);
      }
    }
  }
}

void ref_patchify_pixels(const PatchifyPixelsArgs& a) {
  const int64_t gh = a.Himg / a.p, gw = a.Wimg / a.p, p = a.p, cols = 3 * p * p;
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px)
        for (int c = 0; c < 3; ++c)
          for (int64_t ky = 0; ky < p; ++ky)
            for (int64_t kx = 0; kx < p; ++kx) {
              const int64_t row = (b * gh + py) * gw + px, col = (c * p + ky) * p + kx;
              const uint8_t level = a.pixels[((b * a.Himg + py * p + ky) * a.Wimg + px * p + kx) * 3 + c];
              a.patches[row * cols + col] = pixel_value(level, c, a.norm);
            }
}

void ref_pool_rows(const PoolRowsArgs& a) {
  std::vector<float> y(static_cast<size_t>(a.D));
  for (int64_t b = 0; b < a.B; ++b) {
    for (int64_t d = 0; d < a.D; ++d) {
      double s = 0.0;
      for (int64_t t = a.t0; t < a.t0 + a.n; ++t) s += a.x[(b * a.T + t) * a.D + d];
      y[d] = static_cast<float>(s / static_cast<double>(a.n));
    }
    if (a.normalize) {
      double ss = 0.0;
      for (int64_t d = 0; d < a.D; ++d) ss += static_cast<double>(y[d]) * y[d];
      const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
      for (int64_t d = 0; d < a.D; ++d) y[d] = static_cast<float>(y[d] * inv);
    }
    std::copy(y.begin(), y.end(), a.out + b * a.D);
  }
}

}  // namespace cpu
}  // namespace vitmsn
