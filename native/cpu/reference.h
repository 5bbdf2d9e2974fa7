// Scalar references of every CPU op: plain loops in the order the math is written, double
// accumulation, one thread. They define what the kernels must compute; the tests compare against
// them. Same argument structs as the Backend ops (pointers are host memory here).
//
//   ref_gemm:         C = epilogue(A·Wᵀ + bias) + residual          (see GemmArgs)
//   ref_gemm_int8:    the same with W and A quantised (gemm_int8.h)
//   ref_mlp:          out += W2·gelu(W1·a + b1) + b2 (hidden rounded to float, as stored)  (see MlpArgs)
//   ref_layernorm:    y = (x − mean) / sqrt(var + eps) · γ + β       (see LayerNormArgs)
//   ref_attention:    out = (softmax(q·kᵀ·scale) · head_scale)·v    (see AttentionArgs)
//   ref_patchify:     im2col of p×p stride-p patches                 (see PatchifyArgs)
//   ref_embed_tokens: [cls; mask ? mask_token : patch_emb] + pos     (see EmbedTokensArgs)
//   ref_patchify_pixels: im2col of uint8 HWC levels through pixel_value (see PatchifyPixelsArgs)
//   ref_pool_rows:    mean of rows t0..t0+n−1 per image, then L2 normalize (see PoolRowsArgs)
#pragma once
#include <cstdint>

#include "cpu/op_args.h"

namespace vitmsn {
namespace cpu {

void ref_gemm(const GemmArgs& a);
// The int8 GEMM (gemm_int8.h's scheme) from a plain float W: W and A quantised, integer sums in
// int64, the epilogue in double. acc_out (M × N), when set, receives the integer sums; C may be null.
void ref_gemm_int8(const GemmArgs& a, int32_t* acc_out = nullptr);
// W1 [I, D] and W2 [D, I] as plain row-major floats (MlpArgs carries prepared weights).
void ref_mlp(const MlpArgs& a, const float* W1, const float* W2);
void ref_layernorm(const LayerNormArgs& a);
void ref_attention(const AttentionArgs& a);
void ref_patchify(const PatchifyArgs& a);
void ref_embed_tokens(const EmbedTokensArgs& a);
void ref_patchify_pixels(const PatchifyPixelsArgs& a);
void ref_pool_rows(const PoolRowsArgs& a);

}  // namespace cpu
}  // namespace vitmsn
