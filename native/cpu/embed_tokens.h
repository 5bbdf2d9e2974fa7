// Token assembly: CLS, optional mask tokens, position embeddings.
//
//   tokens[b, 0, :]     = cls[:] + pos[0, :]
//   tokens[b, 1 + i, :] = (mask[b, i] ? mask_token[:] : patch_emb[b, i, :]) + pos[1 + i, :]
//   patch_emb: [B, N, D]; cls, mask_token: [D]; pos: [N + 1, D]; tokens: [B, N + 1, D];
//   mask: [B, N] host bytes (nonzero = masked) or null (nothing masked).
#pragma once
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void embed_tokens(const EmbedTokensArgs& a, ThreadPool& pool);

}  // namespace cpu
}  // namespace vitmsn
