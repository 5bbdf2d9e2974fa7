// Pillow's Resample.c arithmetic (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleInner),
// written from its description in docs/model.md. Every detail below changes output pixels:
// doubles for centres and weights, truncating casts for the tap window, weights normalised by their
// running sum, then rounded half away from zero to 22-bit fixed point; the accumulator starts at
// one half (round to nearest) and the result is clipped to 0..255.
#include "resample.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backend/resize_pass.h"
#include "common/error.h"

namespace vitmsn {
namespace {

constexpr int kPrecisionBits = kResizePrecisionBits;

struct Filter {
  double support;
  double (*fn)(double);
};

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;  // Pillow's choice (PyTorch uses -0.75)
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

Filter filter_of(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::Box:
      return {0.5, box_filter};
    case ResampleFilter::Bilinear:
      return {1.0, bilinear_filter};
    case ResampleFilter::Hamming:
      return {1.0, hamming_filter};
    case ResampleFilter::Bicubic:
      return {2.0, bicubic_filter};
    case ResampleFilter::Lanczos:
      return {3.0, lanczos_filter};
  }
  throw Error(codes::kInvalidArgument, "unknown resample filter " + std::to_string(static_cast<int>(f)));
}

// Taps of one output position: first source index and the fixed-point weights.
struct Taps {
  int64_t ksize = 0;           // row stride of `k`
  std::vector<int64_t> first;  // [out]
  std::vector<int64_t> count;  // [out]
  std::vector<int32_t> k;      // [out, ksize]
};

// Double-precision weights of output position xx (Pillow's precompute_coeffs, one iteration).
// Writes up to `ksize` weights into w and returns (xmin, count).
std::pair<int64_t, int64_t> weights_at(int64_t xx, int64_t in_size, int64_t out_size, const Filter& f, double* w) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = f.support * filterscale;
  const double center = (static_cast<double>(xx) + 0.5) * scale;
  const double ss = 1.0 / filterscale;
  int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // truncation, as C's (int) cast
  if (xmin < 0) xmin = 0;
  int64_t xmax = static_cast<int64_t>(center + support + 0.5);
  if (xmax > in_size) xmax = in_size;
  xmax -= xmin;
  double ww = 0.0;
  for (int64_t x = 0; x < xmax; ++x) {
    const double v = f.fn((static_cast<double>(x + xmin) - center + 0.5) * ss);
    w[x] = v;
    ww += v;
  }
  for (int64_t x = 0; x < xmax; ++x) {
    if (ww != 0.0) w[x] /= ww;
  }
  return {xmin, xmax};
}

int32_t to_fixed(double w) {
  const double s = w * static_cast<double>(1 << kPrecisionBits);
  return static_cast<int32_t>(w < 0 ? -0.5 + s : 0.5 + s);
}

int64_t kernel_size(int64_t in_size, int64_t out_size, const Filter& f) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double support = f.support * (scale < 1.0 ? 1.0 : scale);
  return static_cast<int64_t>(std::ceil(support)) * 2 + 1;
}

Taps make_taps(int64_t in_size, int64_t out_size, const Filter& f) {
  Taps t;
  t.ksize = kernel_size(in_size, out_size, f);
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.k.assign(static_cast<size_t>(out_size * t.ksize), 0);
  std::vector<double> w(static_cast<size_t>(t.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    auto [xmin, n] = weights_at(xx, in_size, out_size, f, w.data());
    t.first[xx] = xmin;
    t.count[xx] = n;
    for (int64_t x = 0; x < n; ++x) t.k[xx * t.ksize + x] = to_fixed(w[x]);
  }
  return t;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift, as Pillow's int
  return static_cast<uint8_t>(v <= 0 ? 0 : (v >= 255 ? 255 : v));
}

template <int C>
void horizontal(const uint8_t* in, int64_t in_w, int64_t rows, uint8_t* out, int64_t out_w, const Taps& t) {
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* src = in + y * in_w * C;
    uint8_t* dst = out + y * out_w * C;
    for (int64_t xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &t.k[xx * t.ksize];
      const uint8_t* p = src + t.first[xx] * C;
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
      for (int64_t x = 0, n = t.count[xx]; x < n; ++x) {
        for (int c = 0; c < C; ++c) acc[c] += static_cast<int32_t>(p[x * C + c]) * k[x];
      }
      for (int c = 0; c < C; ++c) dst[xx * C + c] = clip8(acc[c]);
    }
  }
}

