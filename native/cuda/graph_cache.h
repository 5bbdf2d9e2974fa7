// Recorded forwards (CUDA graphs) by shape key, for CudaBackend::run_recorded. Each holds its own
// pinned host buffers and its own device arena: the graph's copies and kernels use those exact
// addresses on every replay, and the graph holds no memory-allocation nodes.
// The cache is small and bounded (graphs pin their activations' memory); shapes that could not be
// recorded are remembered so they are not tried again.
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>

#include "cuda/cuda_check.h"

namespace vitmsn {
namespace cuda {

struct RecordedForward {
  RecordedForward(size_t n_in, size_t n_out) {
    check(cudaMallocHost(reinterpret_cast<void**>(&host_in), std::max<size_t>(n_in, 1) * sizeof(float)), "cudaMallocHost");
    const cudaError_t e = cudaMallocHost(reinterpret_cast<void**>(&host_out), std::max<size_t>(n_out, 1) * sizeof(float));
    if (e != cudaSuccess) {
      cudaFreeHost(host_in);
      check(e, "cudaMallocHost");
    }
  }
  ~RecordedForward() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    cudaFree(arena);
    cudaFreeHost(host_in);
    cudaFreeHost(host_out);
  }
  RecordedForward(const RecordedForward&) = delete;
  RecordedForward& operator=(const RecordedForward&) = delete;

  float* host_in = nullptr;
  float* host_out = nullptr;
  void* arena = nullptr;  // every device buffer of the recorded forward
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

class GraphCache {
 public:
  static constexpr size_t kMaxGraphs = 8;

  RecordedForward* find(const std::string& key) {
    auto it = graphs_.find(key);
    return it == graphs_.end() ? nullptr : it->second.get();
  }
  RecordedForward* insert(const std::string& key, std::unique_ptr<RecordedForward> g) {
    if (graphs_.size() >= kMaxGraphs) graphs_.clear();  // rare: many shapes in turn; re-record on demand
    return (graphs_[key] = std::move(g)).get();
  }
  bool refused(const std::string& key) const { return refused_.count(key) != 0; }
  void refuse(const std::string& key, const std::string& why) { refused_[key] = why; }
  // The first call of a shape runs eagerly: it makes cuBLASLt's plans and loads kernels (lazy module
  // loading), neither of which should happen inside a capture, and measures the device memory the
  // forward allocates (the arena of its recording). 0 = not measured yet.
  size_t arena_bytes(const std::string& key) const {
    auto it = arena_bytes_.find(key);
    return it == arena_bytes_.end() ? 0 : it->second;
  }
  void set_arena_bytes(const std::string& key, size_t bytes) { arena_bytes_[key] = bytes; }
  void clear() { graphs_.clear(); }

  long recorded = 0, replays = 0;
  double device_ms = 0, host_ms = 0;  // summed over replays (measured only when verbose)
  std::string summary() const {
    std::string s = "graphs: recorded " + std::to_string(recorded) + ", replays " + std::to_string(replays) +
                    ", refused " + std::to_string(refused_.size());
    if (replays) {
      s += ", per replay: device " + std::to_string(device_ms / replays) + " ms, whole call " +
           std::to_string(host_ms / replays) + " ms";
    }
    for (auto& [k, why] : refused_) s += "; " + k + ": " + why;
    return s;
  }

 private:
  std::map<std::string, std::unique_ptr<RecordedForward>> graphs_;
  std::map<std::string, std::string> refused_;
  std::map<std::string, size_t> arena_bytes_;
};

}  // namespace cuda
}  // namespace vitmsn
