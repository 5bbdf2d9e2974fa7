// The CPU kernels' arguments: the ops' argument structs (backend/op_args.h, where the math is) over
// host float32 arrays. The CPU backend turns the Backend interface's DevicePtr arguments into these
// (its memory is host memory); the scalar references and the tests use them directly.
#pragma once
#include "backend/op_args.h"

namespace vitmsn {
namespace cpu {

using GemmArgs = GemmArgsOf<const float*, float*>;
using LayerNormArgs = LayerNormArgsOf<const float*, float*>;
using LayerNormPrologue = LayerNormPrologueOf<const float*>;
using MlpArgs = MlpArgsOf<const float*, float*>;
using AttentionArgs = AttentionArgsOf<const float*, float*>;
using QkvAttentionArgs = QkvAttentionArgsOf<const float*, float*>;
using PatchifyArgs = PatchifyArgsOf<const float*, float*>;
using EmbedTokensArgs = EmbedTokensArgsOf<const float*, float*>;
using PatchifyPixelsArgs = PatchifyPixelsArgsOf<const float*, float*>;
using PoolRowsArgs = PoolRowsArgsOf<const float*, float*>;

}  // namespace cpu
}  // namespace vitmsn
