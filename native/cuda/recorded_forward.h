// One recorded forward (a CUDA graph) with everything its replays touch: its own pinned host
// buffers and its own device arena. The graph's copies and kernels use those exact addresses on
// every replay, and the graph holds no memory-allocation nodes. Freed only under the backend's
// device lock (GraphCache entries), never while a replay runs.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "cuda/cuda_check.h"

namespace vitmsn {
namespace cuda {

struct RecordedForward {
  RecordedForward(size_t in_bytes_, size_t n_out_) : in_bytes(in_bytes_), n_out(n_out_) {
    check(cudaMallocHost(&host_in, std::max<size_t>(in_bytes, 1)), "cudaMallocHost");
    const cudaError_t e =
        cudaMallocHost(reinterpret_cast<void**>(&host_out), std::max<size_t>(n_out, 1) * sizeof(float));
    if (e != cudaSuccess) {
      cudaFreeHost(host_in);
      check(e, "cudaMallocHost");
    }
  }
  ~RecordedForward() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (arena) cudaFree(arena);
    cudaFreeHost(host_in);
    cudaFreeHost(host_out);
  }
  RecordedForward(const RecordedForward&) = delete;
  RecordedForward& operator=(const RecordedForward&) = delete;

  const size_t in_bytes, n_out;  // bytes in host_in, floats in host_out: a replay copies exactly these
  void* host_in = nullptr;
  float* host_out = nullptr;
  void* arena = nullptr;  // every device buffer of the recorded forward
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

}  // namespace cuda
}  // namespace vitmsn