// The same sums with a compile-time tap count K: every window is widened to exactly K taps by
// zero weights (moved left at the right edge so that it stays inside the row). Adding p·0 to an
// integer accumulator changes nothing, so the bytes equal horizontal()'s; the fixed trip count
// lets the compiler unroll, which is most of the resize's time when shrinking.
template <int C, int K>
void horizontal_fixed(const uint8_t* in, int64_t in_w, int64_t rows, uint8_t* out, int64_t out_w, const Taps& t) {
  std::vector<int64_t> start(static_cast<size_t>(out_w));
  std::vector<int32_t> kk(static_cast<size_t>(out_w * K), 0);
  for (int64_t xx = 0; xx < out_w; ++xx) {
    const int64_t s = std::min<int64_t>(t.first[xx], in_w - K);
    start[xx] = s;
    for (int64_t x = 0; x < t.count[xx]; ++x) kk[xx * K + (t.first[xx] - s) + x] = t.k[xx * t.ksize + x];
  }
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* src = in + y * in_w * C;
    uint8_t* dst = out + y * out_w * C;
    for (int64_t xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &kk[xx * K];
      const uint8_t* p = src + start[xx] * C;
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
      for (int x = 0; x < K; ++x) {
        for (int c = 0; c < C; ++c) acc[c] += static_cast<int32_t>(p[x * C + c]) * k[x];
      }
      for (int c = 0; c < C; ++c) dst[xx * C + c] = clip8(acc[c]);
    }
  }
}

template <int C>
void horizontal_any(const uint8_t* in, int64_t in_w, int64_t rows, uint8_t* out, int64_t out_w, const Taps& t) {
  int64_t widest = 0;
  for (int64_t n : t.count) widest = std::max(widest, n);
  if (widest > in_w) return horizontal<C>(in, in_w, rows, out, out_w, t);
  switch (widest) {  // the tap counts of BILINEAR shrinking by up to ~4x, and of BICUBIC/LANCZOS near 1x
    case 2:
      return horizontal_fixed<C, 2>(in, in_w, rows, out, out_w, t);
    case 3:
      return horizontal_fixed<C, 3>(in, in_w, rows, out, out_w, t);
    case 4:
      return horizontal_fixed<C, 4>(in, in_w, rows, out, out_w, t);
    case 5:
      return horizontal_fixed<C, 5>(in, in_w, rows, out, out_w, t);
    case 6:
      return horizontal_fixed<C, 6>(in, in_w, rows, out, out_w, t);
    case 7:
      return horizontal_fixed<C, 7>(in, in_w, rows, out, out_w, t);
    case 8:
      return horizontal_fixed<C, 8>(in, in_w, rows, out, out_w, t);
    case 9:
      return horizontal_fixed<C, 9>(in, in_w, rows, out, out_w, t);
    default:
      return horizontal<C>(in, in_w, rows, out, out_w, t);
  }
}

// Vertical pass, row-major so the inner loop runs along a contiguous row (vectorises).
void vertical(const uint8_t* in, int64_t row_len, uint8_t* out, int64_t out_h, const Taps& t, int64_t row_shift) {
  std::vector<int32_t> acc(static_cast<size_t>(row_len));
  for (int64_t yy = 0; yy < out_h; ++yy) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* k = &t.k[yy * t.ksize];
    const int64_t first = t.first[yy] - row_shift;
    for (int64_t y = 0, n = t.count[yy]; y < n; ++y) {
      const uint8_t* src = in + (first + y) * row_len;
      const int32_t w = k[y];
      int32_t* a = acc.data();
      for (int64_t i = 0; i < row_len; ++i) a[i] += static_cast<int32_t>(src[i]) * w;
    }
    uint8_t* dst = out + yy * row_len;
    for (int64_t i = 0; i < row_len; ++i) dst[i] = clip8(acc[i]);
  }
}

void check_sizes(int64_t in_w, int64_t in_h, int channels, int64_t out_w, int64_t out_h) {
  if (in_w <= 0 || in_h <= 0 || out_w <= 0 || out_h <= 0) {
    throw Error(codes::kInvalidArgument, "resize: sizes must be positive");
  }
  if (channels < 1 || channels > 4) throw Error(codes::kInvalidArgument, "resize: 1 to 4 channels");
  // Pillow's int32 fixed point holds 255·2^22 (weights sum to one); the sizes fit in int32 as in Pillow.
  if (in_w > (1 << 30) || in_h > (1 << 30) || out_w > (1 << 30) || out_h > (1 << 30)) {
    throw Error(codes::kInvalidArgument, "resize: size too large");
  }
}

}  // namespace

bool is_supported_filter(int r) { return r >= 1 && r <= 5; }

