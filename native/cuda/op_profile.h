// Optional per-op GPU timing of a CUDA backend (VITMSN_CUDA_PROFILE=1): CUDA events around every op,
// summed per op kind and printed to stderr when the backend goes away. For finding where device time
// goes (nsys is not always available); off by default, and never on inside a graph capture.
// Everything up to the first download (the model's load and its first forward, which makes the
// cuBLASLt plans) is left out, so the totals describe steady-state forwards.
#pragma once
#include "common/knobs.h"
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace vitmsn {
namespace cuda {

class OpProfile {
 public:
  explicit OpProfile(cudaStream_t s) : stream_(s) {}
  ~OpProfile() {
    if (collected_ == 0) collected_ = 1;  // a profile without any download: keep what there is
    collect();
    if (!totals_.empty()) {
      double all = 0;
      for (auto& [k, v] : totals_) all += v.ms;
      std::fprintf(stderr, "[vitmsn cuda profile] %-28s %8s %10s %6s\n", "op", "calls", "ms", "share");
      for (auto& [k, v] : totals_)
        std::fprintf(stderr, "[vitmsn cuda profile] %-28s %8ld %10.3f %5.1f%%\n", k.c_str(), v.calls, v.ms,
                     100 * v.ms / all);
      std::fprintf(stderr, "[vitmsn cuda profile] %-28s %8s %10.3f\n", "total", "", all);
      // VITMSN_CUDA_PROFILE_OUT=file: the same totals as JSON {"op": [calls, ms], ...} for scripts.
      if (const std::string path = knobs::text(knobs::Knob::kCudaProfileOut); !path.empty()) {
        if (FILE* f = std::fopen(path.c_str(), "w")) {
          std::fprintf(f, "{");
          bool first = true;
          for (auto& [k, v] : totals_) {
            std::fprintf(f, "%s\"%s\": [%ld, %.6f]", first ? "" : ", ", k.c_str(), v.calls, v.ms);
            first = false;
          }
          std::fprintf(f, "}\n");
          std::fclose(f);
        }
      }
    }
    for (auto& p : pending_) cudaEventDestroy(p.a), cudaEventDestroy(p.b);
  }
  // Brackets one op: begin() before its launches, end() after.
  void begin(const std::string& what) {
    Pending p{what, nullptr, nullptr};
    cudaEventCreate(&p.a);
    cudaEventCreate(&p.b);
    cudaEventRecord(p.a, stream_);
    pending_.push_back(p);
  }
  void end() { cudaEventRecord(pending_.back().b, stream_); }
  // After a stream synchronisation: folds the finished events into the totals.
  void collect() {
    const bool keep = collected_++ > 0;
    for (auto& p : pending_) {
      float ms = 0;
      if (keep && cudaEventElapsedTime(&ms, p.a, p.b) == cudaSuccess) totals_[p.what].ms += ms, totals_[p.what].calls++;
      cudaEventDestroy(p.a);
      cudaEventDestroy(p.b);
    }
    pending_.clear();
    cudaGetLastError();
  }

 private:
  struct Pending {
    std::string what;
    cudaEvent_t a, b;
  };
  struct Total {
    long calls = 0;
    double ms = 0;
  };
  cudaStream_t stream_;
  long collected_ = 0;
  std::vector<Pending> pending_;
  std::map<std::string, Total> totals_;
};

}  // namespace cuda
}  // namespace vitmsn
