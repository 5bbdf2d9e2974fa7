// Per-task scratch buffers for CPU kernels. Running out of memory is reported with the engine's
// code (ERR_OUT_OF_MEMORY) rather than as a bare std::bad_alloc.
#pragma once
#include <cstddef>
#include <memory>
#include <new>
#include <string>

#include "engine/error.h"

namespace vitmsn {
namespace cpu {

// Left uninitialised: callers write every element before reading it.
inline std::unique_ptr<float[]> alloc_scratch(size_t n, const char* who) {
  float* p = new (std::nothrow) float[n];
  if (!p) {
    throw Error(codes::kOutOfMemory,
                std::string(who) + ": out of memory for a " + std::to_string(n) + "-float scratch buffer");
  }
  return std::unique_ptr<float[]>(p);
}

}  // namespace cpu
}  // namespace vitmsn
