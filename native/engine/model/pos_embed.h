// Position-embedding table for an input grid, as transformers' ViTMSNEmbeddings.interpolate_pos_encoding.
//
//   table: [1 + N0, D] as trained, N0 = s·s patch positions on a square s×s grid (row-major).
//   result: [1 + gh·gw, D]: row 0 (CLS) copied; the s×s×D grid resized to gh×gw with PyTorch's
//   bicubic (A = −0.75, align_corners=False, src = (dst + 0.5)·in/out − 0.5, taps clamped to the
//   edge, no antialias), separately per channel.
//
// Computed once per input shape on the host, in double (the table is tiny: D·gh·gw·16 MACs).
#pragma once
#include <cstdint>
#include <vector>

namespace vitmsn {

// Throws ERR_SHAPE_MISMATCH when N0 is not a perfect square (interpolation is undefined then).
std::vector<float> interpolate_pos_table(const std::vector<float>& table, int64_t n0, int64_t D, int64_t gh,
                                         int64_t gw);

// The 1-D resampling weights of PyTorch's bicubic for one output index: taps index[0..3] (already
// clamped) with weights w[0..3]. Exposed for tests.
struct CubicTaps {
  int64_t index[4];
  double w[4];
};
CubicTaps bicubic_taps(int64_t dst, int64_t in_size, int64_t out_size);

}  // namespace vitmsn
