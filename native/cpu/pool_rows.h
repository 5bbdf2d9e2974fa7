// Pooling of the embed path (math and shapes in backend/op_args.h, PoolRowsArgs):
//
//   out[b, d] = float32(Σ_{t=t0}^{t0+n−1} x[b, t, d] / n), summed in double in order of t
//   with normalize: out[b, :] = float32(out[b, :] / max(‖out[b, :]‖₂, 1e-12)), the norm in double in order of d
//   x: [B, T, D]; out: [B, D] (may not alias x).
//
// The same operations in the same order as engine/model/pooling.cc, so encode() on the CPU is
// bit-identical to forward() + host pooling. Threads split the images.
#pragma once
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void pool_rows(const PoolRowsArgs& a, ThreadPool& pool);

}  // namespace cpu
}  // namespace vitmsn
