// How a uint8 pixel level becomes a model input value: HF's rescale then normalize, exactly as
// ViTImageProcessor computes them (docs/model.md, "Image preprocessing"):
//   v = level;  with do_rescale: v = float32(float64(level) · rescale_factor)
//               with do_normalize: v = (v − mean[c]) / std[c]   in float32
// Both the float32 preprocessing (engine/image/preprocess.cc) and the embed path's fused patchify
// (cpu/patchify.cc; cuda/patchify.cu spells the same operations with round-to-nearest intrinsics)
// compute their values here, so the two paths' pixel values are bit-identical. There is no
// multiply-add to contract, and contraction is switched off below anyway.
#pragma once
#include <cstdint>

namespace vitmsn {

struct PixelNorm {
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
};

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
__attribute__((optimize("fp-contract=off")))
#endif
inline float
pixel_value(uint8_t level, int c, const PixelNorm& n) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  float x = static_cast<float>(level);
  if (n.do_rescale) x = static_cast<float>(static_cast<double>(level) * n.rescale_factor);
  if (n.do_normalize) {
    const float centred = x - n.mean[c];
    x = centred / n.std[c];
  }
  return x;
}

// The 256 values of each channel (what the CPU kernels gather from): table[c][level].
inline void pixel_table(const PixelNorm& n, float (&table)[3][256]) {
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) table[c][v] = pixel_value(static_cast<uint8_t>(v), c, n);
}

}  // namespace vitmsn
