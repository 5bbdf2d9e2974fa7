// Asks the CUDA runtime (linked statically) whether a usable driver and GPU exist. Plain C++
// header: callers outside native/cuda never see CUDA headers.
#pragma once
#include <string>

namespace vitmsn {

struct CudaProbe {
  int device_count = 0;
  std::string reason;  // empty when device_count > 0
};

CudaProbe probe_cuda();

}  // namespace vitmsn
