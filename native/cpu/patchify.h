// Patchify (im2col for the p×p, stride-p patch-embedding convolution).
//
//   gh = Himg / p, gw = Wimg / p (integer division: leftover rows/columns are dropped)
//   patches[(b·gh + py)·gw + px, (c·p + ky)·p + kx] = x[b, c, py·p + ky, px·p + kx]
//   x: [B, C, Himg, Wimg];  patches: [B·gh·gw, C·p·p]
// so that patches · W[D, C·p·p]ᵀ is the convolution.
//
// patchify_pixels: the same layout (C = 3) from uint8 RGB images [B, Himg, Wimg, 3], each value
// pixel_value(level, c, norm) (backend/pixel_norm.h): the rescale/normalize of the preprocessing
// fused in, bit-identical to patchify of its float32 output.
#pragma once
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void patchify(const PatchifyArgs& a, ThreadPool& pool);
void patchify_pixels(const PatchifyPixelsArgs& a, ThreadPool& pool);

}  // namespace cpu
}  // namespace vitmsn
