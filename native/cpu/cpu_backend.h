// The CPU backend: "device" memory is ordinary 64-byte-aligned host memory, and every op runs its
// kernel (gemm.h, layernorm.h, attention.h, patchify.h, embed_tokens.h) on a persistent thread pool.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace vitmsn {

// threads ≤ 0 uses std::thread::hardware_concurrency(). Ops from several threads are safe: the
// pool runs one op's parallel work at a time.
std::unique_ptr<Backend> make_cpu_backend(int threads);

}  // namespace vitmsn
