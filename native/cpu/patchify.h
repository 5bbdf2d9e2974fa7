// Patchify (im2col for the p×p, stride-p patch-embedding convolution).
//
//   gh = Himg / p, gw = Wimg / p (integer division: leftover rows/columns are dropped)
//   patches[(b·gh + py)·gw + px, (c·p + ky)·p + kx] = x[b, c, py·p + ky, px·p + kx]
//   x: [B, C, Himg, Wimg];  patches: [B·gh·gw, C·p·p]
// so that patches · W[D, C·p·p]ᵀ is the convolution.
#pragma once
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void patchify(const PatchifyArgs& a, ThreadPool& pool);

}  // namespace cpu
}  // namespace vitmsn
