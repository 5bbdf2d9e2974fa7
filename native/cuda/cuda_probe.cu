// cudaGetDeviceCount on a machine without the NVIDIA driver returns cudaErrorInsufficientDriver
// (35) or cudaErrorNoDevice (100); both mean "no GPU" and the reason is kept for the user.
#include <cuda_runtime.h>

#include "cuda/cuda_probe.h"

namespace vitmsn {

CudaProbe probe_cuda() {
  CudaProbe probe;
  int count = 0;
  cudaError_t st = cudaGetDeviceCount(&count);
  if (st != cudaSuccess) {
    probe.reason = std::string("no usable GPU: ") + cudaGetErrorName(st) + " (" + cudaGetErrorString(st) + ")";
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return probe;
  }
  probe.device_count = count;
  if (count == 0) probe.reason = "no CUDA device found";
  return probe;
}

}  // namespace vitmsn