void resize_u8(const uint8_t* in, int64_t in_w, int64_t in_h, int channels, uint8_t* out, int64_t out_w, int64_t out_h,
               ResampleFilter filter) {
  check_sizes(in_w, in_h, channels, out_w, out_h);
  const Filter f = filter_of(filter);
  const bool need_h = out_w != in_w;
  const bool need_v = out_h != in_h;
  const int64_t C = channels;
  if (!need_h && !need_v) {
    std::copy(in, in + in_w * in_h * C, out);
    return;
  }
  if (!need_v) {
    const Taps th = make_taps(in_w, out_w, f);
    switch (channels) {
      case 1:
        horizontal_any<1>(in, in_w, in_h, out, out_w, th);
        break;
      case 2:
        horizontal_any<2>(in, in_w, in_h, out, out_w, th);
        break;
      case 3:
        horizontal_any<3>(in, in_w, in_h, out, out_w, th);
        break;
      default:
        horizontal_any<4>(in, in_w, in_h, out, out_w, th);
        break;
    }
    return;
  }
  const Taps tv = make_taps(in_h, out_h, f);
  if (!need_h) {
    vertical(in, in_w * C, out, out_h, tv, 0);
    return;
  }
  // Only the source rows some output row uses go through the horizontal pass (as Pillow does).
  const int64_t y_first = tv.first[0];
  const int64_t y_last = tv.first[out_h - 1] + tv.count[out_h - 1];
  const Taps th = make_taps(in_w, out_w, f);
  std::vector<uint8_t> tmp(static_cast<size_t>((y_last - y_first) * out_w * C));
  const uint8_t* src = in + y_first * in_w * C;
  switch (channels) {
    case 1:
      horizontal_any<1>(src, in_w, y_last - y_first, tmp.data(), out_w, th);
      break;
    case 2:
      horizontal_any<2>(src, in_w, y_last - y_first, tmp.data(), out_w, th);
      break;
    case 3:
      horizontal_any<3>(src, in_w, y_last - y_first, tmp.data(), out_w, th);
      break;
    default:
      horizontal_any<4>(src, in_w, y_last - y_first, tmp.data(), out_w, th);
      break;
  }
  vertical(tmp.data(), out_w * C, out, out_h, tv, y_first);
}

ResizeTaps resize_taps(int64_t in_size, int64_t out_size, ResampleFilter filter) {
  check_sizes(in_size, 1, 3, out_size, 1);
  const Taps t = make_taps(in_size, out_size, filter_of(filter));
  ResizeTaps r;
  r.ksize = static_cast<int32_t>(t.ksize);
  r.first.assign(t.first.begin(), t.first.end());  // sizes ≤ 2^30 (check_sizes): int32 holds them
  r.count.assign(t.count.begin(), t.count.end());
  r.k = t.k;
  return r;
}

void resize_u8_reference(const uint8_t* in, int64_t in_w, int64_t in_h, int channels, uint8_t* out, int64_t out_w,
                         int64_t out_h, ResampleFilter filter) {
  check_sizes(in_w, in_h, channels, out_w, out_h);
  const Filter f = filter_of(filter);
  const int64_t C = channels;
  // Horizontal pass over every row (the fast path skips unused rows; results must not differ).
  std::vector<uint8_t> mid(static_cast<size_t>(in_h * out_w * C));
  std::vector<double> w(static_cast<size_t>(kernel_size(in_w, out_w, f) + kernel_size(in_h, out_h, f)));
  for (int64_t y = 0; y < in_h; ++y) {
    for (int64_t xx = 0; xx < out_w; ++xx) {
      for (int64_t c = 0; c < C; ++c) {
        if (out_w == in_w) {
          mid[(y * out_w + xx) * C + c] = in[(y * in_w + xx) * C + c];
          continue;
        }
        auto [xmin, n] = weights_at(xx, in_w, out_w, f, w.data());
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int64_t x = 0; x < n; ++x) acc += in[(y * in_w + xmin + x) * C + c] * to_fixed(w[x]);
        mid[(y * out_w + xx) * C + c] = clip8(acc);
      }
    }
  }
  for (int64_t yy = 0; yy < out_h; ++yy) {
    for (int64_t xx = 0; xx < out_w; ++xx) {
      for (int64_t c = 0; c < C; ++c) {
        if (out_h == in_h) {
          out[(yy * out_w + xx) * C + c] = mid[(yy * out_w + xx) * C + c];
          continue;
        }
        auto [ymin, n] = weights_at(yy, in_h, out_h, f, w.data());
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int64_t y = 0; y < n; ++y) acc += mid[((ymin + y) * out_w + xx) * C + c] * to_fixed(w[y]);
        out[(yy * out_w + xx) * C + c] = clip8(acc);
      }
    }
  }
}

}  // namespace vitmsn
