// Pillow's convolution resize of 8-bit RGB, one output sample per call, for a device that runs one
// thread per sample (cuda/resize.cu). The coefficient tables are not made here: they come from the
// CPU resize's own code (engine/image/resample.h, resize_taps), so the weights are the same int32
// values, and the sums below are the same integer arithmetic as resize_u8 (accumulator starting at
// one half, 22 fraction bits, arithmetic shift, clip to 0..255): the bytes are equal by
// construction. test_engine_preprocess runs these functions over every index on the CPU against
// resize_u8; only the thread mapping is the device's.
#pragma once
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define VITMSN_HOST_DEVICE __host__ __device__
#else
#define VITMSN_HOST_DEVICE
#endif

namespace vitmsn {

constexpr int kResizePrecisionBits = 22;  // Pillow's PRECISION_BITS (32 − 8 − 2)

// One axis's tables in host memory, as resize_taps makes them.
struct ResizeTaps {
  int32_t ksize = 0;
  std::vector<int32_t> first, count, k;
};

// One axis's taps (device or host memory): output position o reads count[o] source positions from
// first[o] with the fixed-point weights k[o·ksize ..].
struct ResizeAxisView {
  const int32_t* first = nullptr;
  const int32_t* count = nullptr;
  const int32_t* k = nullptr;
  int32_t ksize = 0;
};

VITMSN_HOST_DEVICE inline uint8_t resize_tap_sum(const uint8_t* p, int64_t stride, const int32_t* k, int32_t n) {
  int32_t acc = 1 << (kResizePrecisionBits - 1);
  for (int32_t i = 0; i < n; ++i) acc += static_cast<int32_t>(p[i * stride]) * k[i];
  const int32_t v = acc >> kResizePrecisionBits;
  return static_cast<uint8_t>(v <= 0 ? 0 : (v >= 255 ? 255 : v));
}

// Horizontal pass: src [rows, in_w, 3] → dst [rows, out_w, 3]; idx < rows·out_w·3.
VITMSN_HOST_DEVICE inline void resize_horizontal_at(const uint8_t* src, int64_t in_w, uint8_t* dst, int64_t out_w,
                                                    const ResizeAxisView& t, int64_t idx) {
  const int64_t c = idx % 3, xx = (idx / 3) % out_w, y = idx / (3 * out_w);
  dst[idx] = resize_tap_sum(src + (y * in_w + t.first[xx]) * 3 + c, 3, t.k + xx * t.ksize, t.count[xx]);
}

// Vertical pass: src rows [row_shift, …) of width `width` (3 samples each) → dst [out_h, width, 3];
// idx < out_h·width·3. row_shift: the first source row src holds (the horizontal pass made only the
// rows some output row reads, as Pillow does).
VITMSN_HOST_DEVICE inline void resize_vertical_at(const uint8_t* src, int64_t width, int64_t row_shift, uint8_t* dst,
                                                  const ResizeAxisView& t, int64_t idx) {
  const int64_t row = 3 * width, i = idx % row, yy = idx / row;
  dst[idx] = resize_tap_sum(src + (t.first[yy] - row_shift) * row + i, row, t.k + yy * t.ksize, t.count[yy]);
}

// Which passes a resize runs, as resize_u8 decides: an axis whose size is unchanged is not resampled
// (neither: a copy); with both, the horizontal pass makes only source rows [row_first, row_first +
// rows) — those the vertical taps (v_first, v_count: host memory) read.
struct ResizePlan {
  bool horizontal = false, vertical = false;
  int64_t row_first = 0, rows = 0;
};
inline ResizePlan resize_plan(int64_t in_w, int64_t in_h, int64_t out_w, int64_t out_h, const int32_t* v_first,
                              const int32_t* v_count) {
  ResizePlan p;
  p.horizontal = out_w != in_w;
  p.vertical = out_h != in_h;
  p.rows = in_h;
  if (p.horizontal && p.vertical) {
    p.row_first = v_first[0];
    p.rows = v_first[out_h - 1] + v_count[out_h - 1] - p.row_first;
  }
  return p;
}

}  // namespace vitmsn
