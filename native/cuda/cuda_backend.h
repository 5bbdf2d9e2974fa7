// The CUDA backend: activations and weights live on one GPU in the chosen storage type (float32,
// float16 or bfloat16; arithmetic is float32 everywhere), GEMMs run on cuBLASLt (opened at run time),
// the other ops on this folder's kernels. Plain C++ header: no CUDA types leak out.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"

namespace vitmsn {

// dtype: "float32" | "float16" | "bfloat16". Throws ERR_DEVICE_UNAVAILABLE when the device or
// cuBLASLt cannot be used (with the reason), ERR_UNSUPPORTED_DTYPE for another dtype.
std::unique_ptr<Backend> make_cuda_backend(int device, const std::string& dtype);

// Why CUDA cannot be used here, or "" when device `device` and cuBLASLt are usable.
std::string cuda_unavailable_reason(int device);

}  // namespace vitmsn
