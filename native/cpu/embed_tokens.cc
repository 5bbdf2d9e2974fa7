// Token assembly (math and shapes in embed_tokens.h). One float add per element; threads split
// the B·(N + 1) token rows.
#include "cpu/embed_tokens.h"

#include "common/error.h"

namespace vitmsn {
namespace cpu {

void embed_tokens(const EmbedTokensArgs& a, ThreadPool& pool) {
  if (a.B < 0 || a.N < 0 || a.D < 0) throw Error(codes::kInternal, "embed_tokens: negative dimension");
  const int64_t B = a.B, N = a.N, D = a.D, T = N + 1;
  if (B == 0 || D == 0) return;
  if (!a.cls || !a.pos || !a.tokens || (N > 0 && !a.patch_emb)) {
    throw Error(codes::kInternal, "embed_tokens: null operand");
  }
  if (a.mask && !a.mask_token) {
    // The engine checks this before the forward; a masked row with no token would read null.
    for (int64_t i = 0; i < B * N; ++i) {
      if (a.mask[i]) throw Error(codes::kNoMaskToken, "embed_tokens: a patch is masked but there is no mask_token");
    }
  }
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {  // r = b·T + t
      const int64_t b = r / T, t = r % T;
      const float* src = t == 0                              ? a.cls
                         : (a.mask && a.mask[b * N + t - 1]) ? a.mask_token
                                                             : a.patch_emb + (b * N + t - 1) * D;
      const float* pos = a.pos + t * D;
      float* dst = a.tokens + r * D;
      for (int64_t i = 0; i < D; ++i) dst[i] = src[i] + pos[i];
    }
  };
  // Two floats read, one add, one float written per element.
  pool.parallel_for(B * T, body, 4 * B * T * D);
}

}  // namespace cpu
}  // namespace vitmsn
